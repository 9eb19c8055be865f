//! Writing an [`ImportedDit`] back in its family's published layout (`config.json` +
//! `model.safetensors`, torch names and `[out, in]` matrices, plus the `rotary_emb.inv_freq` buffer),
//! so a model fine-tuned in sepo loads in the family's own code. Import after export is
//! bit-identical: the transposes move values, and the dtype is the model's own.

use std::collections::BTreeMap;
use std::path::Path;

use dfdx::prelude::*;

use crate::nn::kernels::Kernels;

use super::config::{published_config, FREQ_DIM, MLP_RATIO};
use super::load::{is_linear_weight, rotary_inv_freq, CONFIG_FILE};
use super::model::ImportedDit;
use crate::error::{Error, Result};
use crate::nn::io::{to_safetensors, write_atomic};
use crate::nn::to_f64s;
use crate::score::ScoreModel;

/// Writes `model` into `dir` as its family publishes checkpoints: `config.json` and
/// `model.safetensors` (F32 for an `f32` model, F64 otherwise; metadata `format: pt`). A trunk the
/// family's code cannot express (learned positions, another MLP ratio or σ-feature width) is
/// [`Error::UnsupportedWeights`].
pub fn export_dir<E: Dtype, D: Kernels<E>>(model: &ImportedDit<E, D>, dir: &Path) -> Result<()> {
    let config = model.config();
    let t = &config.trunk;
    if t.learned_positions || t.mlp_ratio != MLP_RATIO || t.freq_dim != FREQ_DIM {
        return Err(Error::UnsupportedWeights {
            path: dir.to_path_buf(),
            reason: format!(
                "the published DDiT has no learned positions, mlp_ratio {MLP_RATIO} and {FREQ_DIM} σ \
                 features; this trunk has {}, {} and {}",
                t.learned_positions, t.mlp_ratio, t.freq_dim
            ),
        });
    }
    let prefix = config.output.family().prefix();
    let mut tensors = Vec::with_capacity(model.params().len() + 1);
    for p in model.params().params() {
        let values = to_f64s(&p.tensor.as_vec());
        let (shape, values) = if is_linear_weight(&p.name, &p.shape) {
            let (rows, cols) = (p.shape[0], p.shape[1]);
            let mut out = Vec::with_capacity(values.len());
            for c in 0..cols {
                out.extend((0..rows).map(|r| values[r * cols + c]));
            }
            (vec![cols, rows], out)
        } else {
            (p.shape.clone(), values)
        };
        tensors.push((format!("{prefix}{}", p.name), shape, values));
    }
    let inv_freq = rotary_inv_freq(t.head_dim());
    tensors.push((
        format!("{prefix}rotary_emb.inv_freq"),
        vec![inv_freq.len()],
        inv_freq,
    ));
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let f32_storage = std::mem::size_of::<E>() == 4;
    let json = serde_json::to_vec_pretty(&published_config(config)).map_err(|e| Error::Io {
        path: dir.join(CONFIG_FILE),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    write_atomic(
        &dir.join("model.safetensors"),
        &to_safetensors(&tensors, f32_storage, &meta)?,
    )?;
    write_atomic(&dir.join(CONFIG_FILE), &json)
}
