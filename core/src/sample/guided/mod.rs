//! Samplers that steer the reverse chain toward high reward without training: sequential Monte Carlo
//! ([`smc`], Feynman–Kac with resampling) and value-guided decoding ([`value_guided`], a soft-value
//! choice among candidate steps). Both drive the same chain as the plain samplers
//! ([`SamplerKind`]: start / propose / draw / advance); what they add is a
//! potential on the particles and the denoised estimate `x̂_0(x_t)` ([`Denoised`]) it is read from.
//!
//! Their signatures follow [`crate::sample::sample`]'s `(policy, diffusion, cfg, shape, condition, rng)`,
//! with a [`Guide`] in the place of `cfg`: what steers the chain (a [`Potential`], a reward) together
//! with the sampler's settings, which only mean something together (the potential's temperature and
//! the tempering, the reward and the selection's `α`).

mod denoise;
mod guidance;
mod smc;

pub use denoise::Denoised;
pub use guidance::{value_guided, GuidanceConfig, Guided};
pub use smc::{smc, Potential, PotentialInput, RewardPotential, SmcConfig, SmcOutput, Tempering};

use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::sample::{Condition, SamplerKind};
use crate::schedule::NoiseSchedule;
use crate::score::ScoreModel;

/// What steers a guided sampler, and how: `target` (a [`Potential`] for [`smc`], a
/// [`crate::reward::Reward`] for [`value_guided`]) with the sampler's settings `config`
/// ([`SmcConfig`], [`GuidanceConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Guide<'a, W: ?Sized, C> {
    /// The potential or reward the chain is steered toward.
    pub target: &'a W,
    /// The sampler's settings.
    pub config: C,
}

impl<'a, W: ?Sized, C> Guide<'a, W, C> {
    /// `target` steering a sampler configured by `config`.
    pub fn new(target: &'a W, config: C) -> Self {
        Self { target, config }
    }
}

/// Entry checks of the guided samplers: one condition shared by every particle (its pattern has
/// `seq_len` entries), the chain's own checks ([`SamplerKind::check_entry`]) and `σ̄(1) > 0`. Returns
/// the fixed tokens `[n · seq_len]`.
pub(crate) fn check_entry<M, G, S>(
    model: &M,
    diffusion: &Diffusion<G, S>,
    chain: &SamplerKind,
    shape: (usize, usize),
    condition: Option<&Condition>,
) -> Result<Vec<Option<usize>>>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
{
    chain.check()?;
    let seq_len = shape.1;
    if let Some(c) = condition {
        if c.pattern().len() != seq_len {
            return Err(Error::invalid(
                "condition",
                format!("a pattern of {} entries", c.pattern().len()),
                format!(
                    "particles share one condition of seq_len = {seq_len} entries (run one population \
                     per prompt)"
                ),
            ));
        }
    }
    let fixed = chain.check_entry(model, diffusion, shape, condition)?;
    let sigma_start = crate::error::ensure_finite("σ̄(1) of the schedule", 0, diffusion.total(1.0))?;
    if sigma_start <= 0.0 {
        return Err(Error::invalid(
            "schedule.total(1)",
            sigma_start,
            "must be > 0",
        ));
    }
    Ok(fixed)
}
