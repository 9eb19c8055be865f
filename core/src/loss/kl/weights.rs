//! The path KL's gradient as weights on per-step quantities: the part of the estimator that needs no
//! model. [`path_kl`](super::path_kl) computes the per-step KLs and log-probabilities of a model, asks
//! [`kl_weights`] for the weights, and back-propagates the weighted sum.
//!
//! # Derivation
//!
//! Steps `k = 0..K` take `x_k → x_{k+1}` with probability `p_θ(x_{k+1} | x_k)`; `KL_k(x_k; θ)` is the
//! closed-form KL of step `k`'s transition law from `x_k` to the reference's. By the chain rule
//! `F(θ) = E_{P_θ}[Σ_k KL_k(x_k; θ)] = KL(P_θ(path) ‖ P_ref(path))`, and since `x_k` is itself drawn
//! under θ,
//!
//! ```text
//! ∇F = E[Σ_k ∇KL_k(x_k)]  +  E[Σ_j ∇log p_θ(x_{j+1} | x_j) · Σ_{k>j} KL_k(x_k)]
//! ```
//!
//! (terms `k ≤ j` drop: `KL_k(x_k)` does not depend on the transition `j ≥ k`, and
//! `E[∇log p_θ(x_{j+1}|x_j) | x_{0:j}] = 0`). The second term is the score-function term: the KL still
//! to come after each transition acts on that transition as a negative reward.
//!
//! **Off-policy** (PPO epochs: paths drawn under `θ_old`, gradient wanted at θ), per-decision
//! importance weights `ρ_{0:k} = Π_{j<k} p_θ(x_{j+1}|x_j)/p_old(x_{j+1}|x_j)` keep it exact:
//! `F(θ) = E_old[Σ_k ρ_{0:k} KL_k(x_k; θ)]`, whose gradient (`∇ρ_{0:k} = ρ_{0:k} Σ_{j<k} ∇log p_θ`) is
//!
//! ```text
//! ∇F = E_old[Σ_k ρ_{0:k} ∇KL_k(x_k)  +  Σ_j ρ_{0:j+1} G_j ∇log p_θ(x_{j+1}|x_j)],
//! G_j = Σ_{k>j} ρ_{j+1:k} KL_k(x_k)   (G_{K−1} = 0,  G_j = KL_{j+1} + (p_θ/p_old)(step j+1)·G_{j+1}).
//! ```
//!
//! No clipping: the ratios are exact weights, not a trust region. At `θ = θ_old` every `ρ` is 1.
//!
//! **Baseline.** Any `b_j` that does not depend on the sequence's own steps `≥ j` can be subtracted
//! from `G_j`: `E_old[ρ_{0:j+1} ∇log p_θ(x_{j+1}|x_j) | x_{0:j}] = ρ_{0:j} Σ_y ∇p_θ(y|x_j) = 0`.
//! [`KlBaseline::LeaveOneOut`] takes the mean of the other sequences' `G_j` (independent draws).
//!
//! **A window** (`KL` over the last `W` steps only) changes nothing above but the sum over `k`, which
//! runs over the window: the score-function term still reaches the transitions before it, through `G_j`.
//!
//! Every weight includes the batch mean's `1/B`.

use crate::error::{Error, Result};

/// Variance reduction for the score-function term of the path KL's gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KlBaseline {
    /// None: `G_j` as it is (unbiased whatever the batch; the exact tests use it).
    None,
    /// Leave-one-out: subtract from sequence `b`'s `G_j` the mean of the other sequences' `G_j`
    /// (`(Σ_{b'} G_{j,b'} − G_{j,b})/(B − 1)`); unbiased for independent draws, nothing subtracted when
    /// `B = 1`. The default.
    #[default]
    LeaveOneOut,
}

/// The gradient of the path KL as weights on per-step, per-sequence quantities:
/// `∇F ≈ Σ_k Σ_b kl[k][b]·∇KL_{k,b}  +  Σ_j Σ_b log_prob[j][b]·∇log p_θ(step j of b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct KlWeights {
    /// `(1/B) Σ_b Σ_{k∈window} ρ_{0:k,b} KL_{k,b}`: the importance-weighted estimate of the window's
    /// path KL under θ (the plain mean at `θ = θ_old`).
    pub value: f64,
    /// `ρ_{0:k,b}/B`, one vector per window step.
    pub kl: Vec<Vec<f64>>,
    /// `ρ_{0:j+1,b}·(G_{j,b} − baseline_{j,b})/B`, one vector per step of the whole path.
    pub log_prob: Vec<Vec<f64>>,
}

/// The weights of the path KL's gradient (module docs) from `kl[i][b]`, the closed-form KL of step
/// `K − W + i` (`W = kl.len()`, the window: the last `W` steps), and `log_ratio[k][b]`,
/// `log p_θ(step k of b) − log p_old(step k of b)` for every step `k < K` (zeros on-policy).
///
/// Errors: [`Error::ShapeMismatch`] when the window is longer than the path or the vectors' lengths
/// differ; [`Error::NonFinite`] on a non-finite input or a weight that overflows.
pub fn kl_weights(
    kl: &[Vec<f64>],
    log_ratio: &[Vec<f64>],
    baseline: KlBaseline,
) -> Result<KlWeights> {
    let steps = log_ratio.len();
    let window = kl.len();
    if window > steps {
        return Err(Error::ShapeMismatch {
            op: "kl_weights (window steps vs path steps)",
            expected: vec![steps],
            got: vec![window],
        });
    }
    let batch = log_ratio.first().map_or(0, Vec::len);
    for (what, rows) in [
        ("kl_weights (KL)", kl),
        ("kl_weights (log-ratio)", log_ratio),
    ] {
        for (k, row) in rows.iter().enumerate() {
            if row.len() != batch {
                return Err(Error::ShapeMismatch {
                    op: what,
                    expected: vec![k, batch],
                    got: vec![k, row.len()],
                });
            }
            if let Some(b) = row.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what,
                    index: k * batch + b,
                    value: row[b],
                });
            }
        }
    }
    let first = steps - window;
    let kl_at = |k: usize, b: usize| if k >= first { kl[k - first][b] } else { 0.0 };
    let scale = 1.0 / batch.max(1) as f64;

    // log ρ_{0:k} for k = 0..=K.
    let mut log_rho = vec![vec![0.0; batch]; steps + 1];
    for k in 0..steps {
        for b in 0..batch {
            log_rho[k + 1][b] = log_rho[k][b] + log_ratio[k][b];
        }
    }
    let value = (first..steps)
        .flat_map(|k| (0..batch).map(move |b| (k, b)))
        .map(|(k, b)| log_rho[k][b].exp() * kl_at(k, b))
        .sum::<f64>()
        * scale;
    let kl_weight: Vec<Vec<f64>> = (first..steps)
        .map(|k| log_rho[k].iter().map(|l| l.exp() * scale).collect())
        .collect();

    // G_j backwards from G_{K−1} = 0.
    let mut to_go = vec![vec![0.0; batch]; steps];
    for j in (0..steps.saturating_sub(1)).rev() {
        for b in 0..batch {
            to_go[j][b] = kl_at(j + 1, b) + log_ratio[j + 1][b].exp() * to_go[j + 1][b];
        }
    }
    let log_prob_weight: Vec<Vec<f64>> = to_go
        .iter()
        .enumerate()
        .map(|(j, g)| {
            let total: f64 = g.iter().sum();
            (0..batch)
                .map(|b| {
                    let base = match baseline {
                        KlBaseline::LeaveOneOut if batch > 1 => (total - g[b]) / (batch - 1) as f64,
                        _ => 0.0,
                    };
                    log_rho[j + 1][b].exp() * (g[b] - base) * scale
                })
                .collect()
        })
        .collect();

    let weights = kl_weight.iter().chain(&log_prob_weight).flatten();
    if let Some((i, v)) = weights.enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "path-KL gradient weight (importance ratios overflowed: θ far from θ_old)",
            index: i,
            value: *v,
        });
    }
    if !value.is_finite() {
        return Err(Error::NonFinite {
            what: "path-KL value (importance ratios overflowed: θ far from θ_old)",
            index: 0,
            value,
        });
    }
    Ok(KlWeights {
        value,
        kl: kl_weight,
        log_prob: log_prob_weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two sequences, three steps, window of two, off-policy: every weight by hand.
    #[test]
    fn weights_by_hand() {
        let kl = vec![vec![0.5, 0.25], vec![2.0, 1.0]]; // steps 1 and 2
        let d = [0.1f64, -0.2, 0.3];
        let log_ratio = vec![vec![d[0], 0.0], vec![d[1], 0.0], vec![d[2], 0.0]];
        let w = kl_weights(&kl, &log_ratio, KlBaseline::None).unwrap();
        let (r1, r2) = (d[0].exp(), (d[0] + d[1]).exp());
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        close(w.value, 0.5 * (r1 * 0.5 + r2 * 2.0 + 0.25 + 1.0));
        close(w.kl[0][0], 0.5 * r1);
        close(w.kl[1][0], 0.5 * r2);
        close(w.kl[1][1], 0.5);
        // G_2 = 0, G_1 = KL_2, G_0 = KL_1 + e^{Δ_1}·KL_2.
        let g0 = [0.5 + d[1].exp() * 2.0, 0.25 + 1.0];
        let g1 = [2.0, 1.0];
        close(w.log_prob[0][0], 0.5 * r1 * g0[0]);
        close(w.log_prob[0][1], 0.5 * g0[1]);
        close(w.log_prob[1][0], 0.5 * r2 * g1[0]);
        close(w.log_prob[1][1], 0.5 * g1[1]);
        assert_eq!(w.log_prob[2], vec![0.0, 0.0]);
        // Leave-one-out with two sequences: the other one's G_j.
        let w = kl_weights(&kl, &log_ratio, KlBaseline::LeaveOneOut).unwrap();
        close(w.log_prob[0][0], 0.5 * r1 * (g0[0] - g0[1]));
        close(w.log_prob[0][1], 0.5 * (g0[1] - g0[0]));
        close(w.log_prob[1][1], 0.5 * (g1[1] - g1[0]));
    }

    #[test]
    fn one_sequence_has_no_leave_one_out_baseline() {
        let kl = vec![vec![1.0], vec![3.0]];
        let zero = vec![vec![0.0]; 2];
        let a = kl_weights(&kl, &zero, KlBaseline::LeaveOneOut).unwrap();
        let b = kl_weights(&kl, &zero, KlBaseline::None).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.log_prob, vec![vec![3.0], vec![0.0]]);
        assert_eq!(a.value, 4.0);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let one = vec![vec![0.0]];
        let two = vec![vec![0.0]; 2];
        assert!(matches!(
            kl_weights(&two, &one, KlBaseline::None),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            kl_weights(&[vec![0.0, 1.0]], &one, KlBaseline::None),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            kl_weights(&[vec![f64::NAN]], &one, KlBaseline::None),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            kl_weights(&two, &[vec![800.0], vec![0.0]], KlBaseline::None),
            Err(Error::NonFinite { .. })
        ));
        let empty = kl_weights(&[], &[], KlBaseline::LeaveOneOut).unwrap();
        assert_eq!(empty.value, 0.0);
    }
}
