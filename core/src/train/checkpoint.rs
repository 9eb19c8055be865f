//! Checkpoints: a directory with `model.safetensors` (weights), `config.json` (what the model is and how
//! it was trained) and, for resumable training, `optimizer.safetensors`. Every file is written atomically;
//! loading a truncated, corrupt or mismatched checkpoint is a typed error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dfdx::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};
use crate::nn::io::{load_adamw, save_adamw, write_atomic};
use crate::nn::{AdamWState, ParamStore};
use crate::score::ScoreModel;

/// A score model that can be rebuilt from a serialisable configuration.
pub trait ModelKind: ScoreModel + Sized {
    /// The architecture's configuration.
    type Config: Serialize + DeserializeOwned + Clone + std::fmt::Debug;
    /// Name written in `config.json` (`"transformer"`, `"mlp"`).
    const NAME: &'static str;
    /// This model's configuration.
    fn config(&self) -> &Self::Config;
    /// Builds a freshly initialised model.
    fn build(config: &Self::Config, dev: &Self::Device, seed: u64) -> Result<Self>;
}

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

fn dtype_name<E: Dtype>() -> &'static str {
    if std::mem::size_of::<E>() == 4 {
        "f32"
    } else {
        "f64"
    }
}

impl Checkpoint {
    /// A checkpoint at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Path of the weights file.
    pub fn model_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// Path of the configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Path of the optimiser state.
    pub fn optimizer_path(&self) -> PathBuf {
        self.dir.join("optimizer.safetensors")
    }

    /// Saves the model's weights and configuration; `extra` (graph, schedule, step, …) goes into
    /// `config.json` beside the model configuration.
    pub fn save_model<M: ModelKind>(&self, model: &M, extra: serde_json::Value) -> Result<()> {
        let mut meta = BTreeMap::new();
        meta.insert("sepo.kind".to_string(), M::NAME.to_string());
        model.params().save(&self.model_path(), &meta)?;
        let file = ConfigFile {
            sepo_version: env!("CARGO_PKG_VERSION").to_string(),
            kind: M::NAME.to_string(),
            dtype: dtype_name::<M::Elem>().to_string(),
            model: model.config().clone(),
            extra,
        };
        let json = serde_json::to_vec_pretty(&file).expect("configs serialise");
        write_atomic(&self.config_path(), &json)
    }

    /// Reads `config.json`: the model configuration and the `extra` value.
    pub fn read_config<C: DeserializeOwned>(&self, kind: &str) -> Result<(C, serde_json::Value)> {
        let path = self.config_path();
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
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
        let file: ConfigFile<C> =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        Ok((file.model, file.extra))
    }

    /// Rebuilds the model from `config.json` and loads its weights.
    pub fn load_model<M: ModelKind>(&self, dev: &M::Device) -> Result<(M, serde_json::Value)> {
        let (config, extra) = self.read_config::<M::Config>(M::NAME)?;
        let mut model = M::build(&config, dev, 0)?;
        model.params_mut().load(&self.model_path())?;
        Ok((model, extra))
    }

    /// Saves AdamW state for `store`.
    pub fn save_optimizer<E: Dtype, D: Device<E>>(
        &self,
        store: &ParamStore<E, D>,
        state: &AdamWState<E, D>,
    ) -> Result<()> {
        save_adamw(store, state, &self.optimizer_path())
    }

    /// Loads AdamW state for `store`.
    pub fn load_optimizer<E: Dtype, D: Device<E>>(
        &self,
        store: &ParamStore<E, D>,
    ) -> Result<AdamWState<E, D>> {
        load_adamw(store, &self.optimizer_path())
    }

    /// Whether the directory holds a model.
    pub fn exists(&self) -> bool {
        Path::new(&self.model_path()).exists() && Path::new(&self.config_path()).exists()
    }
}

impl<E: Dtype, D: Device<E>> ModelKind for crate::score::Mlp<E, D> {
    type Config = crate::score::MlpConfig;
    const NAME: &'static str = "mlp";
    fn config(&self) -> &Self::Config {
        crate::score::Mlp::config(self)
    }
    fn build(config: &Self::Config, dev: &D, seed: u64) -> Result<Self> {
        crate::score::Mlp::new(*config, dev, seed)
    }
}

impl<E: Dtype, D: Device<E>> ModelKind for crate::score::Transformer<E, D> {
    type Config = crate::score::TransformerConfig;
    const NAME: &'static str = "transformer";
    fn config(&self) -> &Self::Config {
        crate::score::Transformer::config(self)
    }
    fn build(config: &Self::Config, dev: &D, seed: u64) -> Result<Self> {
        crate::score::Transformer::new(*config, dev, seed)
    }
}
