//! Weights on samples: advantages (baselines, GRPO standardisation), importance weights in log space,
//! effective sample size, resampling, and what is built on them: sequential Monte Carlo along the reverse
//! chain ([`smc()`]), value-guided decoding ([`value_guided`]), estimator mixtures (multiple importance
//! sampling, defensive mixtures, control variates: [`mixture`]) and adaptive allocation of a sample
//! budget across prompts ([`allocation`]).

pub mod advantage;
pub mod allocation;
pub mod chain;
pub mod guidance;
pub mod importance;
pub mod mixture;
pub mod planner;
pub mod resample;
pub mod smc;

pub use advantage::{advantages, advantages_by_group, Baseline};
pub use allocation::{Allocation, Allocator, Neyman, Sequential, SequentialOutcome};
pub use chain::{Chain, Denoised};
pub use guidance::{value_guided, GuidanceConfig, Guided};
pub use importance::{log_sum_exp, path_log_weights, LogWeights};
pub use mixture::{control_variate, self_normalized, ControlVariate, Estimate, Mis};
pub use planner::{Adaptive, Planner};
pub use resample::Resampling;
pub use smc::{smc, Potential, PotentialInput, RewardPotential, SmcConfig, SmcOutput, Tempering};
