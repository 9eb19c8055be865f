//! Adapters on disk and merged into the base weights.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Lora, LoraConfig};
use crate::error::{Error, Result};
use crate::nn::{from_f64s, to_f64s, ParamId};
use crate::score::ScoreModel;

/// Metadata key of the adapter file's format tag.
const FORMAT_KEY: &str = "format";
/// The format tag.
const FORMAT: &str = "sepo-lora";
/// Metadata key of the [`LoraConfig`] (JSON).
const CONFIG_KEY: &str = "lora_config";

impl<M: ScoreModel> Lora<M> {
    /// Writes the trainable tensors alone (adapters `…lora_A.weight [d_in, r]`,
    /// `…lora_B.weight [r, d_out]` in sepo's layout, and the trained parameters under their own names)
    /// to a safetensors file, atomically, with the [`LoraConfig`] as JSON in the header. The file is
    /// `Σ r·(d_in + d_out)` values, not the model.
    pub fn save_adapters(&self, path: &Path) -> Result<()> {
        let config = serde_json::to_string(&self.config).map_err(|e| Error::Device {
            op: "Lora::save_adapters (config to JSON)",
            message: e.to_string(),
        })?;
        let metadata = BTreeMap::from([
            (FORMAT_KEY.to_string(), FORMAT.to_string()),
            (CONFIG_KEY.to_string(), config),
        ]);
        self.adapters.save(path, &metadata)
    }

    /// Puts adapters written by [`Lora::save_adapters`] back on `base` (the same architecture they were
    /// trained on): the config comes from the file's header, every tensor must be there with its shape.
    pub fn load_adapters(base: M, path: &Path) -> Result<Self> {
        let (_, metadata) = crate::nn::io::read_safetensors(path)?;
        let corrupt = |reason: String| Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        if metadata.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            return Err(corrupt(format!(
                "not a sepo LoRA adapter file (header {FORMAT_KEY:?} is {:?}, expected {FORMAT:?})",
                metadata.get(FORMAT_KEY)
            )));
        }
        let config: LoraConfig = metadata
            .get(CONFIG_KEY)
            .ok_or_else(|| corrupt(format!("header lacks {CONFIG_KEY:?}")))
            .and_then(|json| {
                serde_json::from_str(json).map_err(|e| corrupt(format!("{CONFIG_KEY}: {e}")))
            })?;
        let mut lora = Self::new(base, config, 0)?;
        lora.adapters.load(path)?;
        Ok(lora)
    }

    /// The base model with the adapters folded in, `W ← W + (α/r)·A B` on every target (computed on
    /// the host in f64, then rounded once to the element type), and the trained parameters copied over.
    /// Scores as the adapted model does, up to that rounding.
    pub fn into_merged(self) -> Result<M> {
        let Self {
            mut base,
            config,
            adapters,
            links,
            trained,
        } = self;
        let scale = config.scale();
        let r = config.rank;
        for link in &links {
            let p = &base.params().params()[link.base];
            let (d_in, d_out) = (p.shape[0], p.shape[1]);
            let mut w = to_f64s(&p.tensor.as_vec());
            let a = to_f64s(&adapters.param(link.a).tensor.as_vec());
            let b = to_f64s(&adapters.param(link.b).tensor.as_vec());
            for i in 0..d_in {
                for k in 0..r {
                    let aik = scale * a[i * r + k];
                    for j in 0..d_out {
                        w[i * d_out + j] += aik * b[k * d_out + j];
                    }
                }
            }
            base.params_mut()
                .set_values(ParamId(link.base), from_f64s(&w))?;
        }
        for &(i, id) in &trained {
            base.params_mut()
                .set_values(ParamId(i), adapters.param(id).tensor.as_vec())?;
        }
        Ok(base)
    }

    /// [`Lora::into_merged`] on a copy.
    pub fn merged(&self) -> Result<M>
    where
        M: Clone,
    {
        self.clone().into_merged()
    }
}
