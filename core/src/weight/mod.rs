//! Weights on samples: advantages (baselines, GRPO standardisation), importance weights in log space,
//! effective sample size, and resampling.

pub mod advantage;
pub mod importance;
pub mod resample;

pub use advantage::{advantages, Baseline};
pub use importance::{log_sum_exp, path_log_weights, LogWeights};
pub use resample::Resampling;
