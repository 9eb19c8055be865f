//! # sepo-core
//!
//! Discrete diffusion with the concrete score, and its fine-tuning by policy gradients (SEPO).
//!
//! Data flows one way through the modules; a module imports only modules above it (the import graph
//! is a DAG, checked in docs/ARCHITECTURE.md):
//!
//! ```text
//!   error, check, categorical,     leaves: typed errors, input validation and size caps,
//!   sequences, nn                  f64 categorical draws, the flat batch view, the layer over dfdx
//!        │
//!   graph, schedule, diffusion     the forward corruption  p_t(y | x) = exp(σ̄(t) Q)(x, y)
//!        │
//!   score                          networks s_θ(x, σ̄)_y ≈ p_t(y)/p_t(x); the Policy view (a model
//!        │                         under given weights), energy heads, how clean-end scores are read
//!   data, text, reward, weight     corpora and tokenizers; rewards; advantages, importance weights,
//!        │                         resampling, estimator mixtures (host-side, no model)
//!   sample                         the reverse chain (start / propose / take / advance) and every
//!        │                         sampler driving it: grid, first-hitting, SMC, value-guided
//!   loss                           score entropy (pretraining), PPO clip, the path KL
//!        │
//!   policy, flow                   log-probability estimators of SEPO (trajectory, events, concrete
//!        │                         score, IFT); the gradient-flow chain of the single loop
//!   train                          trainers: pretraining, the two-loop Finetuner, the single loop,
//!                                  allocation of a round's budget, checkpoints, metrics
//! ```
//!
//! A round of fine-tuning follows the same arrow: a reward scores trajectories drawn by a sampler,
//! `weight` turns rewards into advantages, `policy` + `loss` into a surrogate, `nn` steps the optimiser.
//! Test fixtures (`flow::exact`, `flow::linalg`, `nn::gradcheck`: dense exact solutions and finite
//! differences) are compiled only for tests or with the `testing` feature.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod categorical;
pub mod check;
pub mod data;
pub mod diffusion;
pub mod error;
pub mod flow;
pub mod graph;
pub mod loss;
pub mod nn;
pub mod policy;
pub mod reward;
pub mod sample;
pub mod schedule;
pub mod score;
pub mod sequences;
pub mod text;
pub mod train;
pub mod weight;

pub use diffusion::Diffusion;
pub use error::{Error, Result};
pub use score::Policy;
pub use sequences::Sequences;

/// Re-export of the tensor library, for users who implement their own [`score::ScoreModel`].
pub use dfdx;
