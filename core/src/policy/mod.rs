//! Policy gradients through the concrete score (SEPO), docs/sepo.md.
//!
//! The score network is the policy. For clean samples `x` with advantages `A`, the estimators here build
//! the PPO-clip surrogate of [`ppo_clip`](fn@crate::loss::ppo_clip) from the weighted log concrete score
//! `∇ log π_θ(x) ≈ −Σ_{l, v≠x_l} π_θ(x^{l←v}) ∇ log s_θ(x)_{l,v}`.

pub mod clean;
pub mod concrete;
pub mod estimator;
pub mod events;
pub mod ift;
pub mod neighbour;
pub mod reweight;
pub mod trajectory;

pub use crate::score::CleanScores;
pub use crate::score::EnergyModel;
pub use clean::{all_positions, clean_entropy, clean_log_scores, log_conditionals};
pub use concrete::{ConcreteScore, GRAD_TOKENS};
pub use estimator::{Component, Estimator, Mixture};
pub use events::{
    event_log_conditionals, events_log_prob, events_ppo_grads, unmasking_events, Event,
};
pub use ift::{ift_estimate, ift_weights, Ift, StateGradient, SurrogateWeights};
pub use neighbour::{
    conditional_log_weights, neighbour_log_weights, snis_forwards, NeighbourWeights,
};
pub use reweight::{control_variate_advantages, snis_advantages, Reweight};
pub use trajectory::{path_log_prob, trajectory_ppo_grads};

#[cfg(test)]
mod tests;
