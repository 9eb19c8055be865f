//! Score models with an energy head: `π_θ ∝ exp φ_θ`, whose gradient is the single loop's
//! [`StateGradient::Energy`](crate::policy::StateGradient::Energy).

use dfdx::prelude::*;

use super::{Mlp, ModelValues, Params, ScoreModel, Tabular, Tokens, Transformer};
use crate::error::Result;
use crate::nn::{upload, ParamStore};

/// A score model that may also expose a differentiable log-potential `φ_θ(x)` with `π_θ ∝ exp φ_θ`.
/// The default has none; [`Tabular`] returns its logit `θ_x`.
pub trait EnergyModel: ScoreModel {
    /// `φ_θ(x_b)` for `tokens [B, L]` (clean) under `params`, recorded on `tape`; `Ok(None)` without
    /// an energy head, [`crate::Error::Device`] when an upload fails.
    fn log_potential_with<T: Tape<Self::Elem, Self::Device>>(
        &self,
        params: &Params<Self>,
        tokens: &Tokens<Self::Device>,
        tape: T,
    ) -> Result<Option<ModelValues<Self, T>>> {
        let _ = (params, tokens, tape);
        Ok(None)
    }
}

impl<E: Dtype, D: Device<E>> EnergyModel for Tabular<E, D> {
    /// `φ_θ(x) = θ_x`, the logit of the sequence.
    fn log_potential_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        tape: T,
    ) -> Result<Option<Tensor<(usize,), E, D, T>>> {
        let (b, l) = *tokens.shape();
        let x = tokens.as_vec();
        let index: Vec<usize> = (0..b)
            .map(|i| self.index_of(&x[i * l..(i + 1) * l]))
            .collect();
        let index = upload(
            tokens.device(),
            index,
            (b,),
            "Tabular::log_potential_with (index)",
        )?;
        Ok(Some(
            params.vector(self.logits_id()).put_tape(tape).gather(index),
        ))
    }
}

impl<E: Dtype, D: Device<E>> EnergyModel for Mlp<E, D> {}
impl<E: Dtype, D: crate::nn::kernels::Kernels<E>> EnergyModel for Transformer<E, D> {}
