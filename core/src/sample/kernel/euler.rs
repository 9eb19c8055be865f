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

use super::{constant, one_hot_where, StepProbs};
use crate::error::Result;
use crate::graph::Graph;
use crate::nn::from_f64;
use crate::sample::trajectory::Step;
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
    // Entries with coefficient 0 (unmasked positions of the absorbing graph, whose scores are
    // unconstrained) get log-score −1e9 before the exp: `e^{ℓ}·0` is NaN once `e^{ℓ}` overflows.
    let keep: Vec<f64> = coef
        .iter()
        .map(|&c| f64::from(u8::from(c != 0.0)))
        .collect();
    let off: Vec<f64> = keep.iter().map(|k| (k - 1.0) * 1e9).collect();
    let keep = constant::<E, D, _>(&dev, &keep, shape)?;
    let off = constant::<E, D, _>(&dev, &off, shape)?;
    let coef = constant::<E, D, _>(&dev, &coef, shape)?;
    let one_hot = constant::<E, D, _>(&dev, &one_hot_where(&step.before, n, |_| true), shape)?;

    let one = from_f64::<E>(1.0);
    let jump = (log_scores * keep + off).exp() * coef;
    let jump_mass = jump.with_empty_tape().sum::<_, Axis<2>>();
    // max(1, J) = relu(J − 1) + 1; the stay mass max(0, 1 − J) = max(1, J) − J.
    let total = (jump_mass.with_empty_tape() - one).relu() + one;
    let stay = total.with_empty_tape() - jump_mass;
    let numerator = jump + stay.broadcast_like::<_, Axis<2>>(&shape) * one_hot;
    Ok(numerator / total.broadcast_like::<_, Axis<2>>(&shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Absorbing;
    use crate::sample::trajectory::StepKind;

    /// An unmasked position with a log-score above f32's `ln(max) ≈ 88.7` (the absorbing head's
    /// scores there are unconstrained) stays with probability 1 instead of NaN (`e^{95}·0`), and a
    /// masked position gets `P(y) = Δt·σ(t)·Q(y, mask)·s_y`.
    #[test]
    fn overflowing_scores_with_zero_rate_give_finite_probabilities() {
        let graph = Absorbing::with_tokens(2).unwrap(); // tokens 0, 1; mask 2
        let step = Step {
            kind: StepKind::Euler,
            batch: 1,
            seq_len: 2,
            t: vec![0.5],
            t_next: vec![0.25],
            sigma_bar: vec![0.5],
            sigma_bar_next: vec![0.25],
            rate: vec![2.0],
            before: vec![0, 2],
            after: vec![0, 2],
            fixed: vec![false; 2],
            position: Vec::new(),
            log_prob: vec![0.0],
        };
        let dev = Cpu::default();
        let raw = [0.0f32, 95.0, -1e9, 0.1f32.ln(), 0.2f32.ln(), 0.0];
        let ls = dev.tensor_from_vec(raw.to_vec(), (1, 2, 3));
        let p = probs(&graph, ls, &step).unwrap().as_vec();
        let scale = 0.25 * 2.0;
        let (a, b) = (
            scale * graph.rate(0, 2) * 0.1,
            scale * graph.rate(1, 2) * 0.2,
        );
        let expect = [1.0, 0.0, 0.0, a, b, 1.0 - a - b];
        for (i, (&got, want)) in p.iter().zip(expect).enumerate() {
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "P[{i}] = {got}, expected {want}"
            );
        }
    }
}
