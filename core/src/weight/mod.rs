//! Weights on samples: advantages (baselines, GRPO standardisation), importance weights in log space,
//! effective sample size and resampling, and estimator mixtures (multiple importance sampling,
//! defensive mixtures, control variates: [`mixture`]). The samplers built on them (SMC, value-guided
//! decoding) live in [`crate::sample::guided`]; the allocation of a budget across prompts in
//! [`crate::train::allocation`].

pub mod advantage;
pub mod importance;
pub mod mixture;
pub mod resample;

pub use advantage::{advantages, advantages_by_group, Baseline};
pub use importance::{log_sum_exp, path_log_weights, LogWeights};
pub use mixture::{control_variate, self_normalized, ControlVariate, Estimate, Mis};
pub use resample::Resampling;
