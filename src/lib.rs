//! # sepo
//!
//! Fine-tuning discrete diffusion models with policy-gradient methods on rewards that need not be
//! differentiable (SEPO: Zekri & Boullé, *Fine-Tuning Discrete Diffusion Models with Policy Gradient
//! Methods*), over [dfdx](https://docs.rs/dfdx/0.13), generic over the device (`Cpu`; `Cuda` behind the
//! `cuda` feature).
//!
//! This facade re-exports [`sepo_core`] (graphs, schedules, score networks, samplers, losses, training)
//! and the procedural macros of `sepo-macros`. Start with [`prelude`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use sepo_core::*;

pub mod assess;
pub mod config;
pub mod demo;
pub mod plot;

/// The types most programs need, in one import.
pub mod prelude {
    pub use sepo_core::dfdx::prelude::{Cpu, Device, Dtype, NoneTape, OwnedTape, Tape};
    pub use sepo_core::graph::{Absorbing, Graph, Uniform};
    pub use sepo_core::loss::Dwdse;
    pub use sepo_core::nn::{AdamW, ParamStore};
    pub use sepo_core::policy::{CleanScores, ConcreteScore, Estimator, Mixture, NeighbourWeights};
    pub use sepo_core::reward::{evaluate, Reward, RewardExt};
    pub use sepo_core::sample::{first_hitting, sample, Condition, Predictor, SamplerConfig};
    pub use sepo_core::schedule::{Geometric, LogLinear, NoiseSchedule};
    pub use sepo_core::score::{
        Mlp, MlpConfig, ScoreHead, ScoreModel, Tabular, Transformer, TransformerConfig,
    };
    pub use sepo_core::train::{
        Checkpoint, Corpus, FinetuneConfig, Finetuner, KlMode, LogProb, LrSchedule, MetricsWriter,
        PretrainConfig, Pretrainer, RoundMetrics, SamplerKind,
    };
    pub use sepo_core::train::{Run, RunOptions};
    pub use sepo_core::weight::Baseline;
    pub use sepo_core::{Diffusion, Error, Policy, Result, Sequences};
    pub use sepo_macros::{estimator, noise_schedule, policy, reward};
}

/// Tutorials, each a runnable doctest on tiny sizes.
pub mod tutorials {
    #[doc = include_str!("../docs/tutorial_1_rewards.md")]
    pub mod tutorial_1_rewards {}
    #[doc = include_str!("../docs/tutorial_2_schedules.md")]
    pub mod tutorial_2_schedules {}
    #[doc = include_str!("../docs/tutorial_3_pretrain.md")]
    pub mod tutorial_3_pretrain {}
    #[doc = include_str!("../docs/tutorial_4_finetune.md")]
    pub mod tutorial_4_finetune {}
    #[doc = include_str!("../docs/tutorial_5_estimators.md")]
    pub mod tutorial_5_estimators {}
    #[doc = include_str!("../docs/tutorial_6_guidance.md")]
    pub mod tutorial_6_guidance {}
    #[doc = include_str!("../docs/data.md")]
    pub mod data {}
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use sepo_macros::{estimator, noise_schedule, policy, reward};

/// What the DSL's expansions name (`::sepo::__private::..`). Not a public API: it changes with
/// `sepo-macros`, which the facade pins with `=`.
#[doc(hidden)]
pub mod __private {
    pub use sepo_core::dfdx::prelude::Device;
    pub use sepo_core::flow::LocallyBalanced;
    pub use sepo_core::graph::{Absorbing, Uniform};
    pub use sepo_core::nn::kernels::Kernels;
    pub use sepo_core::nn::AdamW;
    pub use sepo_core::policy::{
        CleanScores, Component, ConcreteScore, Estimator, Mixture, NeighbourWeights, Reweight,
    };
    pub use sepo_core::policy::{EnergyModel, StateGradient};
    pub use sepo_core::reward::{BoxedReward, Reward, Scaled, SequenceReward, Sum};
    pub use sepo_core::sample::{Predictor, SamplerConfig};
    pub use sepo_core::schedule::{LogLinear, NoiseSchedule};
    pub use sepo_core::score::{Mlp, ScoreModel, Transformer};
    pub use sepo_core::train::LrSchedule;
    pub use sepo_core::train::{
        seq_len_of, Checkpoint, FinetuneConfig, Finetuner, FromStates, KlMode, LogProb, Run,
        RunOptions, SamplerKind,
    };
    pub use sepo_core::train::{Adaptive, Allocation, Neyman, Sequential};
    pub use sepo_core::train::{FlowRun, InitialParticles, RatioMode, SingleLoopConfig};
    pub use sepo_core::weight::Baseline;
    pub use sepo_core::Diffusion;
    pub use serde;

    /// The reward of a `policy!`, type-erased; a value that is not a `Reward` is underlined at the
    /// user's expression (the call carries its span).
    pub fn boxed_reward<R: Reward + 'static>(reward: R) -> BoxedReward {
        BoxedReward(Box::new(reward))
    }

    /// `σ̄(t0)` for a single-loop `policy!`'s `Ift(t0 = ..)`: the total noise at which clean-end scores
    /// are read, as the two-loop `ConcreteScore` reads its `t0`.
    pub fn sigma_at<S: NoiseSchedule>(schedule: &S, t0: f64) -> sepo_core::Result<f64> {
        if !(0.0..=1.0).contains(&t0) {
            return Err(sepo_core::Error::invalid("t0", t0, "must be in [0, 1]"));
        }
        let sigma = schedule.total(t0);
        if !(sigma.is_finite() && sigma >= 0.0) {
            return Err(sepo_core::Error::invalid(
                "t0",
                t0,
                format!("the schedule's total noise there is {sigma}, not a finite σ̄ ≥ 0"),
            ));
        }
        Ok(sigma)
    }

    /// The sampler of a `policy!` that names none: `FinetuneConfig::new`'s (Tweedie, 32 steps, which
    /// do not depend on the sequence length), the two-loop default and the single loop's default
    /// `Flow(init = ..)`.
    pub fn default_sampler() -> SamplerKind {
        FinetuneConfig::new(1).sampler
    }

    /// The settings of `sampler`: those of [`default_sampler`] are what a `policy!`'s `Tweedie(..)`
    /// and `Euler(..)` set their options over.
    pub fn sampler_settings(sampler: SamplerKind) -> SamplerConfig {
        match sampler {
            SamplerKind::Grid(settings) | SamplerKind::FirstHitting(settings) => settings,
        }
    }

    /// The checked mixture of a `policy!`'s `estimator:` value.
    pub fn mixture_of<E: Estimator + ?Sized>(estimator: &E) -> sepo_core::Result<Mixture> {
        Mixture::of(estimator)
    }

    /// `(groups, group_size)` for a `policy!`'s `batch` and the optional `groups`/`group_size`;
    /// without either, groups of `default_size` (`FinetuneConfig::new`'s), or one group if the batch
    /// is smaller.
    pub fn split_batch(
        batch: usize,
        groups: Option<usize>,
        group_size: Option<usize>,
        default_size: usize,
    ) -> sepo_core::Result<(usize, usize)> {
        let invalid = |reason: String| sepo_core::Error::invalid("batch", batch, reason);
        let size = match (groups, group_size) {
            (_, Some(size)) => size,
            (Some(groups), None) if groups > 0 => batch / groups,
            _ => batch.min(default_size),
        };
        if size == 0 || !batch.is_multiple_of(size) {
            return Err(invalid(format!("must be a multiple of group_size {size}")));
        }
        if let Some(groups) = groups {
            if groups * size != batch {
                return Err(invalid(format!(
                    "must equal groups × group_size = {groups} × {size}"
                )));
            }
        }
        Ok((batch / size, size))
    }

    /// Token types a `#[reward]` fn may take. `usize` (sepo's own) is borrowed; the others are
    /// converted copies, a token too large for the type becoming its `MAX`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a token type for a `#[reward]` fn",
        label = "expected `usize` (borrowed) or `u32`, `u64`, `u16`, `u8` (converted copies)"
    )]
    pub trait Token: Sized + Copy {
        /// The token as `Self`.
        fn from_token(token: usize) -> Self;

        /// Calls `f` on the sequence as `&[Self]`: one allocation of its length.
        fn with_sequence<R>(seq: &[usize], f: impl FnOnce(&[Self]) -> R) -> R {
            let converted: Vec<Self> = seq.iter().map(|&t| Self::from_token(t)).collect();
            f(&converted)
        }

        /// Calls `f` on the batch as `&[&[Self]]`: one buffer for all tokens, one for the slices.
        fn with_batch<R>(batch: &[&[usize]], f: impl FnOnce(&[&[Self]]) -> R) -> R {
            let flat: Vec<Self> = batch
                .iter()
                .flat_map(|seq| seq.iter().map(|&t| Self::from_token(t)))
                .collect();
            let mut rest = &flat[..];
            let mut slices = Vec::with_capacity(batch.len());
            for seq in batch {
                let (head, tail) = rest.split_at(seq.len());
                slices.push(head);
                rest = tail;
            }
            f(&slices)
        }
    }

    impl Token for usize {
        fn from_token(token: usize) -> Self {
            token
        }
        fn with_sequence<R>(seq: &[usize], f: impl FnOnce(&[Self]) -> R) -> R {
            f(seq)
        }
        fn with_batch<R>(batch: &[&[usize]], f: impl FnOnce(&[&[Self]]) -> R) -> R {
            f(batch)
        }
    }

    macro_rules! narrow_token {
        ($($ty:ty),*) => {$(
            impl Token for $ty {
                fn from_token(token: usize) -> Self {
                    <$ty>::try_from(token).unwrap_or(<$ty>::MAX)
                }
            }
        )*};
    }
    narrow_token!(u8, u16, u32, u64);

    /// Scores a `#[reward]` fn may return.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a reward score",
        label = "a `#[reward]` fn returns `f32` or `f64`",
        note = "a `#[reward(batched)]` fn returns `Vec<f32>` or `Vec<f64>`, one score per sequence"
    )]
    pub trait RewardValue {
        /// The score as `f64`.
        fn into_f64(self) -> f64;
    }

    impl RewardValue for f64 {
        fn into_f64(self) -> f64 {
            self
        }
    }

    impl RewardValue for f32 {
        fn into_f64(self) -> f64 {
            f64::from(self)
        }
    }

    /// Scores a `#[reward(batched)]` fn may return.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a batch of reward scores",
        label = "a `#[reward(batched)]` fn returns `Vec<f32>` or `Vec<f64>`, one score per sequence"
    )]
    pub trait BatchValue {
        /// The scores as `f64`.
        fn into_f64s(self) -> Vec<f64>;
    }

    impl BatchValue for Vec<f64> {
        fn into_f64s(self) -> Vec<f64> {
            self
        }
    }

    impl BatchValue for Vec<f32> {
        fn into_f64s(self) -> Vec<f64> {
            self.into_iter().map(f64::from).collect()
        }
    }
}
