//! Weights on samples: advantages (baselines, GRPO standardisation) now; importance weights, ESS and SMC
//! build here later.

pub mod advantage;

pub use advantage::{advantages, Baseline};
