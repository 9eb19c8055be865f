//! Loading a published checkpoint: a model directory (`config.json` + `model.safetensors` or
//! `pytorch_model.bin`) or explicit files, every parameter mapped by name.
//!
//! The state dict of either family holds, under its [`Family::prefix`], exactly sepo's trunk
//! parameter names plus the `rotary_emb.inv_freq` buffer. A 2-D `*.weight` is an `nn.Linear` weight,
//! stored `[out, in]` and transposed into sepo's `[in, out]`; the embedding (`vocab_embed.embedding`)
//! and the norm scales keep their layout. A missing tensor, a shape that differs, a tensor sepo has no
//! place for, or a rotary buffer with another base is a typed error, and nothing is changed unless
//! the whole file fits.

use std::path::{Path, PathBuf};

use dfdx::prelude::*;

use crate::nn::kernels::Kernels;

use super::config::{read_config, Family};
use super::model::ImportedDit;
use crate::error::{Error, Result};
use crate::nn::weights::WeightFile;
use crate::nn::ParamId;
use crate::score::ScoreModel;

/// File names tried in a model directory, in order (the hub's conventions).
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// Name of the published configuration file.
pub const CONFIG_FILE: &str = "config.json";

/// The weights file of a model directory: the first of [`WEIGHT_FILES`] present. A sharded
/// checkpoint (`*.index.json`) or none at all is [`Error::UnsupportedWeights`].
pub fn weights_in(dir: &Path) -> Result<PathBuf> {
    if let Some(found) = WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    let sharded = [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ]
    .iter()
    .any(|f| dir.join(f).is_file());
    Err(Error::UnsupportedWeights {
        path: dir.to_path_buf(),
        reason: if sharded {
            "a sharded checkpoint; sepo imports single-file weights".into()
        } else {
            format!("holds neither {}", WEIGHT_FILES.join(" nor "))
        },
    })
}

/// Imports the model in directory `dir` (a local path, or a snapshot of the hub cache:
/// [`super::cache::resolve_model`]) onto `dev`: [`read_config`] then [`weights_in`].
pub fn import_dir<E: Dtype, D: Kernels<E>>(dir: &Path, dev: &D) -> Result<ImportedDit<E, D>> {
    import_files(&dir.join(CONFIG_FILE), &weights_in(dir)?, dev)
}

/// Imports from an explicit `config.json` and weights file (safetensors in F32/F16/BF16/F64, or a
/// PyTorch archive with the `pytorch` feature), converting to the compute type `E`.
pub fn import_files<E: Dtype, D: Kernels<E>>(
    config: &Path,
    weights: &Path,
    dev: &D,
) -> Result<ImportedDit<E, D>> {
    let config = read_config(config)?;
    let mut model = ImportedDit::new(config, dev, 0)?;
    model.load_published(&WeightFile::open(weights)?)?;
    Ok(model)
}

/// `[rows, cols]` row-major → `[cols, rows]` row-major.
fn transpose<E: Copy>(values: &[E], rows: usize, cols: usize) -> Vec<E> {
    let mut out = Vec::with_capacity(values.len());
    for c in 0..cols {
        out.extend((0..rows).map(|r| values[r * cols + c]));
    }
    out
}

/// Whether sepo's parameter `name` of `shape` is an `nn.Linear` weight (torch stores it transposed).
pub fn is_linear_weight(name: &str, shape: &[usize]) -> bool {
    shape.len() == 2 && name.ends_with(".weight")
}

/// `1/10000^{2j/d_h}`, `j < d_h/2`: the rotary frequencies both families register as a buffer.
pub fn rotary_inv_freq(head_dim: usize) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|j| {
            crate::score::transformer::block::ROPE_BASE.powf(-2.0 * j as f64 / head_dim as f64)
        })
        .collect()
}

impl<E: Dtype, D: Kernels<E>> ImportedDit<E, D> {
    /// Loads every parameter from `file`, a state dict in the family's published names and
    /// layout ([module docs](self)). Nothing is changed unless the whole file fits.
    pub fn load_published(&mut self, file: &WeightFile) -> Result<()> {
        let prefix = self.config().output.family().prefix();
        let path = file.path().to_path_buf();
        let mismatch = |what: String, expected: String, found: String| Error::CheckpointMismatch {
            path: path.clone(),
            what,
            expected,
            found,
        };
        let mut values = Vec::with_capacity(self.params().len());
        for p in self.params().params() {
            let torch = format!("{prefix}{}", p.name);
            let linear = is_linear_weight(&p.name, &p.shape);
            let stored: Vec<usize> = if linear {
                vec![p.shape[1], p.shape[0]]
            } else {
                p.shape.clone()
            };
            let meta = file.tensors().get(&torch).ok_or_else(|| {
                mismatch(
                    format!("tensor {torch}"),
                    format!("{stored:?}"),
                    "nothing".into(),
                )
            })?;
            if meta.shape != stored {
                return Err(mismatch(
                    format!("shape of {torch}"),
                    format!("{stored:?}"),
                    format!("{:?}", meta.shape),
                ));
            }
            let v = file.read::<E>(&torch)?;
            values.push(if linear {
                transpose(&v, stored[0], stored[1])
            } else {
                v
            });
        }
        let rotary = format!("{prefix}rotary_emb.inv_freq");
        for (name, meta) in file.tensors() {
            if *name == rotary {
                let expect = rotary_inv_freq(self.trunk().config().head_dim());
                let found = crate::nn::to_f64s(&file.read::<E>(name)?);
                // The buffer is stored in the file's dtype (a half-precision copy rounds it too);
                // a few units of roundoff cover torch's float32 `pow`.
                let tol = 8.0 * meta.dtype.unit_roundoff();
                let same = found.len() == expect.len()
                    && found
                        .iter()
                        .zip(&expect)
                        .all(|(a, b)| (a - b).abs() <= tol * b.abs());
                if !same {
                    return Err(mismatch(
                        name.clone(),
                        format!("{expect:?} (base 10⁴)"),
                        format!("{found:?}"),
                    ));
                }
            } else if name
                .strip_prefix(prefix)
                .is_none_or(|n| self.params().find(n).is_none())
            {
                return Err(mismatch(
                    format!("tensor {name}"),
                    "nothing (no such parameter in the SEDD/MDLM DiT)".into(),
                    format!("{:?}", meta.shape),
                ));
            }
        }
        for (i, v) in values.into_iter().enumerate() {
            self.params_mut().set_values(ParamId(i), v)?;
        }
        Ok(())
    }
}

/// The family a model directory's `config.json` declares (without loading weights).
pub fn family_of(dir: &Path) -> Result<Family> {
    Ok(read_config(&dir.join(CONFIG_FILE))?.output.family())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_row_major_axes() {
        // [[1, 2, 3], [4, 5, 6]] → [[1, 4], [2, 5], [3, 6]]
        assert_eq!(transpose(&[1, 2, 3, 4, 5, 6], 2, 3), vec![1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn only_matrices_named_weight_are_linear() {
        assert!(is_linear_weight("blocks.0.attn_qkv.weight", &[16, 48]));
        assert!(!is_linear_weight("vocab_embed.embedding", &[28, 16]));
        assert!(!is_linear_weight("blocks.0.norm1.weight", &[16]));
    }
}
