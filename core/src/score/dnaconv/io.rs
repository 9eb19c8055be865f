//! Loading and saving a [`DnaConv`] as a model directory: `config.json` (the published `dnaconv`
//! config's keys) and `model.safetensors` (the backbone's PyTorch state dict, `backbone.` prefix
//! optional), read through [`crate::nn::io`].

use std::collections::BTreeMap;
use std::path::Path;

use dfdx::prelude::*;

use super::{DnaConv, DnaConvConfig};
use crate::error::{Error, Result};
use crate::nn::from_f64s;
use crate::nn::io::{read_safetensors, to_safetensors, write_atomic};

/// Dilations of the five conv templates, each repeated `num_cnn_stacks` times in a row.
pub const DNACONV_DILATIONS: [usize; 5] = [1, 1, 4, 16, 64];

/// Name of the fixed Fourier frequencies in the state dict.
const FOURIER: &str = "time_embedder.0.W";

/// `config.json` as written by `tools/export_dnaconv.py` (the hydra `dnaconv` model config plus the
/// MDLM keys that decide the output map).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct ConfigFile {
    name: String,
    vocab_size: usize,
    length: usize,
    hidden_dim: usize,
    num_cnn_stacks: usize,
    time_conditioning: bool,
    parameterization: String,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn mismatch(path: &Path, what: String, expected: String, found: String) -> Error {
    Error::CheckpointMismatch {
        path: path.to_path_buf(),
        what,
        expected,
        found,
    }
}

impl<E: Dtype, D: Device<E>> DnaConv<E, D> {
    /// Loads `dir/config.json` and `dir/model.safetensors` onto `dev`.
    ///
    /// The config must name `dnaconv` with the `subs` parameterisation. Every parameter of the
    /// configured network must be present with its PyTorch shape, and nothing else may be (a
    /// `backbone.` prefix, as in MDLM's Lightning state dict, is stripped). Values are converted to
    /// `E` (stored `F32` or `F64`).
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file, [`Error::CorruptCheckpoint`] for unparsable JSON or
    /// safetensors, [`Error::CheckpointMismatch`] for another model family, a missing, extra or
    /// misshapen tensor, [`Error::InvalidParameter`] for impossible sizes.
    pub fn load(dir: &Path, dev: &D) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|source| Error::Io {
            path: config_path.clone(),
            source,
        })?;
        let file: ConfigFile =
            serde_json::from_str(&text).map_err(|e| corrupt(&config_path, e.to_string()))?;
        for (what, expected, found) in [
            ("name", "dnaconv", file.name.as_str()),
            ("parameterization", "subs", file.parameterization.as_str()),
        ] {
            if expected != found {
                return Err(mismatch(
                    &config_path,
                    what.into(),
                    expected.into(),
                    found.into(),
                ));
            }
        }
        let config = DnaConvConfig {
            vocab: file.vocab_size,
            len: file.length,
            hidden: file.hidden_dim,
            stacks: file.num_cnn_stacks,
            time_conditioning: file.time_conditioning,
        };
        let mut model = Self::new(config, dev, 0)?;
        let weights = dir.join("model.safetensors");
        let (tensors, _) = read_safetensors(&weights)?;
        let mut tensors: BTreeMap<String, _> = tensors
            .into_iter()
            .map(|(k, v)| (k.strip_prefix("backbone.").unwrap_or(&k).to_string(), v))
            .collect();
        let names: Vec<(String, Vec<usize>)> = model
            .store
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .chain(std::iter::once((
                FOURIER.to_string(),
                vec![config.hidden / 2],
            )))
            .collect();
        for (name, shape) in names {
            let t = tensors.remove(&name).ok_or_else(|| {
                mismatch(
                    &weights,
                    format!("tensor {name}"),
                    format!("{shape:?}"),
                    "nothing".into(),
                )
            })?;
            if t.shape != shape {
                return Err(mismatch(
                    &weights,
                    format!("shape of {name}"),
                    format!("{shape:?}"),
                    format!("{:?}", t.shape),
                ));
            }
            if let Some((i, v)) = t.values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(corrupt(&weights, format!("{name}[{i}] = {v}")));
            }
            if name == FOURIER {
                model.fourier = t.values;
            } else {
                let id = model.store.find(&name).expect("listed from the store");
                model.store.set_values(id, from_f64s::<E>(&t.values))?;
            }
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(mismatch(
                &weights,
                format!("tensor {extra}"),
                "absent (not part of the configured dnaconv)".into(),
                "present".into(),
            ));
        }
        Ok(model)
    }

    /// Writes the model directory [`DnaConv::load`] reads: `config.json` and `model.safetensors`
    /// (f32 storage, PyTorch names and layouts, no prefix), each atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let c = self.config;
        let file = ConfigFile {
            name: "dnaconv".into(),
            vocab_size: c.vocab,
            length: c.len,
            hidden_dim: c.hidden,
            num_cnn_stacks: c.stacks,
            time_conditioning: c.time_conditioning,
            parameterization: "subs".into(),
        };
        let json = serde_json::to_string_pretty(&file).map_err(|e| Error::Device {
            op: "DnaConv::save",
            message: e.to_string(),
        })?;
        write_atomic(&dir.join("config.json"), json.as_bytes())?;
        let mut tensors: Vec<(String, Vec<usize>, Vec<f64>)> = self
            .store
            .to_host()
            .into_iter()
            .map(|(name, shape, values)| (name, shape, crate::nn::to_f64s(&values)))
            .collect();
        tensors.push((FOURIER.into(), vec![c.hidden / 2], self.fourier.clone()));
        write_atomic(
            &dir.join("model.safetensors"),
            &to_safetensors(&tensors, true, &BTreeMap::new())?,
        )
    }
}
