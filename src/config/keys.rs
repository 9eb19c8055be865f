//! The keys of a run configuration file: exactly `policy!`'s (its docs' table is the reference for
//! values and defaults), in the same order.

/// Every key, in the order of `policy!`'s table.
pub const KEYS: &[&str] = &[
    "mode",
    "model",
    "graph",
    "schedule",
    "sampler",
    "reward",
    "eval_reward",
    "prompts",
    "log_prob",
    "estimator",
    "kl",
    "kl_mode",
    "kl_last_steps",
    "optimizer",
    "lr_schedule",
    "grad_clip",
    "batch",
    "groups",
    "group_size",
    "allocation",
    "iterations",
    "epochs",
    "minibatch",
    "seq_len",
    "seed",
    "metrics",
    "checkpoint_dir",
    "progress",
];

/// Models loaded from a checkpoint.
pub const MODELS: &[&str] = &["Transformer", "Mlp"];
/// Graphs over the model's states.
pub const GRAPHS: &[&str] = &["Absorbing", "Uniform"];
/// Built-in schedules ([`crate::config::AnySchedule`]).
pub const SCHEDULES: &[&str] = &["LogLinear", "Geometric"];
/// Samplers.
pub const SAMPLERS: &[&str] = &["Tweedie", "Euler", "FirstHitting"];
/// Log-probability estimators.
pub const LOG_PROBS: &[&str] = &["ConcreteScore", "Trajectory", "Events"];
/// `ConcreteScore(weights = ..)`.
pub const WEIGHTS: &[&str] = &["Conditional", "Enumerate", "Snis"];
/// `ConcreteScore(clean = ..)`.
pub const CLEANS: &[&str] = &["Masked", "Unmasked", "MaskedSubset"];
/// `kl_mode`.
pub const KL_MODES: &[&str] = &["InReward", "Path"];
/// `optimizer` (AdamW, also spelt `Adam`).
pub const OPTIMIZERS: &[&str] = &["Adam", "AdamW"];
/// `lr_schedule`.
pub const LR_SCHEDULES: &[&str] = &["Constant", "Warmup", "WarmupCosine", "Linear", "InvSqrt"];
/// `allocation`.
pub const ALLOCATIONS: &[&str] = &["Uniform", "Adaptive", "Neyman", "Sequential"];
/// `mode`.
pub const MODES: &[&str] = &["TwoLoop", "SingleLoop"];
/// Estimator components.
pub const COMPONENTS: &[&str] = &["reinforce", "ppo", "grpo", "snis", "control_variate"];
/// `baseline = ..`.
pub const BASELINES: &[&str] = &["none", "mean", "leave_one_out", "grpo"];
