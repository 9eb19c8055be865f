//! Training loops, checkpoints and metrics.
//!
//! Randomness is derived per step from `(seed, step)` ([`step_rng`]), so a run resumed from a checkpoint
//! continues bit-identically on CPU without having to serialise an RNG.

pub mod allocation;
pub mod build;
pub mod checkpoint;
pub mod commit;
pub mod finetune;
pub mod flow_run;
pub mod interrupt;
pub mod metrics;
pub mod planner;
pub mod pretrain;
pub mod single_loop;
pub mod trainer;

pub use crate::nn::{LrSchedule, Optimizer};
pub use crate::score::ModelDescription;
pub use crate::score::ModelKind;
pub use allocation::{Allocation, Allocator, Neyman, Sequential, SequentialOutcome};
pub use build::{seq_len_of, FromStates, Run, RunOptions};
pub use checkpoint::Checkpoint;
pub use finetune::{
    FinetuneConfig, Finetuner, GradientEstimate, KlMode, LogProb, Resumed, RoundMetrics,
    SamplerKind,
};
pub use flow_run::{FlowRun, InitialParticles};
pub use metrics::{progress_bar, MetricsMark, MetricsWriter};
pub use planner::{Adaptive, Planner};
pub use pretrain::{Corpus, PretrainConfig, Pretrainer, StepStats};
pub use single_loop::{RatioMode, SingleLoop, SingleLoopConfig, UpdateMetrics, SINGLE_LOOP_FILE};
pub use trainer::{fit, Periodic, Trainer};

use rand::SeedableRng;

/// The RNG for step `step` of a run seeded with `seed` (SplitMix64 mixing of the pair).
pub fn step_rng(seed: u64, step: u64) -> rand::rngs::StdRng {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    rand::rngs::StdRng::seed_from_u64(z ^ (z >> 31))
}
