//! Euler step of the reverse CTMC.
//!
//! The reverse process has rates `R_t(x → y) = σ(t)·Q(y, x)·s_t(x)_y` (per position, `y ≠ x`), with
//! `s_t(x)_y = p_t(y)/p_t(x)` the concrete score. One Euler step over `[t − Δt, t]` jumps with
//!
//! ```text
//!   P(x → y) = Δt·σ(t)·Q(y, x)·s_y           (y ≠ x)
//!   P(x → x) = 1 − Σ_{y≠x} P(x → y)
//! ```
//!
//! **Clamping.** When the jump mass `J = Σ_{y≠x} Δt·σ(t)·Q(y, x)·s_y` exceeds 1 (large steps at high
//! noise, or over-confident scores) the stay probability `1 − J` would be negative. It is clamped to 0
//! and the row renormalised: `P(x → y) = Δt σ Q s_y / max(1, J)`, `P(x → x) = max(0, 1 − J)/max(1, J)`.
//! For `J ≤ 1` this is the plain Euler step. (SEDD feeds the unclamped row to a Gumbel argmax, which has
//! the same effect on `x → x`; this form keeps the row a probability vector for log-probabilities.)

use dfdx::prelude::*;

use super::step::{constant, one_hot_where, StepProbs};
use super::trajectory::Step;
use crate::error::Result;
use crate::graph::Graph;
use crate::nn::from_f64;
use crate::score::LogScores;

/// Euler transition probabilities from log-scores `[B, L, N]` at `step.before` (see the module docs).
pub(crate) fn probs<E, D, G, T>(
    graph: &G,
    log_scores: LogScores<E, D, T>,
    step: &Step,
) -> Result<StepProbs<E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    G: Graph,
    T: Tape<E, D>,
{
    let shape = *log_scores.shape();
    let (_, l, n) = shape;
    let dev = log_scores.device().clone();
    // coef[b, l, y] = Δt·σ(t)·Q(y, x) off the diagonal at free positions, 0 elsewhere.
    let mut coef = vec![0.0; step.before.len() * n];
    for (i, &x) in step.before.iter().enumerate() {
        if step.fixed[i] {
            continue;
        }
        let b = i / l;
        let scale = (step.t[b] - step.t_next[b]) * step.rate[b];
        for y in (0..n).filter(|&y| y != x) {
            coef[i * n + y] = scale * graph.rate(y, x);
        }
    }
    let coef = constant::<E, D, _>(&dev, &coef, shape)?;
    let one_hot = constant::<E, D, _>(&dev, &one_hot_where(&step.before, n, |_| true), shape)?;

    let one = from_f64::<E>(1.0);
    let jump = log_scores.exp() * coef;
    let jump_mass = jump.with_empty_tape().sum::<_, Axis<2>>();
    // max(1, J) = relu(J − 1) + 1; the stay mass max(0, 1 − J) = max(1, J) − J.
    let total = (jump_mass.with_empty_tape() - one).relu() + one;
    let stay = total.with_empty_tape() - jump_mass;
    let numerator = jump + stay.broadcast_like::<_, Axis<2>>(&shape) * one_hot;
    Ok(numerator / total.broadcast_like::<_, Axis<2>>(&shape))
}
