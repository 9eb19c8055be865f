//! The typed IR of a `policy!`: what each key was read into. Values hold the user's tokens (idents,
//! literals, expressions, with their spans) and which variant was chosen, never generated code: the
//! paths of the core values are named only by the expand stage (`emit.rs`, `expand.rs`,
//! `flow_expand.rs`). An option the user left out is `None`, and the expansion leaves the core's
//! default in place.

use proc_macro2::Span;
use syn::{Expr, Ident};

use crate::estimator::parse::Mixture;

/// A policy's keys, read.
#[derive(Default)]
pub struct Policy {
    /// `model: Transformer(checkpoint = "..")`.
    pub model: Option<Model>,
    /// `graph: Absorbing | Uniform`, as written.
    pub graph: Option<Ident>,
    /// `schedule: Type | Type(field = value, ..)`.
    pub schedule: Option<Schedule>,
    /// `sampler: Tweedie(..) | Euler(..) | FirstHitting(..)` (two loops).
    pub sampler: Option<Sampler>,
    /// `reward: expr`.
    pub reward: Option<Expr>,
    /// `eval_reward: expr`.
    pub eval_reward: Option<Expr>,
    /// `log_prob: ConcreteScore(..) | Trajectory | Events(..)` (two loops).
    pub log_prob: Option<LogProb>,
    /// `estimator: ..`.
    pub estimator: Option<EstimatorValue>,
    /// `optimizer: Adam(..)`: the `AdamW` fields given.
    pub optimizer: Option<Vec<(Ident, Float)>>,
    /// `mode: TwoLoop | SingleLoop`.
    pub mode: Option<Mode>,
    /// `sampler: Flow(..)`: the single loop's chain.
    pub flow: Option<Flow>,
    /// `log_prob: Ift(..)`: the single loop's estimator.
    pub ift: Option<Ift>,
    /// `kl_mode: InReward | Path`, as written.
    pub kl_mode: Option<Ident>,
    /// `lr_schedule: ..`.
    pub lr_schedule: Option<LrSchedule>,
    /// `grad_clip: ..`.
    pub grad_clip: Option<GradClip>,
    /// `prompts: expr`, with its key (for spans).
    pub prompts: Option<(Ident, Expr)>,
    /// `allocation: ..`.
    pub allocation: Option<Allocation>,
    /// Keys whose value is a plain expression (numbers, strings, bools), by name.
    pub plain: Vec<(String, Expr)>,
    /// Whether a key failed to read: cross-key rules that depend on it stay silent.
    pub failed: bool,
}

impl Policy {
    /// Whether the policy is a gradient-flow single loop (`mode: SingleLoop`).
    pub fn single_loop(&self) -> bool {
        matches!(self.mode, Some(Mode::SingleLoop))
    }

    /// The plain expression given for `key`.
    pub fn plain(&self, key: &str) -> Option<&Expr> {
        self.plain.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// `mode: ..`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SEPO: sample a round, then optimise on it.
    TwoLoop,
    /// The gradient-flow single loop.
    SingleLoop,
}

/// A number for an `f64` field.
pub enum Float {
    /// A finite integer literal, read as the `f64` it denotes (so `kl: 1` types as `f64`), at its span.
    Whole(f64, Span),
    /// Any other number literal or expression, kept as written (the compiler types it at its span).
    Written(Expr),
}

/// `model: Kind(checkpoint = dir)`.
pub struct Model {
    /// `Transformer` or `Mlp`, as written.
    pub kind: Ident,
    /// The checkpoint directory expression.
    pub dir: Expr,
}

/// `schedule: Type(field = value, ..)`: fields set by name over the type's `Default`.
pub struct Schedule {
    /// The schedule type, as written.
    pub path: syn::Path,
    /// The fields given, in order.
    pub fields: Vec<(Ident, Float)>,
}

/// A sampler of the pretrained model (`sampler:` of two loops, `Flow(init = ..)` of one).
pub struct Sampler {
    /// `Tweedie`, `Euler` or `FirstHitting`, as written (the absorbing-graph rule points at it).
    pub name: Ident,
    /// Which sampler the name chose.
    pub kind: SamplerKind,
    /// `steps = n` (grid samplers only).
    pub steps: Option<Expr>,
    /// `eps = t_min` (grid samplers only).
    pub eps: Option<Float>,
    /// `max_batch = n`.
    pub max_batch: Option<Expr>,
}

/// The samplers `policy!` names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// `Tweedie(..)` or `Euler(..)`: the time-grid sampler, `name` its `Predictor` variant.
    Grid,
    /// `FirstHitting(..)`.
    FirstHitting,
}

impl Sampler {
    /// The name of a first-hitting sampler.
    pub fn first_hitting(&self) -> Option<&Ident> {
        (self.kind == SamplerKind::FirstHitting).then_some(&self.name)
    }
}

/// `log_prob:` of two loops.
pub enum LogProb {
    /// `Trajectory`.
    Trajectory,
    /// `Events(positions = m)`.
    Events {
        /// `positions = m`.
        positions: Option<Expr>,
    },
    /// `ConcreteScore(weights = .., clean = .., t0 = ..)` (boxed: the largest variant by far).
    ConcreteScore(Box<ConcreteScore>),
}

/// The options of `ConcreteScore(..)`.
pub struct ConcreteScore {
    /// `weights = ..`.
    pub weights: Option<Weights>,
    /// `clean = ..`.
    pub clean: Option<Clean>,
    /// `t0 = t`.
    pub t0: Option<Float>,
}

/// `NeighbourWeights`: `Conditional | Enumerate | Snis(draws = n)`.
pub enum Weights {
    /// A variant without options, as written.
    Unit(Ident),
    /// `Snis(draws = n)`.
    Snis {
        /// `draws = n`.
        draws: Option<Expr>,
    },
}

/// `CleanScores`: `Masked | Unmasked | MaskedSubset(positions = n)`.
pub enum Clean {
    /// A variant without options, as written.
    Unit(Ident),
    /// `MaskedSubset(positions = n)`.
    MaskedSubset {
        /// `positions = n`.
        positions: Option<Expr>,
    },
}

/// `estimator: ..`.
pub enum EstimatorValue {
    /// A mixture written inline: `grpo(clip = 0.2)`, `0.5 * ppo + 0.5 * reinforce`.
    Inline(Mixture),
    /// Any value implementing `Estimator`: a type from `estimator!`, `Mixture::grpo(0.2)`, ..
    Value(Expr),
}

/// `lr_schedule: ..` (`LrSchedule`).
pub enum LrSchedule {
    /// `Constant`.
    Constant,
    /// `Warmup(warmup = n)`.
    Warmup {
        /// Warm-up steps (required).
        warmup: Expr,
    },
    /// `WarmupCosine(warmup = n, total = n, min_ratio = r)` (boxed: the largest variant by far).
    WarmupCosine(Box<WarmupCosine>),
    /// `Linear`: to 0 at `iterations`.
    Linear,
    /// `InvSqrt(scale = s)`.
    InvSqrt {
        /// Steps per unit of decay.
        scale: Option<Float>,
    },
}

/// The options of `WarmupCosine(..)`.
pub struct WarmupCosine {
    /// Warm-up steps.
    pub warmup: Option<Expr>,
    /// Step at which the decay ends (required).
    pub total: Expr,
    /// Final fraction of the peak rate.
    pub min_ratio: Option<Float>,
}

/// `grad_clip: ..` (an `Option<f64>`).
pub enum GradClip {
    /// `None`: no clipping.
    Off,
    /// A positive number literal.
    Bound(Float),
    /// An expression of type `f64` or `Option<f64>`.
    Expr(Expr),
}

/// `allocation: ..`, with the strategy's name as written (for spans).
pub struct Allocation {
    /// The strategy's name.
    pub name: Ident,
    /// Its options.
    pub kind: AllocationKind,
}

/// The strategies of `Allocation`.
pub enum AllocationKind {
    /// `Uniform`.
    Uniform,
    /// `Adaptive(budget = n, ..)`: the budget and the other fields given (`chunk`, `cap`, `smoothing`).
    Adaptive {
        /// Draws per round (required).
        budget: Expr,
        /// The other fields given.
        fields: Fields,
    },
    /// `Neyman(budget = n, ..)`: the budget and the other fields given (`floor`, `smoothing`).
    Neyman {
        /// Draws per round (required).
        budget: Expr,
        /// The other fields given.
        fields: Fields,
    },
    /// `Sequential(chunk = n, cap = n)`.
    Sequential {
        /// Draws per active prompt per round.
        chunk: Option<Expr>,
        /// Most draws one prompt gets in a round.
        cap: Option<Expr>,
    },
}

/// Fields set by name over a constructor's value.
pub struct Fields {
    /// Counts (`usize` fields), in the order of the options' table.
    pub counts: Vec<(Ident, Expr)>,
    /// Numbers (`f64` fields), after the counts.
    pub floats: Vec<(Ident, Float)>,
}

/// `sampler: Flow(rates = .., steps = k, init = .., max_batch = n)`.
pub struct Flow {
    /// `rates = HeatBath | Barker | Metropolis`, as written (the `LocallyBalanced` variant).
    pub rates: Option<Ident>,
    /// Chain steps per update `k`.
    pub steps: Option<Expr>,
    /// The sampler drawing the initial particles.
    pub init: Option<Sampler>,
    /// The chain's largest forward batch.
    pub max_batch: Option<Expr>,
}

/// `log_prob: Ift(h = .., clean = .., t0 = .., ratio = ..)`.
pub struct Ift {
    /// `h = ..`: what stands for `∇log π_θ(x)`.
    pub h: Option<StateGradient>,
    /// `clean = ..`.
    pub clean: Option<Clean>,
    /// `t0 = t`: the time whose `σ̄(t0)` the clean-end scores are read at.
    pub t0: Option<Float>,
    /// `ratio = ..`.
    pub ratio: Option<Ratio>,
}

/// `StateGradient`: `Conditional | Energy | Neighbour(weights = ..)`.
pub enum StateGradient {
    /// A variant without options, as written.
    Unit(Ident),
    /// `Neighbour(weights = ..)`.
    Neighbour(Option<Weights>),
}

/// `RatioMode`: `Tracked | Exact | Path | PathSubset(positions = m)`.
pub enum Ratio {
    /// A variant without options, as written.
    Unit(Ident),
    /// `PathSubset(positions = m)`.
    PathSubset {
        /// `positions = m`.
        positions: Option<Expr>,
    },
}
