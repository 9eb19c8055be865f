//! First-hitting sampler for the absorbing graph: one network call per unmasked token, exact for exact
//! scores (no time discretisation).
//!
//! Under the absorbing graph every position is masked independently at time `t` with probability
//! `m(t) = 1 − e^{−σ̄(t)}`, and a masked position at `t` was still masked at `s < t` with probability
//! `m(s)/m(t)`. With `n` masked positions at `t`, the time `s` of the *next* unmasking (going backwards)
//! therefore satisfies `P(all n still masked at s) = (m(s)/m(t))^n`, so inverting with `u ~ U(0, 1)`:
//!
//! ```text
//!   m(s) = m(t)·u^{1/n},   σ̄(s) = −ln(1 − m(s)),   s = σ̄⁻¹(σ̄(s))
//! ```
//!
//! The position is uniform among the `n` (exchangeable clocks), and its token is drawn from the clean
//! conditional given the unmasked tokens, `P(y) = s_y / Σ_{y' real} s_{y'}` with the scores evaluated at
//! `σ̄(s)` (where `s_y = e^{−σ̄}/(1 − e^{−σ̄})·p_0(y | unmasked)`: the normalisation removes the factor).
//! Every sequence has its own event times; one batched forward per event takes per-sequence `σ̄`.

use rand::Rng;

use super::{Condition, SamplerConfig, SamplerKind, Samples};
use crate::diffusion::Diffusion;
use crate::error::Result;
use crate::graph::Graph;
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};

/// Draws `shape = (batch, seq_len)` sequences with the first-hitting sampler (see the module docs).
///
/// Starts all-mask at `t = 1` (fixed positions of `condition` at their tokens) and takes exactly one
/// network call per masked position of each sequence, batched across sequences with per-sequence `σ̄`.
/// Reads `cfg.max_batch` and `cfg.record_trajectory`; `predictor`, `steps` and `eps` do not apply.
/// Recorded steps are [`StepKind::FirstHitting`](super::StepKind::FirstHitting), one per event
/// (sequences with fewer masked positions idle in the last steps).
///
/// Errors: [`crate::Error::InvalidParameter`] on a graph without a mask state, and the checks of
/// [`sample`](super::sample).
pub fn first_hitting<M, G, S, R>(
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
    SamplerKind::FirstHitting(*cfg).drive(policy, diffusion, shape, condition, rng)
}
