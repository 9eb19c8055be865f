//! # sepo-core
//!
//! Discrete diffusion with the concrete score, and its fine-tuning by policy gradients (SEPO).
//!
//! Data flows one way through the modules:
//!
//! ```text
//!   graph, schedule        the forward corruption  p_t(y | x) = exp(σ̄(t) Q)(x, y)
//!        │
//!   score                  networks  s_θ(x, σ̄)_y ≈ p_t(y)/p_t(x)
//!        │
//!   sample                 reverse-time samplers → tokens + trajectories
//!        │
//!   loss                   denoising score entropy (pretraining)
//!        │
//!   train                  optimiser loop, checkpoints, metrics
//! ```
//!
//! `nn` is the thin layer over dfdx (parameters, AdamW, clipping, stop-gradient, safetensors) that every
//! other module uses. `text` turns strings and sequence files into tokens and back (tokenizers, corpora,
//! infilling prompts, sample metrics).
#![warn(missing_docs)]

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
