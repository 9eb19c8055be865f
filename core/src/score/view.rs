//! A model under given parameters: the policy `π_θ` that samplers draw from and estimators score.

use super::{Params, ScoreModel};

/// A view of a [`ScoreModel`] evaluated with a given parameter store: the model's own weights θ, a
/// frozen snapshot θ_old or the reference θ_ref (the same architecture, three stores). Cheap to copy.
pub struct Policy<'a, M: ScoreModel + ?Sized> {
    /// The architecture.
    pub model: &'a M,
    /// The weights it is evaluated with.
    pub params: &'a Params<M>,
}

impl<'a, M: ScoreModel + ?Sized> Policy<'a, M> {
    /// `model` under `params` (a store with the model's layout: its own, a snapshot's or a reference's).
    pub fn new(model: &'a M, params: &'a Params<M>) -> Self {
        Self { model, params }
    }

    /// `model` under its own trainable parameters.
    pub fn current(model: &'a M) -> Self {
        Self {
            model,
            params: model.params(),
        }
    }
}

impl<M: ScoreModel + ?Sized> Clone for Policy<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: ScoreModel + ?Sized> Copy for Policy<'_, M> {}

impl<M: ScoreModel + ?Sized> std::fmt::Debug for Policy<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("num_states", &self.model.num_states())
            .field("parameters", &self.params.len())
            .finish()
    }
}
