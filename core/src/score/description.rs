//! What a saved model is: the architecture's name, dtype and configuration, written to `config.json`,
//! and the architectures that can be rebuilt from it ([`ModelKind`]).

use dfdx::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

use super::ScoreModel;
use crate::error::Result;

/// What `config.json` records about a model: enough for [`crate::train::Checkpoint::load_model`] to rebuild it.
/// [`ScoreModel::description`] returns it for the architectures that implement [`ModelKind`], so
/// trainers generic over any score model (the fine-tuner) still write a loadable `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDescription {
    /// [`ModelKind::NAME`].
    pub kind: &'static str,
    /// `"f32"` or `"f64"`.
    pub dtype: &'static str,
    /// [`ModelKind::config`], serialised.
    pub config: serde_json::Value,
}

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

impl ModelDescription {
    /// The description of `model`.
    pub fn of<M: ModelKind>(model: &M) -> Self {
        Self {
            kind: M::NAME,
            dtype: dtype_name::<M::Elem>(),
            config: serde_json::to_value(model.config()).expect("model configs serialise"),
        }
    }
}

/// `"f32"` for 4-byte dtypes, `"f64"` otherwise.
pub fn dtype_name<E: Dtype>() -> &'static str {
    if std::mem::size_of::<E>() == 4 {
        "f32"
    } else {
        "f64"
    }
}

impl<E: Dtype, D: Device<E>> ModelKind for super::Mlp<E, D> {
    type Config = super::MlpConfig;
    const NAME: &'static str = "mlp";
    fn config(&self) -> &Self::Config {
        super::Mlp::config(self)
    }
    fn build(config: &Self::Config, dev: &D, seed: u64) -> Result<Self> {
        super::Mlp::new(*config, dev, seed)
    }
}

impl<E: Dtype, D: crate::nn::kernels::Kernels<E>> ModelKind for super::Transformer<E, D> {
    type Config = super::TransformerConfig;
    const NAME: &'static str = "transformer";
    fn config(&self) -> &Self::Config {
        super::Transformer::config(self)
    }
    fn build(config: &Self::Config, dev: &D, seed: u64) -> Result<Self> {
        super::Transformer::new(*config, dev, seed)
    }
}
