//! # sepo
//!
//! Fine-tuning discrete diffusion models with policy-gradient methods on rewards that need not be
//! differentiable (SEPO: Zekri & Boullé, *Fine-Tuning Discrete Diffusion Models with Policy Gradient
//! Methods*), over [dfdx](https://docs.rs/dfdx/0.13), generic over the device (`Cpu`; `Cuda` behind the
//! `cuda` feature).
//!
//! This facade re-exports [`sepo_core`] (graphs, schedules, score networks, samplers, losses, training)
//! and the procedural macros of `sepo-macros`. Start with [`prelude`].
#![warn(missing_docs)]

pub use sepo_core::*;

/// The types most programs need, in one import.
pub mod prelude {
    pub use sepo_core::dfdx::prelude::{Cpu, Device, Dtype, NoneTape, OwnedTape, Tape};
    pub use sepo_core::graph::{Absorbing, Graph, Uniform};
    pub use sepo_core::loss::Dwdse;
    pub use sepo_core::nn::{AdamW, ParamStore};
    pub use sepo_core::schedule::{Geometric, LogLinear, NoiseSchedule};
    pub use sepo_core::score::{ScoreHead, ScoreModel, Tabular};
    pub use sepo_core::train::{Checkpoint, Corpus, LrSchedule, PretrainConfig, Pretrainer};
    pub use sepo_core::{Error, Result};
}

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
