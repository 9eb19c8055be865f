//! Analytic τ-leaping ("Tweedie") step and the final denoising step (SEDD's `AnalyticPredictor` and
//! `Denoiser`).
//!
//! Per position, with `Δσ̄ = σ̄(t) − σ̄(t − Δt)` and the staggered score
//! `s̃_y = Σ_z s_z·exp(−Δσ̄ Q)(z, y)` (equal to `p_{t−Δt}(y)/p_t(x)` for exact, factorised scores):
//!
//! ```text
//!   P(x → y) ∝ s̃_y · exp(Δσ̄ Q)(y, x)          (= p_{t−Δt}(y)·p_{Δσ̄}(x | y) / p_t(x): Bayes' rule)
//! ```
//!
//! normalised over `y`. With inexact scores `s̃` can be negative (e.g. the absorbing graph's mask
//! column); negative weights are clamped to 0 before normalising (SEDD's Gumbel argmax never picks them
//! either).
//!
//! **Denoising** at the last grid time `t_min` uses the same formula with `Δσ̄ = σ̄(t_min)`, all remaining
//! noise. For absorbing graphs the mask column is dropped before normalising, so the output is clean.

use dfdx::prelude::*;

use super::step::{constant, one_hot_where, StepProbs};
use super::trajectory::{Step, StepKind};
use crate::error::Result;
use crate::graph::Graph;
use crate::score::LogScores;

/// Tweedie / denoising transition probabilities from log-scores `[B, L, N]` at `step.before`.
/// `Δσ̄ = σ̄ − σ̄_next` per sequence (the denoiser records `σ̄_next = 0`).
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
    let dsigma: Vec<f64> = step
        .sigma_bar
        .iter()
        .zip(&step.sigma_bar_next)
        .map(|(s, s_next)| s - s_next)
        .collect();
    let drop_mask = match step.kind {
        StepKind::Denoise => graph.mask(),
        _ => None,
    };
    // kernel[b, l, y] = exp(Δσ̄ Q)(y, x) at free positions (mask column dropped when denoising).
    // The N×N matrix is rebuilt only when Δσ̄ changes from one sequence to the next (never on the grid).
    let mut kernel = vec![0.0; step.before.len() * n];
    let mut matrix = vec![0.0; n * n];
    let mut matrix_for = f64::NAN;
    for (i, &x) in step.before.iter().enumerate() {
        if step.fixed[i] {
            continue;
        }
        let d = dsigma[i / l];
        if d.to_bits() != matrix_for.to_bits() {
            for (j, m) in matrix.iter_mut().enumerate() {
                let (x, y) = (j / n, j % n);
                *m = if Some(y) == drop_mask {
                    0.0
                } else {
                    graph.transition(y, x, d)
                };
            }
            matrix_for = d;
        }
        kernel[i * n..(i + 1) * n].copy_from_slice(&matrix[x * n..(x + 1) * n]);
    }
    let kernel = constant::<E, D, _>(&dev, &kernel, shape)?;
    // Fixed positions stay put with probability 1.
    let stay = constant::<E, D, _>(
        &dev,
        &one_hot_where(&step.before, n, |i| step.fixed[i]),
        shape,
    )?;

    let staggered = graph.staggered_score(log_scores.exp(), &dsigma);
    let weight = (staggered * kernel).relu() + stay;
    let norm = weight
        .with_empty_tape()
        .sum::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    Ok(weight / norm)
}
