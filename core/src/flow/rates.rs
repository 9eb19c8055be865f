//! Locally balanced jump rates on the Hamming-1 graph (docs/gradient_flow.md §1).
//!
//! From a sequence `x`, the chain jumps to `y = x^{l←v}` (`v ≠ x_l`) at rate `Q(x, y) = λ·g(s(x)_{l,v})`
//! with `s(x)_{l,v}` the clean-end concrete score and `g(t) = t·g(1/t)` (locally balanced). When
//! `s(x)_y = π(y)/π(x)`, `π(x)Q(x, y) = λ π(x) g(π(y)/π(x))` is symmetric in `(x, y)`: detailed balance.
//! The heat bath is the one kind that reads the whole row: `Q(x, x^{l←v}) = λ·c_l(v|x)` with
//! `c_l(v|x) = s_{l,v}/Σ_{v'} s_{l,v'}` (the sum includes `v' = x_l`, where `s = 1`), which is balanced
//! because `x` and `y` share the normaliser `Σ_{v'} π(x^{l←v'})`.

use crate::error::{Error, Result};

/// The balancing function `g` of the jump rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LocallyBalanced {
    /// `Q(x, x^{l←v}) = λ·c_l(v|x)`: Gibbs sampling with the model's own conditionals.
    HeatBath,
    /// `g(t) = t/(1 + t)`.
    Barker,
    /// `g(t) = √t`.
    Sqrt,
    /// `g(t) = min(1, t)`.
    Metropolis,
    /// `g(t) = 1 + t`: the diffusion's own corrector.
    Corrector,
}

impl LocallyBalanced {
    /// Every kind, for tests and sweeps.
    pub const ALL: [LocallyBalanced; 5] = [
        LocallyBalanced::HeatBath,
        LocallyBalanced::Barker,
        LocallyBalanced::Sqrt,
        LocallyBalanced::Metropolis,
        LocallyBalanced::Corrector,
    ];

    /// `g(t)` (for the heat bath, which has no scalar `g`, `t/(1 + t)` is returned as a placeholder
    /// and never used by this module).
    pub fn g(self, t: f64) -> f64 {
        match self {
            // 1/(1 + 1/t) = t/(1 + t), finite at t = +∞ (a log-score ≥ 710), where t/(1 + t) is NaN.
            LocallyBalanced::HeatBath | LocallyBalanced::Barker => 1.0 / (1.0 + 1.0 / t),
            LocallyBalanced::Sqrt => t.sqrt(),
            LocallyBalanced::Metropolis => t.min(1.0),
            LocallyBalanced::Corrector => 1.0 + t,
        }
    }

    /// `t·g'(t)`, the derivative of `g(t)` with respect to `log t` (Metropolis: 0 above `t = 1`, 1
    /// below; it is not differentiable at `t = 1`).
    pub fn t_dg(self, t: f64) -> f64 {
        match self {
            // t/(1 + t)² written so that t = 0 and t = +∞ both give 0, not NaN.
            LocallyBalanced::HeatBath | LocallyBalanced::Barker => {
                1.0 / ((1.0 + 1.0 / t) * (1.0 + t))
            }
            LocallyBalanced::Sqrt => 0.5 * t.sqrt(),
            LocallyBalanced::Metropolis => {
                if t < 1.0 {
                    t
                } else {
                    0.0
                }
            }
            LocallyBalanced::Corrector => t,
        }
    }

    /// Upper bound on the exit rate at one position, `sup_x Σ_{v≠x_l} Q(x, x^{l←v})/λ` over `real`
    /// real tokens: 1 for the heat bath, `real − 1` for Barker and Metropolis, none (unbounded) for
    /// `Sqrt` and `Corrector`, which therefore cannot be uniformised.
    pub fn position_bound(self, real: usize) -> Option<f64> {
        match self {
            LocallyBalanced::HeatBath => Some(1.0),
            LocallyBalanced::Barker | LocallyBalanced::Metropolis => {
                Some(real.saturating_sub(1).max(1) as f64)
            }
            LocallyBalanced::Sqrt | LocallyBalanced::Corrector => None,
        }
    }

    /// The same bound, or a typed error naming the kind.
    pub fn checked_bound(self, real: usize) -> Result<f64> {
        self.position_bound(real).ok_or_else(|| {
            Error::invalid(
                "rates",
                format!("{self:?}"),
                "unbounded rates cannot be uniformised; use HeatBath, Barker or Metropolis",
            )
        })
    }

    /// Rates `Q(x, x^{l←v})/λ` at one position from its clean log-scores `log s_{l,·}` (`0` at
    /// `current`; entries that are `−∞`, e.g. the mask column, get rate 0). Rate 0 at `current`.
    pub fn rates(self, log_scores: &[f64], current: usize, out: &mut [f64]) {
        match self {
            LocallyBalanced::HeatBath => {
                let max = log_scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut z = 0.0;
                for (o, &s) in out.iter_mut().zip(log_scores) {
                    *o = (s - max).exp();
                    z += *o;
                }
                for o in out.iter_mut() {
                    *o /= z;
                }
            }
            _ => {
                for (o, &s) in out.iter_mut().zip(log_scores) {
                    *o = if s == f64::NEG_INFINITY {
                        0.0
                    } else {
                        self.g(s.exp())
                    };
                }
            }
        }
        out[current] = 0.0;
    }

    /// Derivatives of the rates `∂Q(x, x^{l←v})/λ` given the derivatives `d_log_scores[v]` of
    /// `log s_{l,v}` along one direction: `t g'(t)·∂log s` for a scalar `g`, and
    /// `c_v (∂log s_v − Σ_{v'} c_{v'} ∂log s_{v'})` for the heat bath. 0 at `current`.
    pub fn rate_derivatives(
        self,
        log_scores: &[f64],
        d_log_scores: &[f64],
        current: usize,
        out: &mut [f64],
    ) {
        match self {
            LocallyBalanced::HeatBath => {
                let mut c = vec![0.0; log_scores.len()];
                let max = log_scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut z = 0.0;
                for (ci, &s) in c.iter_mut().zip(log_scores) {
                    *ci = (s - max).exp();
                    z += *ci;
                }
                let mut mean = 0.0;
                for (ci, &d) in c.iter_mut().zip(d_log_scores) {
                    *ci /= z;
                    if *ci > 0.0 {
                        mean += *ci * d;
                    }
                }
                for ((o, &ci), &d) in out.iter_mut().zip(&c).zip(d_log_scores) {
                    *o = if ci > 0.0 { ci * (d - mean) } else { 0.0 };
                }
            }
            _ => {
                for ((o, &s), &d) in out.iter_mut().zip(log_scores).zip(d_log_scores) {
                    *o = if s == f64::NEG_INFINITY {
                        0.0
                    } else {
                        self.t_dg(s.exp()) * d
                    };
                }
            }
        }
        out[current] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `g(t) = t g(1/t)` to rounding for every scalar kind, at ratios spanning six decades.
    #[test]
    fn scalar_kinds_are_locally_balanced() {
        for kind in LocallyBalanced::ALL {
            for &t in &[1e-3, 0.3, 1.0, 2.5, 1e3] {
                let (a, b) = (kind.g(t), t * kind.g(1.0 / t));
                assert!((a - b).abs() <= 1e-14 * a.abs().max(1.0), "{kind:?} at {t}");
            }
        }
    }

    /// Log-scores beyond f64's `exp` range (|log s| ≥ 710) give finite rates and derivatives: Barker
    /// saturates at 1 and its derivative vanishes (both were NaN at `t = e^{710} = +∞`).
    #[test]
    fn extreme_log_scores_give_finite_rates() {
        let ls = [0.0, 800.0, -800.0, f64::NEG_INFINITY];
        let d = [0.0, 1.0, 1.0, 1.0];
        for kind in [
            LocallyBalanced::HeatBath,
            LocallyBalanced::Barker,
            LocallyBalanced::Metropolis,
        ] {
            let (mut r, mut dr) = ([0.0; 4], [0.0; 4]);
            kind.rates(&ls, 0, &mut r);
            kind.rate_derivatives(&ls, &d, 0, &mut dr);
            assert!(
                r.iter().chain(&dr).all(|x| x.is_finite()),
                "{kind:?}: {r:?} {dr:?}"
            );
            assert!(
                (r[1] - 1.0).abs() < 1e-12 && r[2] < 1e-300,
                "{kind:?}: {r:?}"
            );
        }
    }

    /// The rate derivative matches a central difference of the rates in `log s` (step 1e-6, error
    /// O(h²) ≈ 1e-12, tolerance 1e-8).
    #[test]
    fn rate_derivatives_match_finite_differences() {
        let ls = [0.0, -0.7, 0.4, f64::NEG_INFINITY];
        let d = [0.0, 0.3, -1.1, 0.0];
        let h = 1e-6;
        for kind in LocallyBalanced::ALL {
            let mut an = [0.0; 4];
            kind.rate_derivatives(&ls, &d, 0, &mut an);
            let shift = |sign: f64| {
                let p: Vec<f64> = ls.iter().zip(&d).map(|(a, b)| a + sign * h * b).collect();
                let mut out = [0.0; 4];
                kind.rates(&p, 0, &mut out);
                out
            };
            let (up, down) = (shift(1.0), shift(-1.0));
            for v in 0..4 {
                let fd = (up[v] - down[v]) / (2.0 * h);
                assert!(
                    (fd - an[v]).abs() < 1e-8,
                    "{kind:?} v={v}: {fd} vs {}",
                    an[v]
                );
            }
        }
    }

    #[test]
    fn unbounded_kinds_refuse_uniformisation() {
        assert!(LocallyBalanced::Sqrt.checked_bound(4).is_err());
        assert_eq!(LocallyBalanced::Barker.checked_bound(4).unwrap(), 3.0);
    }
}
