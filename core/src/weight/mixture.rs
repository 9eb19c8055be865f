//! Estimators of expectations `E_{p*}[f]` from several proposals: self-normalised importance sampling,
//! multiple importance sampling with the balance heuristic, defensive mixtures, and control variates.
//!
//! All weights stay in log space ([`LogWeights`]); every estimate comes with a standard error.
//!
//! | estimator | weight of a draw `x` | use |
//! |---|---|---|
//! | self-normalised IS ([`self_normalized`]) | `w = γ(x)/q(x)` | `γ` known up to a constant |
//! | MIS, balance heuristic ([`Mis`]) | `w = γ(x) / Σ_j (n_j/N)·q_j(x)` | draws from several proposals |
//! | defensive mixture ([`Mis::defensive`]) | MIS with `p_ref` as one proposal | bounded weights `w ≤ γ/(α p_ref)` |
//! | control variate ([`control_variate`]) | `y − c·(g − E[g])`, `c* = Cov(y, g)/Var(g)` | a correlated `g` of known mean |

use super::importance::LogWeights;
use crate::error::{Error, Result};

/// A Monte Carlo estimate with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The estimate `μ̂`.
    pub mean: f64,
    /// Its estimated standard error.
    pub std_error: f64,
    /// Effective sample size behind it (`1/Σ w̄²` for weighted draws, `n` otherwise).
    pub ess: f64,
}

/// Self-normalised importance sampling: `μ̂ = Σ_i w̄_i f(x_i)` with `w̄ = w/Σw`, and the delta-method
/// standard error `SE² = Σ_i w̄_i² (f(x_i) − μ̂)²` (consistent as `n → ∞`).
pub fn self_normalized(log_weights: &LogWeights, values: &[f64]) -> Result<Estimate> {
    check_values("self_normalized", values, log_weights.len())?;
    let w = log_weights.normalized()?;
    let mean: f64 = w.iter().zip(values).map(|(w, f)| w * f).sum();
    let var: f64 = w
        .iter()
        .zip(values)
        .map(|(w, f)| w * w * (f - mean).powi(2))
        .sum();
    Ok(Estimate {
        mean,
        std_error: var.sqrt(),
        ess: 1.0 / w.iter().map(|x| x * x).sum::<f64>(),
    })
}

/// Multiple importance sampling over `J` proposals with the balance heuristic (Veach & Guibas 1995):
/// `n_j` draws from proposal `q_j`, pooled (`N = Σ n_j`), each weighted as if drawn from the mixture,
///
/// ```text
///   w(x) = γ(x) / Σ_j (n_j/N)·q_j(x)
/// ```
///
/// which is never worse than the worst single proposal and has bounded weights wherever some `q_j` covers
/// `γ`. Draws are laid out by proposal: the first `n_0` from `q_0`, then `n_1` from `q_1`, …
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mis {
    /// Draws `n_j` from each proposal.
    pub counts: Vec<usize>,
}

impl Mis {
    /// `n_j` draws from proposal `j`.
    pub fn new(counts: Vec<usize>) -> Self {
        Self { counts }
    }

    /// A defensive mixture (Hesterberg 1995) of `n` draws: `⌊α n⌉` from the reference (proposal 0) and
    /// the rest from the proposal (1). The weights are then bounded by `γ(x)/(α·p_ref(x))`.
    pub fn defensive(n: usize, fraction: f64) -> Result<Self> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(Error::invalid(
                "defensive fraction",
                fraction,
                "must be in (0, 1)",
            ));
        }
        if n < 2 {
            return Err(Error::invalid(
                "defensive draws",
                n,
                "a defensive mixture needs ≥ 2 draws (one from each proposal)",
            ));
        }
        let reference = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
        let mis = Self::new(vec![reference, n - reference]);
        mis.check()?;
        Ok(mis)
    }

    /// Checks at least one proposal, every count `≥ 1`.
    pub fn check(&self) -> Result<()> {
        if self.counts.is_empty() {
            return Err(Error::Empty {
                op: "Mis",
                what: "no proposals",
            });
        }
        if let Some(j) = self.counts.iter().position(|&n| n == 0) {
            return Err(Error::invalid(
                "Mis::counts",
                format!("0 draws for proposal {j}"),
                "every proposal needs ≥ 1 draw (drop unused proposals)",
            ));
        }
        Ok(())
    }

    /// Total draws `N`.
    pub fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Balance-heuristic log-weights `log γ(x_i) − log Σ_j (n_j/N) q_j(x_i)` of the `N` pooled draws,
    /// from `log_target[i] = log γ(x_i)` (unnormalised is fine) and `log_proposals[j][i] = log q_j(x_i)`
    /// (normalised densities, every proposal at every draw).
    pub fn log_weights(
        &self,
        log_target: &[f64],
        log_proposals: &[Vec<f64>],
    ) -> Result<LogWeights> {
        self.check()?;
        let n = self.total();
        check_values("Mis::log_weights (target)", log_target, n)?;
        if log_proposals.len() != self.counts.len() {
            return Err(Error::ShapeMismatch {
                op: "Mis::log_weights (one density row per proposal)",
                expected: vec![self.counts.len(), n],
                got: vec![log_proposals.len()],
            });
        }
        for row in log_proposals {
            if row.len() != n {
                return Err(Error::ShapeMismatch {
                    op: "Mis::log_weights (proposal densities)",
                    expected: vec![self.counts.len(), n],
                    got: vec![log_proposals.len(), row.len()],
                });
            }
        }
        let log_frac: Vec<f64> = self
            .counts
            .iter()
            .map(|&c| (c as f64 / n as f64).ln())
            .collect();
        let mut out = Vec::with_capacity(n);
        let mut terms = vec![0.0; self.counts.len()];
        for i in 0..n {
            for (j, t) in terms.iter_mut().enumerate() {
                *t = log_frac[j] + log_proposals[j][i];
            }
            let mixture = super::log_sum_exp(&terms);
            if mixture == f64::NEG_INFINITY || mixture.is_nan() {
                return Err(Error::NonFinite {
                    what: "mixture density at a draw (no proposal can produce it; index = draw)",
                    index: i,
                    value: mixture,
                });
            }
            out.push(log_target[i] - mixture);
        }
        let weights = LogWeights(out);
        weights.check()?;
        Ok(weights)
    }

    /// Self-normalised MIS estimate of `E_{γ/Z}[f]` from the pooled draws' `values[i] = f(x_i)`.
    pub fn estimate(
        &self,
        log_target: &[f64],
        log_proposals: &[Vec<f64>],
        values: &[f64],
    ) -> Result<Estimate> {
        self_normalized(&self.log_weights(log_target, log_proposals)?, values)
    }
}

/// A control-variate estimate and its coefficient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlVariate {
    /// `μ̂_cv = mean(y) − c·(mean(g) − E[g])`, with the standard error of the residuals `y − c·g`.
    pub estimate: Estimate,
    /// The variance-optimal coefficient `c* = Cov(y, g)/Var(g)`, estimated from the same draws.
    pub coefficient: f64,
    /// Sample variance of `y` alone over that of the residuals `y − c·g` (`≥ 1` when the control helps).
    pub variance_reduction: f64,
}

/// Control variate for the mean of i.i.d. `values` `y_i` with a correlated `controls` `g_i` of known
/// mean `control_mean = E[g]`:
///
/// ```text
///   μ̂_cv = ȳ − c*·(ḡ − E[g]),   c* = Cov(y, g)/Var(g),   Var(μ̂_cv) ≈ (1 − ρ²)·Var(y)/n
/// ```
///
/// For importance sampling with normalised densities pass `y_i = w_i f(x_i)` and `g_i = w_i`
/// (`E_q[w] = 1`): the regression estimator, which removes the weights' own noise. Estimating `c*` from
/// the same draws adds an `O(1/n)` bias. Needs `n ≥ 3` and a non-constant control.
pub fn control_variate(
    values: &[f64],
    controls: &[f64],
    control_mean: f64,
) -> Result<ControlVariate> {
    let n = values.len();
    check_values("control_variate (values)", values, n)?;
    check_values("control_variate (controls)", controls, n)?;
    if n < 3 {
        return Err(Error::invalid(
            "control_variate draws",
            n,
            "needs ≥ 3 draws",
        ));
    }
    crate::error::ensure_finite("control mean", 0, control_mean)?;
    let nf = n as f64;
    let (y_bar, g_bar) = (
        values.iter().sum::<f64>() / nf,
        controls.iter().sum::<f64>() / nf,
    );
    let (mut syy, mut sgg, mut syg) = (0.0, 0.0, 0.0);
    for (y, g) in values.iter().zip(controls) {
        let (dy, dg) = (y - y_bar, g - g_bar);
        syy += dy * dy;
        sgg += dg * dg;
        syg += dy * dg;
    }
    if sgg <= 0.0 {
        return Err(Error::invalid(
            "controls",
            "constant",
            "a control variate must vary",
        ));
    }
    let c = syg / sgg;
    // Residual variance with one more degree of freedom used by c.
    let resid = (syy - c * syg).max(0.0) / (nf - 2.0);
    Ok(ControlVariate {
        estimate: Estimate {
            mean: y_bar - c * (g_bar - control_mean),
            std_error: (resid / nf).sqrt(),
            ess: nf,
        },
        coefficient: c,
        variance_reduction: (syy / (nf - 1.0)) / resid.max(f64::MIN_POSITIVE),
    })
}

/// The plain mean of i.i.d. draws and its standard error `s/√n`.
pub fn mean(values: &[f64]) -> Result<Estimate> {
    let n = values.len();
    check_values("mean", values, n)?;
    if n < 2 {
        return Err(Error::invalid("draws", n, "need ≥ 2 for a standard error"));
    }
    let nf = n as f64;
    let m = values.iter().sum::<f64>() / nf;
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (nf - 1.0);
    Ok(Estimate {
        mean: m,
        std_error: (var / nf).sqrt(),
        ess: nf,
    })
}

fn check_values(op: &'static str, values: &[f64], n: usize) -> Result<()> {
    if values.len() != n {
        return Err(Error::ShapeMismatch {
            op,
            expected: vec![n],
            got: vec![values.len()],
        });
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "value (index = draw)",
            index: i,
            value: values[i],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `E[e^U]`, `U ~ U(0, 1)`, with the control `U` (mean ½): `ρ² ≈ 0.984`, so the control must cut the
    /// variance about 60-fold. Measured over 400 replicates of 200 draws each.
    #[test]
    fn control_variate_cuts_the_variance_where_it_must() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let exact = std::f64::consts::E - 1.0;
        let (mut plain, mut cv) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let u: Vec<f64> = (0..200).map(|_| rng.gen::<f64>()).collect();
            let y: Vec<f64> = u.iter().map(|x| x.exp()).collect();
            plain.push(mean(&y).unwrap().mean);
            let est = control_variate(&y, &u, 0.5).unwrap();
            assert!((est.coefficient - 1.69).abs() < 0.2, "{}", est.coefficient);
            cv.push(est.estimate.mean);
        }
        let spread = |v: &[f64]| mean(v).unwrap().std_error.powi(2) * v.len() as f64;
        let ratio = spread(&plain) / spread(&cv);
        assert!(ratio > 30.0, "variance ratio {ratio}");
        let m = mean(&cv).unwrap();
        assert!((m.mean - exact).abs() < 4.0 * m.std_error, "{m:?}");
    }

    /// A Gaussian toy with closed forms: target N(1, 1), proposals N(0, 1) and N(3, 1); E[x] = 1.
    #[test]
    fn mis_recovers_the_mean_within_three_standard_errors() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let normal = rand_distr::StandardNormal;
        let log_n =
            |x: f64, mu: f64| -0.5 * (x - mu).powi(2) - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let mis = Mis::new(vec![3000, 1000]);
        let mut xs = Vec::new();
        for (j, &mu) in [0.0, 3.0].iter().enumerate() {
            for _ in 0..mis.counts[j] {
                xs.push(mu + rng.sample::<f64, _>(normal));
            }
        }
        let target: Vec<f64> = xs.iter().map(|&x| log_n(x, 1.0) + 7.0).collect();
        let props = vec![
            xs.iter().map(|&x| log_n(x, 0.0)).collect(),
            xs.iter().map(|&x| log_n(x, 3.0)).collect::<Vec<_>>(),
        ];
        let est = mis.estimate(&target, &props, &xs).unwrap();
        assert!((est.mean - 1.0).abs() < 3.0 * est.std_error, "{est:?}");
        assert!(est.ess > 2000.0, "{est:?}");
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(Mis::new(vec![]).check().is_err());
        assert!(Mis::new(vec![3, 0]).check().is_err());
        assert!(Mis::defensive(10, 0.0).is_err());
        for n in [0, 1] {
            assert!(matches!(
                Mis::defensive(n, 0.5),
                Err(Error::InvalidParameter { .. })
            ));
        }
        assert_eq!(Mis::defensive(10, 0.3).unwrap().counts, vec![3, 7]);
        let mis = Mis::new(vec![1, 1]);
        assert!(mis
            .log_weights(
                &[0.0, 0.0],
                &[vec![f64::NEG_INFINITY; 2], vec![0.0, f64::NEG_INFINITY]]
            )
            .is_err());
        assert!(control_variate(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0], 1.0).is_err());
        assert!(control_variate(&[1.0, f64::NAN, 3.0], &[1.0, 2.0, 3.0], 1.0).is_err());
        assert!(self_normalized(&LogWeights(vec![0.0]), &[1.0, 2.0]).is_err());
    }
}
