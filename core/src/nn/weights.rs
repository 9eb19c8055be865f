//! Weight files of published checkpoints, read tensor by tensor into the compute type.
//!
//! - **safetensors** (`model.safetensors`): memory-mapped read-only (`filebuffer`, a safe wrapper over
//!   the OS mapping), header parsed and validated once; each tensor is decoded from the mapped bytes
//!   straight into the compute type, so a load holds the mapping plus one tensor at a time, never the
//!   file as `f64`. Element types F32, F16, BF16 (IEEE binary16 and bfloat16 through `half`) and F64;
//!   every other dtype (integer, bool) is [`Error::UnsupportedWeights`].
//! - **PyTorch** (`pytorch_model.bin`, `torch.save` of a state dict since torch 1.6: a zip archive of
//!   `data.pkl` plus one storage per tensor): with the `pytorch` feature, through candle's pickle
//!   reader; same element types. Without the feature, or for the legacy (pre-zip) pickle format, a
//!   typed error says so.
//!
//! Decoding is exact: F16 and BF16 values are representable in `f32` and `f64`, F32 in `f64`, so only
//! a narrower compute type than the file (F64 weights into an `f32` model) rounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dfdx::prelude::Dtype;

use crate::error::{Error, Result};

/// Element type of a stored tensor that sepo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDtype {
    /// IEEE binary16.
    F16,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
}

impl WeightDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightDtype::F16 | WeightDtype::BF16 => 2,
            WeightDtype::F32 => 4,
            WeightDtype::F64 => 8,
        }
    }

    /// Unit roundoff `u` of the format (round-to-nearest moves a normal value by at most `u·|x|`):
    /// 2⁻¹¹ (F16), 2⁻⁸ (BF16), 2⁻²⁴ (F32), 2⁻⁵³ (F64).
    pub fn unit_roundoff(self) -> f64 {
        match self {
            WeightDtype::F16 => 2f64.powi(-11),
            WeightDtype::BF16 => 2f64.powi(-8),
            WeightDtype::F32 => 2f64.powi(-24),
            WeightDtype::F64 => 2f64.powi(-53),
        }
    }

    /// The dtype of a safetensors header entry, `None` for those sepo does not read.
    pub fn from_safetensors(dtype: ::safetensors::Dtype) -> Option<Self> {
        match dtype {
            ::safetensors::Dtype::F16 => Some(WeightDtype::F16),
            ::safetensors::Dtype::BF16 => Some(WeightDtype::BF16),
            ::safetensors::Dtype::F32 => Some(WeightDtype::F32),
            ::safetensors::Dtype::F64 => Some(WeightDtype::F64),
            _ => None,
        }
    }
}

/// Decodes little-endian `bytes` of `dtype` into the compute type `E` (exact unless `E` is narrower
/// than `dtype`). `bytes.len()` must be a multiple of [`WeightDtype::size`] (the callers' headers
/// guarantee it); a trailing partial element is ignored.
pub fn decode<E: Dtype>(dtype: WeightDtype, bytes: &[u8]) -> Vec<E> {
    let cast = crate::nn::from_f64::<E>;
    match dtype {
        WeightDtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| cast(half::f16::from_le_bytes([c[0], c[1]]).to_f64()))
            .collect(),
        WeightDtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| cast(half::bf16::from_le_bytes([c[0], c[1]]).to_f64()))
            .collect(),
        WeightDtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| cast(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect(),
        WeightDtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                cast(f64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]))
            })
            .collect(),
    }
}

/// Name, dtype and shape of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorMeta {
    /// Element type as stored.
    pub dtype: WeightDtype,
    /// Shape as stored (torch's order: `nn.Linear` weights are `[out, in]`).
    pub shape: Vec<usize>,
}

/// A weight file opened for reading tensors by name ([module docs](self)).
pub struct WeightFile {
    path: PathBuf,
    tensors: BTreeMap<String, TensorMeta>,
    source: Source,
}

enum Source {
    /// The mapping, and each tensor's byte range in it.
    Safetensors {
        map: filebuffer::FileBuffer,
        ranges: BTreeMap<String, (usize, usize)>,
    },
    #[cfg(feature = "pytorch")]
    PyTorch(candle_core::pickle::PthTensors),
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// First bytes of a zip archive (`torch.save` since 1.6).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

impl WeightFile {
    /// Opens `path`, recognising the format from its first bytes: a zip archive is a PyTorch
    /// checkpoint, a pickle stream (`0x80` and a protocol number) a legacy PyTorch one, anything else
    /// is parsed as safetensors (an 8-byte header length, then the JSON header). Every tensor's dtype must be one of [`WeightDtype`].
    pub fn open(path: &Path) -> Result<Self> {
        let map = filebuffer::FileBuffer::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if map.starts_with(ZIP_MAGIC) {
            drop(map);
            return Self::open_pytorch(path);
        }
        // A safetensors file starts with its header's length, then `{`; a pickle with 0x80 and the
        // protocol number.
        let safetensors_like = map.get(8) == Some(&b'{');
        if !safetensors_like
            && map.first() == Some(&0x80)
            && map.get(1).is_some_and(|p| (2..=5).contains(p))
        {
            return Err(unsupported(
                path,
                "a legacy (pre-zip) PyTorch pickle; re-save it with torch ≥ 1.6 or as safetensors",
            ));
        }
        let (header_len, meta) =
            ::safetensors::SafeTensors::read_metadata(&map[..]).map_err(|e| {
                Error::CorruptCheckpoint {
                    path: path.to_path_buf(),
                    reason: format!("not a readable safetensors file: {e:?}"),
                }
            })?;
        let mut tensors = BTreeMap::new();
        let mut ranges = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let dtype = WeightDtype::from_safetensors(info.dtype).ok_or_else(|| {
                unsupported(
                    path,
                    format!(
                        "tensor {name} has dtype {:?}; sepo reads F32, F16, BF16 and F64",
                        info.dtype
                    ),
                )
            })?;
            let (start, end) = info.data_offsets;
            // `read_metadata` checked that the ranges tile the data section exactly.
            ranges.insert(name.clone(), (8 + header_len + start, 8 + header_len + end));
            tensors.insert(
                name,
                TensorMeta {
                    dtype,
                    shape: info.shape.clone(),
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            source: Source::Safetensors { map, ranges },
        })
    }

    #[cfg(feature = "pytorch")]
    fn open_pytorch(path: &Path) -> Result<Self> {
        use candle_core::DType;
        let corrupt = |e: candle_core::Error| Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason: format!("PyTorch archive: {e}"),
        };
        let pth = candle_core::pickle::PthTensors::new(path, None).map_err(corrupt)?;
        let mut tensors = BTreeMap::new();
        for (name, info) in pth.tensor_infos() {
            let dtype = match info.dtype {
                DType::F16 => WeightDtype::F16,
                DType::BF16 => WeightDtype::BF16,
                DType::F32 => WeightDtype::F32,
                DType::F64 => WeightDtype::F64,
                other => {
                    return Err(unsupported(
                        path,
                        format!(
                            "tensor {name} has dtype {other:?}; sepo reads F32, F16, BF16 and F64"
                        ),
                    ))
                }
            };
            tensors.insert(
                name.clone(),
                TensorMeta {
                    dtype,
                    shape: info.layout.dims().to_vec(),
                },
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            source: Source::PyTorch(pth),
        })
    }

    #[cfg(not(feature = "pytorch"))]
    fn open_pytorch(path: &Path) -> Result<Self> {
        Err(unsupported(
            path,
            "a PyTorch zip-pickle archive; build sepo-core with the `pytorch` feature to read it",
        ))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor's name, dtype and shape, by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorMeta> {
        &self.tensors
    }

    /// Reads tensor `name` (row-major, its stored shape) into the compute type; a NaN or infinite
    /// value is [`Error::CorruptCheckpoint`], a missing name [`Error::CheckpointMismatch`].
    pub fn read<E: Dtype>(&self, name: &str) -> Result<Vec<E>> {
        let meta = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::CheckpointMismatch {
                path: self.path.clone(),
                what: format!("tensor {name}"),
                expected: "present".into(),
                found: "nothing".into(),
            })?;
        let values: Vec<E> = match &self.source {
            Source::Safetensors { map, ranges } => {
                let (start, end) = ranges[name];
                decode(meta.dtype, &map[start..end])
            }
            #[cfg(feature = "pytorch")]
            Source::PyTorch(pth) => {
                let corrupt = |e: candle_core::Error| Error::CorruptCheckpoint {
                    path: self.path.clone(),
                    reason: format!("tensor {name}: {e}"),
                };
                let t =
                    pth.get(name)
                        .map_err(corrupt)?
                        .ok_or_else(|| Error::CorruptCheckpoint {
                            path: self.path.clone(),
                            reason: format!("tensor {name} listed but not stored"),
                        })?;
                // Widening to f64 is exact for every accepted dtype.
                let flat = t
                    .to_dtype(candle_core::DType::F64)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f64>())
                    .map_err(corrupt)?;
                crate::nn::from_f64s(&flat)
            }
        };
        if let Some(i) = values
            .iter()
            .position(|v| !v.to_f64().is_some_and(f64::is_finite))
        {
            return Err(Error::CorruptCheckpoint {
                path: self.path.clone(),
                reason: format!("tensor {name} holds a non-finite value at index {i}"),
            });
        }
        Ok(values)
    }
}

fn unsupported(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsupportedWeights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_formats_decode_exactly() {
        // 1.5 = 0x3E00 (f16), 0x3FC0 (bf16); −2 = 0xC000 (f16), 0xC000 (bf16); 2^-24 = 0x0001 (f16).
        let f16_bytes = [0x00, 0x3E, 0x00, 0xC0, 0x01, 0x00];
        let v: Vec<f64> = decode(WeightDtype::F16, &f16_bytes);
        assert_eq!(v, vec![1.5, -2.0, 2f64.powi(-24)]);
        let bf16_bytes = [0xC0, 0x3F, 0x00, 0xC0];
        let v: Vec<f32> = decode(WeightDtype::BF16, &bf16_bytes);
        assert_eq!(v, vec![1.5, -2.0]);
    }

    #[test]
    fn unknown_or_damaged_files_are_typed_errors() {
        let dir = std::env::temp_dir().join(format!("sepo-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let legacy = dir.join("legacy.bin");
        std::fs::write(&legacy, [0x80, 0x02, 0x8a, 0x0a]).unwrap();
        assert!(matches!(
            WeightFile::open(&legacy),
            Err(Error::UnsupportedWeights { .. })
        ));
        let junk = dir.join("junk.safetensors");
        std::fs::write(&junk, b"GGUF\x03\x00\x00\x00").unwrap();
        assert!(matches!(
            WeightFile::open(&junk),
            Err(Error::CorruptCheckpoint { .. })
        ));
        // An integer tensor: readable safetensors, unsupported dtype.
        let ints = dir.join("ints.safetensors");
        let data = [0u8; 8];
        let view =
            ::safetensors::tensor::TensorView::new(::safetensors::Dtype::I64, vec![1], &data)
                .unwrap();
        let bytes = ::safetensors::serialize(vec![("steps", view)], &None).unwrap();
        std::fs::write(&ints, bytes).unwrap();
        assert!(matches!(
            WeightFile::open(&ints),
            Err(Error::UnsupportedWeights { .. })
        ));
        assert!(matches!(
            WeightFile::open(&dir.join("missing.safetensors")),
            Err(Error::Io { .. })
        ));
    }
}
