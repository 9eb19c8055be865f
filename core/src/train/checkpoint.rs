//! Checkpoints: a directory whose files are committed together as one generation (see
//! [`crate::train::commit`] for the layout, the protocol and its guarantees). A model's generation holds
//! `model.safetensors` (weights) and `config.json` (what the model is and how it was trained), pretrained
//! or fine-tuned alike; a resumable run adds its optimiser and trainer state. Every read is checked
//! against the manifest; loading a damaged, truncated or mismatched checkpoint is a typed error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dfdx::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::nn::io::{adamw_to_bytes, load_adamw_bytes};
use crate::nn::{AdamWState, ParamStore};
use crate::score::{ModelDescription, ModelKind};
use crate::train::commit::{self, Committed, DEFAULT_KEEP_LAST};

/// File name of the weights.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the model's configuration.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the optimiser state.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// A checkpoint directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The directory.
    pub dir: PathBuf,
}

#[derive(Serialize, serde::Deserialize)]
struct ConfigFile<C> {
    sepo_version: String,
    kind: String,
    dtype: String,
    model: C,
    #[serde(default)]
    extra: serde_json::Value,
}

impl Checkpoint {
    /// A checkpoint at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The published generation, opened for checked reads; [`Error::NoCheckpoint`] if nothing was
    /// committed here (a flat directory of the older layout opens unverified).
    pub fn open(&self) -> Result<Committed> {
        Committed::open(&self.dir)?.ok_or_else(|| Error::NoCheckpoint {
            path: self.dir.clone(),
        })
    }

    /// What a resume reads: removes what killed writers left ([`Self::clean`]), then opens the published
    /// generation, which must be verified by its manifest. [`Error::NoCheckpoint`] if nothing was
    /// committed; [`Error::CheckpointIntegrity`] (manifest missing) for a directory of the older
    /// per-file layout, which has no manifest to trust.
    pub fn resumable(&self) -> Result<Committed> {
        self.clean()?;
        match Committed::open(&self.dir)? {
            Some(c) if c.is_verified() => Ok(c),
            Some(_) => Err(Error::CheckpointIntegrity {
                path: self.dir.join(commit::MANIFEST),
                problem: crate::error::Integrity::Missing,
            }),
            None => Err(Error::NoCheckpoint {
                path: self.dir.clone(),
            }),
        }
    }

    /// Commits `files` (name, bytes) as one new generation, keeping the `keep_last` newest
    /// ([`commit::commit`]); returns the generation's number.
    pub fn commit(&self, files: &[(&str, &[u8])], keep_last: usize) -> Result<u64> {
        commit::commit(&self.dir, files, keep_last)
    }

    /// Removes what killed writers left here ([`commit::clean`]); returns what was removed.
    pub fn clean(&self) -> Result<Vec<PathBuf>> {
        commit::clean(&self.dir)
    }

    fn file_path(&self, name: &str) -> PathBuf {
        match Committed::open(&self.dir) {
            Ok(Some(c)) => c.path(name),
            _ => self.dir.join(name),
        }
    }

    /// Path of the weights file in the published generation (`dir/model.safetensors` when none is).
    pub fn model_path(&self) -> PathBuf {
        self.file_path(MODEL_FILE)
    }

    /// Path of the configuration file in the published generation.
    pub fn config_path(&self) -> PathBuf {
        self.file_path(CONFIG_FILE)
    }

    /// Path of the optimiser state in the published generation.
    pub fn optimizer_path(&self) -> PathBuf {
        self.file_path(OPTIMIZER_FILE)
    }

    /// The `model.safetensors` and `config.json` of a model (described by `description`, `None`
    /// for an architecture without a [`ModelKind`]: then no `config.json`), with `extra` beside the
    /// model configuration. Trainers commit these with their own files.
    pub fn model_files<E: Dtype, D: Device<E>>(
        params: &ParamStore<E, D>,
        description: Option<&ModelDescription>,
        extra: serde_json::Value,
    ) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let mut meta = BTreeMap::new();
        if let Some(d) = description {
            meta.insert("sepo.kind".to_string(), d.kind.to_string());
        }
        let mut files = vec![(MODEL_FILE, params.to_safetensors_bytes(&meta)?)];
        if let Some(d) = description {
            let file = ConfigFile {
                sepo_version: env!("CARGO_PKG_VERSION").to_string(),
                kind: d.kind.to_string(),
                dtype: d.dtype.to_string(),
                model: d.config.clone(),
                extra,
            };
            let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Io {
                path: PathBuf::from(CONFIG_FILE),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            files.push((CONFIG_FILE, json));
        }
        Ok(files)
    }

    /// Saves the model's weights and configuration as one new generation (replacing whatever the
    /// directory held); `extra` (graph, schedule, step, …) goes into `config.json` beside the model
    /// configuration.
    pub fn save_model<M: ModelKind>(&self, model: &M, extra: serde_json::Value) -> Result<()> {
        let description = ModelDescription::of(model);
        let files = Self::model_files(model.params(), Some(&description), extra)?;
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        self.commit(&refs, DEFAULT_KEEP_LAST).map(|_| ())
    }

    /// Reads `config.json`: the model configuration and the `extra` value.
    pub fn read_config<C: DeserializeOwned>(&self, kind: &str) -> Result<(C, serde_json::Value)> {
        let committed = self.open()?;
        read_config_from(&committed, kind)
    }

    /// Rebuilds the model from `config.json` and loads its weights, from a pretrained or a fine-tuned
    /// checkpoint alike.
    pub fn load_model<M: ModelKind>(&self, dev: &M::Device) -> Result<(M, serde_json::Value)> {
        let committed = self.open()?;
        let (config, extra) = read_config_from::<M::Config>(&committed, M::NAME)?;
        let mut model = M::build(&config, dev, 0)?;
        let bytes = committed.read(MODEL_FILE)?;
        model
            .params_mut()
            .load_bytes(&bytes, &committed.path(MODEL_FILE))?;
        Ok((model, extra))
    }

    /// Adds AdamW state for `store` to the published generation: commits a new one holding its files
    /// (checked) and `optimizer.safetensors`. Trainers commit everything at once instead.
    pub fn save_optimizer<E: Dtype, D: Device<E>>(
        &self,
        store: &ParamStore<E, D>,
        state: &AdamWState<E, D>,
    ) -> Result<()> {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(c) = Committed::open(&self.dir)? {
            let names: Vec<String> = match c.manifest() {
                Some(m) => m.files.keys().cloned().collect(),
                None => [MODEL_FILE, CONFIG_FILE]
                    .into_iter()
                    .filter(|n| c.contains(n))
                    .map(String::from)
                    .collect(),
            };
            for name in names.into_iter().filter(|n| n != OPTIMIZER_FILE) {
                let bytes = c.read(&name)?;
                files.push((name, bytes));
            }
        }
        files.push((OPTIMIZER_FILE.to_string(), adamw_to_bytes(store, state)?));
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        self.commit(&refs, DEFAULT_KEEP_LAST).map(|_| ())
    }

    /// Loads AdamW state for `store` from the published generation.
    pub fn load_optimizer<E: Dtype, D: Device<E>>(
        &self,
        store: &ParamStore<E, D>,
    ) -> Result<AdamWState<E, D>> {
        let committed = self.open()?;
        let bytes = committed.read(OPTIMIZER_FILE)?;
        load_adamw_bytes(store, &bytes, &committed.path(OPTIMIZER_FILE))
    }

    /// Whether the directory holds a model (a published generation with one, or the older flat
    /// layout).
    pub fn exists(&self) -> bool {
        matches!(Committed::open(&self.dir), Ok(Some(c)) if c.contains(MODEL_FILE) && c.contains(CONFIG_FILE))
    }
}

/// `config.json` of `committed`, checked, parsed for an architecture named `kind`.
fn read_config_from<C: DeserializeOwned>(
    committed: &Committed,
    kind: &str,
) -> Result<(C, serde_json::Value)> {
    let path = committed.path(CONFIG_FILE);
    let bytes = committed.read(CONFIG_FILE)?;
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.clone(),
        reason,
    };
    // The kind first, so that a checkpoint of another architecture is a mismatch, not "corrupt".
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let found = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    if found != kind {
        return Err(Error::CheckpointMismatch {
            path,
            what: "model kind".into(),
            expected: kind.into(),
            found,
        });
    }
    let file: ConfigFile<C> = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    Ok((file.model, file.extra))
}
