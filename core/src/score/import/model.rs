//! [`ImportedDit`]: a published DiT (SEDD's or MDLM's) as a sepo [`ScoreModel`]: sepo's
//! [`Transformer`] trunk under the family's parameter names, then the family's output map.

use dfdx::prelude::*;

use super::config::{ImportedConfig, Output};
use crate::error::Result;
use crate::nn::ParamStore;
use crate::score::{LogScores, ModelDescription, ModelKind, ScoreModel, Tokens, Transformer};

/// A SEDD or MDLM network: `log s = Output(Trunk(x, σ̃), x, σ̄)` with `σ̃ = σ̄`, or `0` for MDLM
/// without time conditioning ([`Output::conditions_on_sigma`]).
///
/// The trunk is SEDD's `DDiT` (MDLM's is the same module): token embedding, `silu(TimestepEmbedder(σ̃))`
/// conditioning, adaLN-Zero blocks with rotary attention, the adaLN final layer. Its parameters carry
/// SEDD's names (`blocks.0.attn_qkv.weight`, …), matrices stored `[d_in, d_out]`; the importer maps
/// torch's names and `[out, in]` layout onto them ([`super::load`]).
#[derive(Debug, Clone)]
pub struct ImportedDit<E: Dtype, D: Device<E>> {
    config: ImportedConfig,
    trunk: Transformer<E, D>,
}

impl<E: Dtype, D: Device<E>> ImportedDit<E, D> {
    /// Checks `config` ([`ImportedConfig::check`]) and builds the network, initialised from `seed`
    /// like a fresh [`Transformer`] (load weights with [`super::load`]'s functions).
    pub fn new(config: ImportedConfig, dev: &D, seed: u64) -> Result<Self> {
        config.check()?;
        Ok(Self {
            config,
            trunk: Transformer::new(config.trunk, dev, seed)?,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ImportedConfig {
        &self.config
    }

    /// The DiT trunk (raw logits, `0` at the current token).
    pub fn trunk(&self) -> &Transformer<E, D> {
        &self.trunk
    }

    /// The output map.
    pub fn output(&self) -> Output {
        self.config.output
    }
}

impl<E: Dtype, D: Device<E>> ScoreModel for ImportedDit<E, D> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.trunk.num_states()
    }

    fn max_len(&self) -> Option<usize> {
        self.trunk.max_len()
    }

    fn params(&self) -> &ParamStore<E, D> {
        self.trunk.params()
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        self.trunk.params_mut()
    }

    fn description(&self) -> Option<ModelDescription> {
        Some(ModelDescription::of(self))
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> LogScores<E, D, T> {
        let zeros;
        let sigma_in = if self.config.output.conditions_on_sigma() {
            sigma_bar
        } else {
            zeros = vec![0.0; sigma_bar.len()];
            &zeros
        };
        let logits = self.trunk.forward_with(params, tokens, sigma_in, tape);
        self.config.output.apply(logits, tokens, sigma_bar)
    }
}

impl<E: Dtype, D: Device<E>> ModelKind for ImportedDit<E, D> {
    type Config = ImportedConfig;
    const NAME: &'static str = "imported_dit";
    fn config(&self) -> &Self::Config {
        &self.config
    }
    fn build(config: &Self::Config, dev: &D, seed: u64) -> Result<Self> {
        Self::new(*config, dev, seed)
    }
}
