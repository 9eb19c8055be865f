//! Importance weights in log space: normalisation, effective sample size, the log normalising-constant
//! estimate, and path log-weights between two reverse chains.
//!
//! Weights never leave log space until they are normalised, shifted by their maximum `m` first,
//! `w̄_i = exp(log w_i − m) / Σ_j exp(log w_j − m)`, so they neither underflow however long the path nor
//! lose their sum to rounding at large magnitudes (subtracting `LSE = m + log Σ_j e^{log w_j − m}` would:
//! at `m = 10^15` its log term is below the spacing of `m`).

use crate::error::{Error, Result};

/// Log importance weights `log w_i` of a population of particles.
#[derive(Debug, Clone, PartialEq)]
pub struct LogWeights(pub Vec<f64>);

impl LogWeights {
    /// Uniform weights (`log w_i = 0`) for `n` particles.
    pub fn uniform(n: usize) -> Self {
        Self(vec![0.0; n])
    }

    /// Number of particles.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no particles.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks that no weight is NaN or `+∞` and that at least one is finite.
    pub fn check(&self) -> Result<()> {
        if self.0.is_empty() {
            return Err(Error::Empty {
                op: "LogWeights",
                what: "no particles",
            });
        }
        if let Some(i) = self
            .0
            .iter()
            .position(|w| w.is_nan() || *w == f64::INFINITY)
        {
            return Err(Error::NonFinite {
                what: "log importance weight",
                index: i,
                value: self.0[i],
            });
        }
        if self.0.iter().all(|w| *w == f64::NEG_INFINITY) {
            return Err(Error::invalid(
                "importance weights",
                "all zero",
                "at least one particle needs positive weight",
            ));
        }
        Ok(())
    }

    /// `LSE = log Σ_i w_i`.
    pub fn log_sum(&self) -> Result<f64> {
        self.check()?;
        Ok(log_sum_exp(&self.0))
    }

    /// Self-normalised weights `w̄_i = w_i / Σ_j w_j`, computed as `e^{log w_i − m} / Σ_j e^{log w_j − m}`
    /// with `m = max_j log w_j`: each shifted weight is in `[0, 1]`, their sum in `[1, N]`, so the result
    /// sums to 1 up to rounding whatever the magnitude of the log-weights.
    pub fn normalized(&self) -> Result<Vec<f64>> {
        self.check()?;
        let max = self.0.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let shifted: Vec<f64> = self.0.iter().map(|w| (w - max).exp()).collect();
        let total: f64 = shifted.iter().sum();
        Ok(shifted.into_iter().map(|w| w / total).collect())
    }

    /// Effective sample size `(Σ w)² / Σ w² = 1 / Σ w̄²`, in `[1, N]`.
    pub fn ess(&self) -> Result<f64> {
        let w = self.normalized()?;
        Ok(1.0 / w.iter().map(|x| x * x).sum::<f64>())
    }

    /// `log((1/N) Σ_i w_i)`: the log of the unbiased estimate of the normalising constant.
    pub fn log_mean(&self) -> Result<f64> {
        Ok(self.log_sum()? - (self.0.len() as f64).ln())
    }

    /// Adds per-particle log-increments (one SMC step's incremental weights).
    pub fn add(&mut self, increments: &[f64]) -> Result<()> {
        if increments.len() != self.0.len() {
            return Err(Error::ShapeMismatch {
                op: "LogWeights::add",
                expected: vec![self.0.len()],
                got: vec![increments.len()],
            });
        }
        for (w, d) in self.0.iter_mut().zip(increments) {
            *w += d;
        }
        Ok(())
    }
}

/// `log Σ_i exp(x_i)`, stable; `−∞` for an empty slice or all `−∞`, `+∞` if any `x_i = +∞` (and no
/// NaN: shifting by an infinite maximum made `∞ − ∞ = NaN`).
pub fn log_sum_exp(x: &[f64]) -> f64 {
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if max.is_infinite() {
        return max;
    }
    max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Path log-weights between two reverse chains that produced the same trajectories:
/// `log w_b = Σ_steps [log p_target(step_b) − log p_proposal(step_b)]`, from per-step, per-sequence
/// log-probabilities (`[steps][batch]`).
pub fn path_log_weights(target: &[Vec<f64>], proposal: &[Vec<f64>]) -> Result<LogWeights> {
    if target.len() != proposal.len() {
        return Err(Error::ShapeMismatch {
            op: "path_log_weights (steps)",
            expected: vec![proposal.len()],
            got: vec![target.len()],
        });
    }
    let batch = proposal.first().map_or(0, Vec::len);
    let mut out = vec![0.0; batch];
    for (k, (t, p)) in target.iter().zip(proposal).enumerate() {
        if t.len() != batch || p.len() != batch {
            return Err(Error::ShapeMismatch {
                op: "path_log_weights (batch)",
                expected: vec![k, batch],
                got: vec![k, t.len().max(p.len())],
            });
        }
        for b in 0..batch {
            out[b] += t[b] - p[b];
        }
    }
    Ok(LogWeights(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_far_below_underflow_still_normalise() {
        let w = LogWeights(vec![-2000.0, -2000.0 + 3f64.ln(), f64::NEG_INFINITY]);
        let n = w.normalized().unwrap();
        assert!((n[0] - 0.25).abs() < 1e-12 && (n[1] - 0.75).abs() < 1e-12 && n[2] == 0.0);
        assert!((w.ess().unwrap() - 1.0 / (0.0625 + 0.5625)).abs() < 1e-12);
        assert!((w.log_mean().unwrap() - (-2000.0 + 4f64.ln() - 3f64.ln())).abs() < 1e-9);
    }

    /// Large finite log-weights: the normalised weights still sum to 1 and keep their ratios (an
    /// LSE-subtracting normalisation gave `[1, 1, 1]` for `[1e300; 3]` and a sum of 0.945 for `[1e15; 2]`).
    #[test]
    fn large_log_weights_normalise_exactly() {
        for (w, want) in [
            (vec![1e300; 3], vec![1.0 / 3.0; 3]),
            (vec![1e15; 2], vec![0.5; 2]),
            (
                vec![1e15, 1e15 + 1.0],
                vec![1.0 / (1.0 + 1f64.exp()), 1.0 / (1.0 + (-1f64).exp())],
            ),
            (vec![f64::MAX, -f64::MAX], vec![1.0, 0.0]),
        ] {
            let lw = LogWeights(w.clone());
            let n = lw.normalized().unwrap();
            for (a, b) in n.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{w:?}: {n:?}");
            }
            let ess = 1.0 / want.iter().map(|x| x * x).sum::<f64>();
            assert!((lw.ess().unwrap() - ess).abs() < 1e-9, "{w:?}");
        }
    }

    #[test]
    fn degenerate_weights_are_clear_errors() {
        assert!(matches!(
            LogWeights(vec![f64::NEG_INFINITY; 3]).normalized(),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            LogWeights(vec![0.0, f64::NAN]).ess(),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(LogWeights(vec![]).ess(), Err(Error::Empty { .. })));
        assert!((LogWeights::uniform(8).ess().unwrap() - 8.0).abs() < 1e-12);
    }

    #[test]
    fn path_weights_sum_step_differences() {
        let w = path_log_weights(
            &[vec![-1.0, -2.0], vec![-0.5, -0.5]],
            &[vec![-1.5, -1.0], vec![-0.5, -1.0]],
        )
        .unwrap();
        assert_eq!(w.0, vec![0.5, -0.5]);
        assert!(path_log_weights(&[vec![0.0]], &[]).is_err());
    }
}
