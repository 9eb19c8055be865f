//! Advantage transforms that need more than the rewards: self-normalised importance weights towards
//! the reward-tilted target, and the variance-optimal control variate of the score function. They are
//! what the `snis` and `control_variate` components of `estimator!` compute on a round's samples.
//!
//! Every policy-gradient term of a group of `n` draws `x_j ~ π_old` is `A_j ∇log π(x_j)`, averaged:
//! `ĝ = (1/n) Σ_j A_j ∇log π(x_j)`.
//!
//! **`snis(temperature = τ)`.** The gradient of the forward KL to the tilted target
//! `p*_τ ∝ p_ref·exp(r/τ)`, `−∇KL(p*_τ ‖ π) = E_{p*_τ}[∇log π]`, estimated from `π_old`'s draws by
//! self-normalised importance sampling over the recorded paths,
//!
//! ```text
//!   w_j ∝ exp(r_j/τ) · P_ref(path_j) / P_old(path_j),   w̄_j = w_j / Σ_k w_k   (within the group)
//!   A_j = n·w̄_j − 1
//! ```
//!
//! so `ĝ = Σ_j w̄_j ∇log π(x_j) − (1/n) Σ_j ∇log π(x_j)`: the SNIS estimate of `E_{p*}[∇log π]` minus
//! the sample mean of the score (mean 0 under `π_old`), a control that removes the common part. It is the
//! reward-weighted-regression direction: `Σ_j A_j = 0`, equal rewards on the reference give `A = 0`,
//! and `τ → 0` puts all the weight on the group's best draw. (Ratios between `θ` and `θ_old` would be 1
//! when advantages are formed; PPO's `ρ` already carries them during the epochs.)
//!
//! **`control_variate`.** The score `h_j = ∇log π(x_j)` has mean 0 under `π_old`, so for any `c`,
//! `ĝ_c = (1/n) Σ_j (A_j − c) ∇log π(x_j)` has the same mean as `ĝ`; the `c` minimising
//! `Σ_j ‖(A_j − c) ∇log π(x_j)‖²` is
//!
//! ```text
//!   c* = Σ_j A_j s_j / Σ_j s_j,   s_j = ‖∇log π(x_j)‖²
//! ```
//!
//! (the optimal baseline of Weaver & Tao 2001, Greensmith et al. 2004), estimated per group from the same
//! draws (an `O(1/n)` bias). It helps where the score norms differ between good and bad draws. A control
//! built on the reward side, `r − c·(g − E g)` for a sample statistic `g` (e.g. the path log-ratio to
//! the reference), would change the objective to `E[r] − c·E[g]`, since `E[(g − E g)∇log π] = ∇E[g] ≠ 0`:
//! the score is the control whose correction has a known mean for every policy.

use crate::error::{Error, Result};

/// How a component transforms its advantages (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Reweight {
    /// The baseline's advantages as they are.
    #[default]
    None,
    /// `A_j = n·w̄_j − 1`, `w_j ∝ exp(r_j/τ)·P_ref(path_j)/P_old(path_j)` within the group.
    Snis {
        /// Temperature `τ > 0` of the tilted target `p_ref·exp(r/τ)`.
        temperature: f64,
    },
    /// `A_j − c*`, `c* = Σ_j A_j s_j / Σ_j s_j` within the group, `s_j = ‖∇log π(x_j)‖²`.
    ControlVariate,
}

impl Reweight {
    /// Checks `τ > 0` (finite).
    pub fn check(&self) -> Result<()> {
        if let Reweight::Snis { temperature } = *self {
            if !(temperature > 0.0 && temperature.is_finite()) {
                return Err(Error::invalid(
                    "temperature",
                    temperature,
                    "must be finite and > 0",
                ));
            }
        }
        Ok(())
    }

    /// Whether it needs the path log-ratios `log P_old(path) − log P_ref(path)`.
    pub fn needs_reference_ratio(&self) -> bool {
        matches!(self, Reweight::Snis { .. })
    }

    /// Whether it needs the squared score norms `‖∇log π(x_j)‖²`.
    pub fn needs_score_norms(&self) -> bool {
        matches!(self, Reweight::ControlVariate)
    }
}

/// `snis` advantages over contiguous groups of `sizes`: `A_j = n·w̄_j − 1` with
/// `log w_j = r_j/τ − log_ratio_j`, `log_ratio_j = log P_old(path_j) − log P_ref(path_j)`,
/// normalised in log space within each group.
pub fn snis_advantages(
    rewards: &[f64],
    log_ratio: &[f64],
    sizes: &[usize],
    temperature: f64,
) -> Result<Vec<f64>> {
    Reweight::Snis { temperature }.check()?;
    check_lengths("snis_advantages", rewards, log_ratio, sizes)?;
    let mut out = Vec::with_capacity(rewards.len());
    let mut start = 0;
    for &n in sizes {
        let range = start..start + n;
        start += n;
        let log_w: Vec<f64> = rewards[range.clone()]
            .iter()
            .zip(&log_ratio[range])
            .map(|(r, d)| r / temperature - d)
            .collect();
        let norm = crate::weight::log_sum_exp(&log_w);
        out.extend(log_w.iter().map(|lw| n as f64 * (lw - norm).exp() - 1.0));
    }
    Ok(out)
}

/// `control_variate` advantages over contiguous groups of `sizes`: `A_j − c*` with
/// `c* = Σ_j A_j s_j / Σ_j s_j` (`c* = 0` for a group whose scores all vanish).
pub fn control_variate_advantages(
    advantages: &[f64],
    score_norms_sq: &[f64],
    sizes: &[usize],
) -> Result<Vec<f64>> {
    check_lengths(
        "control_variate_advantages",
        advantages,
        score_norms_sq,
        sizes,
    )?;
    if let Some(i) = score_norms_sq.iter().position(|s| *s < 0.0) {
        return Err(Error::invalid(
            "squared score norm",
            score_norms_sq[i],
            format!("must be ≥ 0 (draw {i})"),
        ));
    }
    let mut out = Vec::with_capacity(advantages.len());
    let mut start = 0;
    for &n in sizes {
        let (a, s) = (
            &advantages[start..start + n],
            &score_norms_sq[start..start + n],
        );
        start += n;
        let total: f64 = s.iter().sum();
        let c = if total > 0.0 {
            a.iter().zip(s).map(|(a, s)| a * s).sum::<f64>() / total
        } else {
            0.0
        };
        out.extend(a.iter().map(|a| a - c));
    }
    Ok(out)
}

fn check_lengths(op: &'static str, a: &[f64], b: &[f64], sizes: &[usize]) -> Result<()> {
    let total: usize = sizes.iter().sum();
    if a.len() != total || b.len() != total {
        return Err(Error::ShapeMismatch {
            op,
            expected: vec![total],
            got: vec![a.len(), b.len()],
        });
    }
    for v in [a, b] {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                what: op,
                index: i,
                value: v[i],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn snis_matches_its_closed_form() {
        // Group [r = 0, 1, 2] with ratios [0, ln 2, 0] at τ = 1: w ∝ [1, e/2, e²].
        let r = [0.0, 1.0, 2.0, 5.0, 5.0];
        let d = [0.0, 2f64.ln(), 0.0, 0.3, 0.3];
        let a = snis_advantages(&r, &d, &[3, 2], 1.0).unwrap();
        let w = [1.0, std::f64::consts::E / 2.0, std::f64::consts::E.powi(2)];
        let z: f64 = w.iter().sum();
        for j in 0..3 {
            assert!((a[j] - (3.0 * w[j] / z - 1.0)).abs() < 1e-12, "{a:?}");
        }
        // Equal rewards and ratios: uniform weights, zero advantages; every group sums to 0.
        assert!(a[3..].iter().all(|x| x.abs() < 1e-12), "{a:?}");
        assert!(a[..3].iter().sum::<f64>().abs() < 1e-12);
        // A cold temperature puts the weight on the best draw: A → (n − 1, −1, −1, ..).
        let cold = snis_advantages(&r[..3], &[0.0; 3], &[3], 1e-3).unwrap();
        assert!((cold[2] - 2.0).abs() < 1e-9 && (cold[0] + 1.0).abs() < 1e-9);
        assert!(snis_advantages(&r, &d, &[3, 2], 0.0).is_err());
        assert!(snis_advantages(&r, &d[..4], &[3, 2], 1.0).is_err());
    }

    #[test]
    fn control_variate_matches_its_closed_form() {
        let a = [1.0, -1.0, 2.0, 0.0];
        let s = [3.0, 1.0, 0.0, 0.0];
        let out = control_variate_advantages(&a, &s, &[2, 2]).unwrap();
        // c* = (3 − 1)/4 = 0.5 in the first group; 0 where every score vanishes.
        assert_eq!(out, vec![0.5, -1.5, 2.0, 0.0]);
        assert!(control_variate_advantages(&a, &[1.0, -1.0, 0.0, 0.0], &[2, 2]).is_err());
    }

    /// A softmax over 8 answers, `π = (0.05, 0.9, 0.05/6, ..)`, reward 1 on answer 0: the common
    /// failure (answer 1) has a small score norm `‖e_1 − π‖² ≈ 0.013`, every other draw ≈ 1.8, so the
    /// mean baseline, dominated by the common failure, is far from the norm-weighted optimum. Groups of
    /// 8 draws, leave-one-out base advantages, 20,000 groups: the control variate must cut
    /// `E‖ĝ − ∇J‖²`. Measured 9.36e-3 → 4.48e-3 (−52%); asserted as a paired difference above 4 of its
    /// standard errors.
    #[test]
    fn control_variate_cuts_the_variance_where_the_score_norms_differ() {
        let mut pi = vec![0.05, 0.9];
        pi.extend([0.05 / 6.0; 6]);
        let exact: Vec<f64> = (0..8)
            .map(|c| pi[0] * (f64::from(u8::from(c == 0)) - pi[c]))
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mut diff = Vec::new();
        let (mut plain, mut cv) = (0.0, 0.0);
        let groups = 20_000;
        for _ in 0..groups {
            let a: Vec<usize> = (0..8)
                .map(|_| crate::sample::categorical::draw(&pi, &mut rng))
                .collect();
            let r: Vec<f64> = a.iter().map(|&x| f64::from(u8::from(x == 0))).collect();
            let score = |x: usize| -> Vec<f64> {
                (0..8)
                    .map(|c| f64::from(u8::from(c == x)) - pi[c])
                    .collect()
            };
            let s: Vec<f64> = a
                .iter()
                .map(|&x| score(x).iter().map(|v| v * v).sum())
                .collect();
            let base =
                crate::weight::advantages(&r, 8, crate::weight::Baseline::LeaveOneOut).unwrap();
            let adjusted = control_variate_advantages(&base, &s, &[8]).unwrap();
            let err = |adv: &[f64]| {
                let mut g = [0.0; 8];
                for (&x, &w) in a.iter().zip(adv) {
                    for (gc, sc) in g.iter_mut().zip(score(x)) {
                        *gc += w * sc / 8.0;
                    }
                }
                g.iter()
                    .zip(&exact)
                    .map(|(x, e)| (x - e).powi(2))
                    .sum::<f64>()
            };
            let (e0, e1) = (err(&base), err(&adjusted));
            plain += e0 / groups as f64;
            cv += e1 / groups as f64;
            diff.push(e0 - e1);
        }
        let m = diff.iter().sum::<f64>() / groups as f64;
        let se = (diff.iter().map(|d| (d - m).powi(2)).sum::<f64>()
            / (groups as f64 - 1.0)
            / groups as f64)
            .sqrt();
        eprintln!("E‖ĝ − ∇J‖²: plain {plain:.4e}, control variate {cv:.4e}, difference {m:.3e} ± {se:.1e}");
        assert!(
            m > 4.0 * se,
            "plain {plain}, control variate {cv}, difference {m} ± {se}"
        );
    }
}
