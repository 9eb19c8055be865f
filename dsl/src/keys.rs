//! One constant per key the macros accept, so parsing, error messages and docs spell them alike.

/// `#[reward(batched)]`: the fn scores a whole batch.
pub const BATCHED: &str = "batched";
/// `#[reward(range = min..=max)]`: declared bounds.
pub const RANGE: &str = "range";
/// `#[reward(name = "...")]`: the reward's name in errors and metrics.
pub const NAME: &str = "name";
/// Every option of `#[reward(..)]`.
pub const REWARD_OPTIONS: &[&str] = &[BATCHED, RANGE, NAME];
/// Every option of `#[reward(..)]` as the user writes it, for error messages.
pub const REWARD_OPTIONS_SYNTAX: &str = "`batched`, `range = min..=max`, `name = \"...\"`";
/// `#[param]` on an argument of a `#[reward]` fn.
pub const PARAM: &str = "param";

/// The time variable of `noise_schedule!` expressions.
pub const TIME: &str = "t";
/// `π` in `noise_schedule!` expressions.
pub const PI: &str = "PI";
/// Euler's number in `noise_schedule!` expressions.
pub const E: &str = "E";

/// `estimator!` components.
pub const COMPONENTS: &[&str] = &[REINFORCE, PPO, GRPO, SNIS, CONTROL_VARIATE];
/// `reinforce(baseline = ..)`: no clipping.
pub const REINFORCE: &str = "reinforce";
/// `ppo(baseline = .., clip = ε)`.
pub const PPO: &str = "ppo";
/// `grpo(group = G, clip = ε, delta = δ)`.
pub const GRPO: &str = "grpo";
/// `snis(temperature = τ, clip = ε, group = G)`: self-normalised weights towards `p_ref·exp(r/τ)`.
pub const SNIS: &str = "snis";
/// `control_variate(baseline = .., clip = ε, group = G)`: the score-function control variate.
pub const CONTROL_VARIATE: &str = "control_variate";
/// Option `temperature = τ > 0` of `snis`.
pub const TEMPERATURE: &str = "temperature";
/// Option `baseline = none|mean|leave_one_out|grpo`.
pub const BASELINE: &str = "baseline";
/// Option `clip = ε`, `ε ∈ (0, 1)`.
pub const CLIP: &str = "clip";
/// Option `group = G`, `G ≥ 1`.
pub const GROUP: &str = "group";
/// Option `delta = δ > 0` of GRPO's standardisation.
pub const DELTA: &str = "delta";
/// Values of `baseline = ..`.
pub const BASELINES: &[&str] = &["none", "mean", "leave_one_out", "grpo"];

/// Every key of a `policy!` body, in the order of the docs' table.
pub const POLICY_KEYS: &[&str] = &[
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
/// `policy!` keys taking a count (`usize`, at least 1 when a literal).
pub const POLICY_COUNTS: &[&str] = &[
    "batch",
    "groups",
    "group_size",
    "epochs",
    "minibatch",
    "seq_len",
    "kl_last_steps",
    "iterations",
];
/// Models `policy!` loads from a checkpoint.
pub const MODELS: &[&str] = &["Transformer", "Mlp"];
/// Graphs `policy!` builds for the model's states.
pub const GRAPHS: &[&str] = &["Absorbing", "Uniform"];
/// Samplers of `policy!`.
pub const SAMPLERS: &[&str] = &["Tweedie", "Euler", "FirstHitting"];
/// Log-probability estimators of `policy!`.
pub const LOG_PROBS: &[&str] = &["ConcreteScore", "Trajectory", "Events"];
/// Neighbour weights of `ConcreteScore(weights = ..)`.
pub const WEIGHTS: &[&str] = &["Conditional", "Enumerate", "Snis"];
/// Clean-score modes of `ConcreteScore(clean = ..)`.
pub const CLEANS: &[&str] = &["Masked", "Unmasked", "MaskedSubset"];
/// KL modes of `policy!`.
pub const KL_MODES: &[&str] = &["InReward", "Path"];
/// Optimisers of `policy!` (one: AdamW, also spelt `Adam`).
pub const OPTIMIZERS: &[&str] = &["Adam", "AdamW"];
/// Learning-rate schedules of `policy!` (`LrSchedule`).
pub const LR_SCHEDULES: &[&str] = &["Constant", "Warmup", "WarmupCosine", "Linear", "InvSqrt"];
/// Allocation strategies of `policy!` (`Allocation`).
pub const ALLOCATIONS: &[&str] = &["Uniform", "Adaptive", "Neyman", "Sequential"];
/// Training modes of `policy!`: SEPO's two loops (sample a round, then optimise) or the gradient-flow
/// single loop (a persistent population moved by the model's own chain, one IFT step per move).
pub const MODES: &[&str] = &["TwoLoop", "SingleLoop"];
/// The single loop's sampler: `Flow(rates = .., steps = k, init = <a two-loop sampler>, max_batch = n)`.
pub const FLOW: &str = "Flow";
/// The single loop's log-probability: `Ift(h = .., clean = .., t0 = .., ratio = ..)`.
pub const IFT: &str = "Ift";
/// Rates of `Flow(rates = ..)` (`LocallyBalanced`); `Sqrt` and `Corrector` are named to be refused:
/// their rates are unbounded, so the chain cannot be uniformised.
pub const RATES: &[&str] = &["HeatBath", "Barker", "Metropolis", "Sqrt", "Corrector"];
/// State gradients of `Ift(h = ..)` (`StateGradient`).
pub const STATE_GRADIENTS: &[&str] = &["Conditional", "Energy", "Neighbour"];
/// Ratio modes of `Ift(ratio = ..)` (`RatioMode`).
pub const RATIOS: &[&str] = &["Tracked", "Exact", "Path", "PathSubset"];
/// Keys that mean nothing in `mode: SingleLoop`, each with the reason given in its error.
pub const TWO_LOOP_ONLY: &[(&str, &str)] = &[
    (
        "estimator",
        "its gradient is the IFT covariance, set by `log_prob: Ift(..)`",
    ),
    (
        "epochs",
        "each update is one gradient step on all particles",
    ),
    (
        "minibatch",
        "each update is one gradient step on all particles",
    ),
    (
        "groups",
        "the particles are one population: set their number with `batch`",
    ),
    (
        "group_size",
        "the particles are one population: set their number with `batch`",
    ),
    ("kl_mode", "the KL term enters ρ̂ exactly; set β with `kl`"),
    (
        "kl_last_steps",
        "the KL term enters ρ̂ exactly; set β with `kl`",
    ),
    (
        "eval_reward",
        "single-loop runs report the training reward of their particles only",
    ),
    ("prompts", "single-loop runs are unconditional"),
    (
        "allocation",
        "single-loop runs are unconditional, with no prompts to allocate draws to",
    ),
];
