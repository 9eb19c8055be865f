//! Checkpoint I/O: safetensors files written atomically (temporary file, fsync, rename) and read back
//! with every mismatch reported as a typed error.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::{from_f64s, to_f64s, AdamWState, ParamStore};

/// Writes `bytes` to `path` atomically: a reader sees the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// One tensor read from a file: its shape and values (converted to `f64`, exactly: every accepted
/// dtype, F32, F64, F16 and BF16, is representable).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f64>,
}

/// Serialises named tensors to safetensors bytes, in `f32` when `f32_storage` and `f64` otherwise.
pub fn to_safetensors(
    tensors: &[(String, Vec<usize>, Vec<f64>)],
    f32_storage: bool,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let buffers: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| {
            if f32_storage {
                v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
            } else {
                v.iter().flat_map(|&x| x.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if f32_storage {
        ::safetensors::Dtype::F32
    } else {
        ::safetensors::Dtype::F64
    };
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, shape, _), buf) in tensors.iter().zip(&buffers) {
        let view =
            ::safetensors::tensor::TensorView::new(dtype, shape.clone(), buf).map_err(|e| {
                Error::Device {
                    op: "to_safetensors",
                    message: format!("{name}: {e:?}"),
                }
            })?;
        views.push((name.clone(), view));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    ::safetensors::serialize(views, &Some(meta)).map_err(|e| Error::Device {
        op: "to_safetensors",
        message: format!("{e:?}"),
    })
}

/// Reads a safetensors file (memory-mapped) into host tensors plus its metadata.
pub fn read_safetensors(
    path: &Path,
) -> Result<(BTreeMap<String, HostTensor>, BTreeMap<String, String>)> {
    let bytes = filebuffer::FileBuffer::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_safetensors(&bytes).map_err(|reason| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    })
}

/// Tensors by name and the string metadata of a safetensors file.
type Parsed = (BTreeMap<String, HostTensor>, BTreeMap<String, String>);

fn parse_safetensors(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let st = ::safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("{e:?}"))?;
    let (_, meta) =
        ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| format!("{e:?}"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values = match crate::nn::weights::WeightDtype::from_safetensors(view.dtype()) {
            Some(dtype) => crate::nn::weights::decode::<f64>(dtype, data),
            None => {
                return Err(format!(
                    "tensor {name} has dtype {:?}; sepo reads F32, F16, BF16 and F64",
                    view.dtype()
                ))
            }
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    let metadata = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok((out, metadata))
}

fn is_f32<E: Dtype>() -> bool {
    std::mem::size_of::<E>() == 4
}

impl<E: Dtype, D: Device<E>> ParamStore<E, D> {
    /// Saves every parameter (under its name) atomically, with `metadata` in the header.
    pub fn save(&self, path: &Path, metadata: &BTreeMap<String, String>) -> Result<()> {
        write_atomic(path, &self.to_safetensors_bytes(metadata)?)
    }

    /// The safetensors bytes [`ParamStore::save`] writes (every parameter under its name, in the
    /// store's dtype, with `metadata` in the header).
    pub fn to_safetensors_bytes(&self, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        let tensors: Vec<_> = self
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone(), to_f64s(&p.tensor.as_vec())))
            .collect();
        to_safetensors(&tensors, is_f32::<E>(), metadata)
    }

    /// Loads every parameter by name; the file must hold each of them with the same shape (F32,
    /// F64, F16 or BF16, converted to the store's dtype). The file is memory-mapped, not read into
    /// memory. Nothing is changed unless the whole file fits. Returns the file's metadata.
    pub fn load(&mut self, path: &Path) -> Result<BTreeMap<String, String>> {
        let map = filebuffer::FileBuffer::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(&map, path)
    }

    /// [`ParamStore::load`] from bytes already read (and checked) from `path`, which names the file
    /// in errors; a non-finite weight is [`Error::CorruptCheckpoint`].
    pub fn load_bytes(&mut self, bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
        let (tensors, metadata) =
            parse_safetensors(bytes).map_err(|reason| Error::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason,
            })?;
        let mut values = Vec::with_capacity(self.len());
        for p in self.params() {
            let t = tensors
                .get(&p.name)
                .ok_or_else(|| Error::CheckpointMismatch {
                    path: path.to_path_buf(),
                    what: format!("tensor {}", p.name),
                    expected: format!("{:?}", p.shape),
                    found: "nothing".into(),
                })?;
            if t.shape != p.shape {
                return Err(Error::CheckpointMismatch {
                    path: path.to_path_buf(),
                    what: format!("shape of {}", p.name),
                    expected: format!("{:?}", p.shape),
                    found: format!("{:?}", t.shape),
                });
            }
            // A NaN or ±∞ weight (a diverged run, or bytes committed damaged) would read as NaN scores.
            if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
                return Err(Error::CorruptCheckpoint {
                    path: path.to_path_buf(),
                    reason: format!("tensor {} holds {} at index {i}", p.name, t.values[i]),
                });
            }
            values.push(from_f64s::<E>(&t.values));
        }
        for (i, v) in values.into_iter().enumerate() {
            self.set_values(crate::nn::ParamId(i), v)?;
        }
        Ok(metadata)
    }
}

/// Saves AdamW moments (`m.<name>`, `v.<name>`) and the step counter (metadata `step`) atomically.
pub fn save_adamw<E: Dtype, D: Device<E>>(
    store: &ParamStore<E, D>,
    state: &AdamWState<E, D>,
    path: &Path,
) -> Result<()> {
    write_atomic(path, &adamw_to_bytes(store, state)?)
}

/// The safetensors bytes [`save_adamw`] writes.
pub fn adamw_to_bytes<E: Dtype, D: Device<E>>(
    store: &ParamStore<E, D>,
    state: &AdamWState<E, D>,
) -> Result<Vec<u8>> {
    let mut tensors = Vec::with_capacity(2 * store.len());
    for (i, p) in store.params().iter().enumerate() {
        tensors.push((
            format!("m.{}", p.name),
            p.shape.clone(),
            to_f64s(&state.m[i].as_vec()),
        ));
        tensors.push((
            format!("v.{}", p.name),
            p.shape.clone(),
            to_f64s(&state.v[i].as_vec()),
        ));
    }
    let mut meta = BTreeMap::new();
    meta.insert("step".to_string(), state.step.to_string());
    to_safetensors(&tensors, is_f32::<E>(), &meta)
}

/// Loads AdamW state saved by [`save_adamw`] for the same store layout.
pub fn load_adamw<E: Dtype, D: Device<E>>(
    store: &ParamStore<E, D>,
    path: &Path,
) -> Result<AdamWState<E, D>> {
    let bytes = filebuffer::FileBuffer::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_adamw_bytes(store, &bytes, path)
}

/// [`load_adamw`] from bytes already read (and checked) from `path`, which names the file in errors.
pub fn load_adamw_bytes<E: Dtype, D: Device<E>>(
    store: &ParamStore<E, D>,
    bytes: &[u8],
    path: &Path,
) -> Result<AdamWState<E, D>> {
    let (tensors, meta) = parse_safetensors(bytes).map_err(|reason| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    })?;
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    };
    let step = meta
        .get("step")
        .ok_or_else(|| corrupt("no `step` in metadata".into()))?
        .parse::<u64>()
        .map_err(|e| corrupt(format!("bad `step`: {e}")))?;
    let dev = store.device();
    let get = |key: String, shape: &[usize]| -> Result<Tensor<(usize,), E, D>> {
        let t = tensors.get(&key).ok_or_else(|| Error::CheckpointMismatch {
            path: path.to_path_buf(),
            what: format!("tensor {key}"),
            expected: format!("{shape:?}"),
            found: "nothing".into(),
        })?;
        if t.shape != shape {
            return Err(Error::CheckpointMismatch {
                path: path.to_path_buf(),
                what: format!("shape of {key}"),
                expected: format!("{shape:?}"),
                found: format!("{:?}", t.shape),
            });
        }
        dev.try_tensor_from_vec(from_f64s(&t.values), (t.values.len(),))
            .map_err(Error::device("load_adamw"))
    };
    let mut m = Vec::with_capacity(store.len());
    let mut v = Vec::with_capacity(store.len());
    for p in store.params() {
        m.push(get(format!("m.{}", p.name), &p.shape)?);
        v.push(get(format!("v.{}", p.name), &p.shape)?);
    }
    Ok(AdamWState { step, m, v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{AdamW, Grads, Init};

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sepo-io-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("x.safetensors")
    }

    #[test]
    fn params_and_moments_round_trip_bit_identically() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f32, Cpu>::new(&dev, 3);
        store
            .add("a.weight", &[3, 2], Init::Normal { std: 1.0 })
            .unwrap();
        store
            .add("a.bias", &[2], Init::Uniform { bound: 0.5 })
            .unwrap();
        let cfg = AdamW::default();
        let mut state = cfg.init(&store);
        let mut g = Grads::zeros(&store);
        g.tensors[0] = dev.sample_normal_like(&(6,));
        cfg.step(1e-2, &mut store, &mut state, &g).unwrap();

        let path = tmp("roundtrip");
        let mut meta = BTreeMap::new();
        meta.insert("kind".to_string(), "test".to_string());
        store.save(&path, &meta).unwrap();
        let mut other = ParamStore::<f32, Cpu>::new(&dev, 99);
        other.add("a.weight", &[3, 2], Init::Zeros).unwrap();
        other.add("a.bias", &[2], Init::Zeros).unwrap();
        assert_eq!(other.load(&path).unwrap()["kind"], "test");
        let bits = |s: &ParamStore<f32, Cpu>| {
            s.to_host()
                .into_iter()
                .flat_map(|(_, _, v)| v)
                .map(f32::to_bits)
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&store), bits(&other));

        let opt_path = path.with_extension("opt");
        save_adamw(&store, &state, &opt_path).unwrap();
        let back = load_adamw(&store, &opt_path).unwrap();
        assert_eq!(back.step, 1);
        for (a, b) in state
            .m
            .iter()
            .chain(&state.v)
            .zip(back.m.iter().chain(&back.v))
        {
            assert_eq!(a.as_vec(), b.as_vec());
        }
    }

    #[test]
    fn truncated_or_mismatched_files_are_typed_errors() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f32, Cpu>::new(&dev, 0);
        store.add("w", &[4], Init::Ones).unwrap();
        let path = tmp("corrupt");
        store.save(&path, &BTreeMap::new()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                matches!(store.load(&path), Err(Error::CorruptCheckpoint { .. })),
                "cut at {cut}"
            );
        }
        assert_eq!(
            store.flat_f64(),
            vec![1.0; 4],
            "a failed load changes nothing"
        );

        std::fs::write(&path, &bytes).unwrap();
        let mut wider = ParamStore::<f32, Cpu>::new(&dev, 0);
        wider.add("w", &[5], Init::Zeros).unwrap();
        assert!(matches!(
            wider.load(&path),
            Err(Error::CheckpointMismatch { .. })
        ));
        let mut renamed = ParamStore::<f32, Cpu>::new(&dev, 0);
        renamed.add("v", &[4], Init::Zeros).unwrap();
        assert!(matches!(
            renamed.load(&path),
            Err(Error::CheckpointMismatch { .. })
        ));
        assert!(matches!(
            store.load(Path::new("/nonexistent/x")),
            Err(Error::Io { .. })
        ));
    }
}
