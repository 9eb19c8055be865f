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

use super::{constant, one_hot_where, StepProbs};
use crate::error::Result;
use crate::graph::{Graph, Staggered};
use crate::sample::trajectory::{Step, StepKind};
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
    // kernel[b, l, y] = exp(Δσ̄ Q)(y, x) at free positions (mask column dropped when denoising), row
    // by row: O(B·L·N), never the N×N matrix (20 GB in f64 at GPT-2's vocabulary).
    // A row equal to the last one built (same `x`, same Δσ̄: every masked position) is copied.
    let mut kernel = vec![0.0; step.before.len() * n];
    let mut last: Option<(usize, u64, usize)> = None;
    for (i, &x) in step.before.iter().enumerate() {
        if step.fixed[i] {
            continue;
        }
        let d = dsigma[i / l];
        if let Some((_, _, j)) = last.filter(|&(lx, ld, _)| lx == x && ld == d.to_bits()) {
            kernel.copy_within(j * n..(j + 1) * n, i * n);
            continue;
        }
        for (y, k) in kernel[i * n..(i + 1) * n].iter_mut().enumerate() {
            if Some(y) != drop_mask {
                *k = graph.transition(y, x, d);
            }
        }
        last = Some((x, d.to_bits(), i));
    }
    let kernel = constant::<E, D, _>(&dev, &kernel, shape)?;
    // Fixed positions stay put with probability 1.
    let stay = constant::<E, D, _>(
        &dev,
        &one_hot_where(&step.before, n, |i| step.fixed[i]),
        shape,
    )?;

    let staggered = staggered_score(graph, log_scores.exp(), &dsigma)?;
    let weight = (staggered * kernel).relu() + stay;
    let norm = weight
        .with_empty_tape()
        .sum::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    Ok(weight / norm)
}

/// The staggered score `s̃_y = Σ_z s_z·exp(−Δσ̄_b Q)(z, y)` of ratios `s [B, L, N]` (a `LogScores`-shaped
/// tensor holding ratios, not logs) with one `Δσ̄` per
/// sequence, from the graph's host coefficients ([`Graph::staggered`]): the `O(N)` closed form
/// `s̃_y = scale_y·s_y + shift_y·Σ_z summed_z·s_z`, or one batched matmul with `exp(−Δσ̄ Q)`.
pub(crate) fn staggered_score<E, D, G, T>(
    graph: &G,
    scores: LogScores<E, D, T>,
    dsigma: &[f64],
) -> Result<LogScores<E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    G: Graph,
    T: Tape<E, D>,
{
    let shape = *scores.shape();
    let (b, l, n) = shape;
    let dev = scores.device().clone();
    let per_sequence: Vec<Staggered> = dsigma.iter().map(|&d| graph.staggered(d)).collect();
    if let Some(Staggered::Dense(_)) = per_sequence.first() {
        let mut mats = Vec::with_capacity(b * n * n);
        for s in &per_sequence {
            match s {
                Staggered::Dense(m) => mats.extend_from_slice(m),
                Staggered::Structured { .. } => unreachable!("one graph, one form"),
            }
        }
        let m = constant::<E, D, _>(&dev, &mats, (b, n, n))?;
        return Ok(scores.matmul(m));
    }
    let (mut scale, mut summed, mut shift) = (
        Vec::with_capacity(b * l * n),
        Vec::with_capacity(b * l * n),
        Vec::with_capacity(b * l * n),
    );
    for s in &per_sequence {
        let Staggered::Structured {
            scale: a,
            summed: z,
            shift: c,
        } = s
        else {
            unreachable!("one graph, one form")
        };
        for _ in 0..l {
            scale.extend_from_slice(a);
            summed.extend_from_slice(z);
            shift.extend_from_slice(c);
        }
    }
    let scale = constant::<E, D, _>(&dev, &scale, shape)?;
    let summed = constant::<E, D, _>(&dev, &summed, shape)?;
    let shift = constant::<E, D, _>(&dev, &shift, shape)?;
    let sum = (scores.with_empty_tape() * summed)
        .sum::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    Ok(scores * scale + sum * shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Absorbing, Uniform};

    /// The closed forms equal the dense product `Σ_z s_z·exp(−Δσ̄ Q)(z, y)`, entry by entry.
    #[test]
    fn staggered_score_closed_forms_match_dense_product() {
        let dev = Cpu::default();
        let (b, l, n) = (2, 3, 5);
        let mut vals: Vec<f64> = (0..b * l * n)
            .map(|i| 0.2 + ((i * 37 % 11) as f64) / 7.0)
            .collect();
        // The current token's own ratio is 1.
        let x = [4usize, 1, 4, 0, 4, 2];
        for (p, &xi) in x.iter().enumerate() {
            vals[p * n + xi] = 1.0;
        }
        let dsigma = [0.3, 0.05];
        check(&Absorbing::new(n).unwrap(), &dev, &vals, (b, l, n), &dsigma);
        check(&Uniform::new(n).unwrap(), &dev, &vals, (b, l, n), &dsigma);
    }

    fn check<G: Graph>(
        graph: &G,
        dev: &Cpu,
        vals: &[f64],
        shape: (usize, usize, usize),
        dsigma: &[f64],
    ) {
        let (b, l, n) = shape;
        let s = dev.tensor_from_vec(vals.to_vec(), shape);
        let fast = staggered_score(graph, s, dsigma).unwrap().as_vec();
        for (bi, ds) in dsigma.iter().enumerate().take(b) {
            for li in 0..l {
                for y in 0..n {
                    let base = (bi * l + li) * n;
                    let dense: f64 = (0..n)
                        .map(|z| vals[base + z] * graph.transition(z, y, -ds))
                        .sum();
                    assert!(
                        (fast[base + y] - dense).abs() < 1e-12,
                        "{graph:?}: {} vs {dense}",
                        fast[base + y]
                    );
                }
            }
        }
    }
}
