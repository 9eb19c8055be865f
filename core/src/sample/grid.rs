//! The predictor loop on SEDD's uniform time grid: `steps` Euler or Tweedie steps from `t = 1` to
//! `t_min = eps`, then one denoising step.

use rand::Rng;

use super::{Condition, SamplerConfig, SamplerKind, Samples};
use crate::diffusion::Diffusion;
use crate::error::Result;
use crate::graph::Graph;
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};

/// Draws `shape = (batch, seq_len)` sequences by simulating the reverse process.
///
/// Grid: `t_k = 1 − k·(1 − eps)/steps`, `k = 0..=steps` (so `t_steps = eps`). Starting from the graph's
/// limit law ([`Graph::sample_limit`]) with the fixed positions of `condition` overwritten, it takes
/// `steps` predictor steps `t_k → t_{k+1}` (scores at `σ̄(t_k)`), then the denoising step at `eps`
/// (scores at `σ̄(eps)`, `Δσ̄ = σ̄(eps)`). The batch is processed in chunks of at most `cfg.max_batch`
/// sequences, one after the other, drawing from `rng` in order: the same seed gives the same samples.
///
/// Errors (typed, at entry): [`crate::Error::Empty`] for `batch = 0` or `seq_len = 0`,
/// [`crate::Error::InvalidParameter`] for a bad config, [`crate::Error::ShapeMismatch`] /
/// [`crate::Error::TokenOutOfVocab`] for a condition that does not fit, or a model over another number
/// of states; during sampling, [`crate::Error::NonFinite`] with `index` = the step whose scores were NaN.
pub fn sample<M, G, S, R>(
    policy: &Policy<'_, M>,
    diffusion: &Diffusion<G, S>,
    cfg: &SamplerConfig,
    shape: (usize, usize),
    condition: Option<&Condition>,
    rng: &mut R,
) -> Result<Samples>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Rng,
{
    SamplerKind::Grid(*cfg).drive(policy, diffusion, shape, condition, rng)
}
