//! Advantages: rewards minus a baseline, optionally standardised within groups.
//!
//! Rewards are laid out in contiguous groups of `G` (the completions of one prompt, or `G` unconditional
//! samples drawn together). With `r̄_g` and `σ_g` the group mean and unbiased standard deviation:
//!
//! | baseline | `A_i` |
//! |---|---|
//! | `None` | `r_i` |
//! | `Mean` (also Dr. GRPO) | `r_i − r̄_g` |
//! | `LeaveOneOut` | `r_i − (1/(G−1)) Σ_{j≠i} r_j = G/(G−1)·(r_i − r̄_g)` |
//! | `Grpo` | `(r_i − r̄_g)/(σ_g + δ)` |
//!
//! A group whose rewards are all equal carries no signal: its advantages are exactly zero, never NaN.

use crate::error::{Error, Result};

/// Baseline and normalisation of the advantages.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Baseline {
    /// Raw rewards (plain REINFORCE).
    None,
    /// Group mean subtracted (Dr. GRPO: no division by the standard deviation).
    Mean,
    /// Mean of the other members subtracted (unbiased; needs `G ≥ 2`).
    LeaveOneOut,
    /// GRPO: group-standardised, `δ` added to the standard deviation.
    Grpo {
        /// Stabiliser `δ` (the reference uses 1e-8).
        delta: f64,
    },
}

impl Baseline {
    /// GRPO with `δ = 1e-8`.
    pub const GRPO: Baseline = Baseline::Grpo { delta: 1e-8 };
}

/// Advantages of `rewards` laid out in contiguous groups of `group_size`.
pub fn advantages(rewards: &[f64], group_size: usize, baseline: Baseline) -> Result<Vec<f64>> {
    crate::check::nonzero("group_size", group_size)?;
    if rewards.is_empty() {
        return Err(Error::Empty {
            op: "advantages",
            what: "no rewards",
        });
    }
    if !rewards.len().is_multiple_of(group_size) {
        return Err(Error::invalid(
            "group_size",
            group_size,
            format!("must divide the number of rewards ({})", rewards.len()),
        ));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::NonFinite {
            what: "reward",
            index: i,
            value: rewards[i],
        });
    }
    if matches!(baseline, Baseline::LeaveOneOut) && group_size < 2 {
        return Err(Error::invalid(
            "group_size",
            group_size,
            "leave-one-out needs groups of at least 2",
        ));
    }
    let sizes = vec![group_size; rewards.len() / group_size];
    standardise(rewards, &sizes, baseline)
}

/// Advantages of `rewards` laid out in contiguous groups of the given `sizes` (`Σ sizes = len`), e.g.
/// the groups of an adaptive allocation across prompts. As [`advantages`], per group; a group of one
/// draw has no baseline to leave out and gets advantage 0 under `LeaveOneOut` (and under every
/// centred baseline, since it is constant).
pub fn advantages_by_group(
    rewards: &[f64],
    sizes: &[usize],
    baseline: Baseline,
) -> Result<Vec<f64>> {
    if let Some(i) = sizes.iter().position(|&n| n == 0) {
        return Err(Error::invalid(
            "group sizes",
            format!("0 at group {i}"),
            "every group needs ≥ 1 draw",
        ));
    }
    // Checked: sizes that overflow usize cannot sum to the number of rewards either.
    let total = sizes.iter().try_fold(0usize, |acc, &n| acc.checked_add(n));
    if total != Some(rewards.len()) {
        return Err(Error::ShapeMismatch {
            op: "advantages_by_group (Σ sizes vs rewards)",
            expected: vec![rewards.len()],
            got: vec![total.unwrap_or(usize::MAX)],
        });
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::NonFinite {
            what: "reward",
            index: i,
            value: rewards[i],
        });
    }
    standardise(rewards, sizes, baseline)
}

/// The advantages, or [`Error::NonFinite`] if one overflowed (finite rewards whose differences exceed
/// f64's range: rescale the reward).
fn standardise(rewards: &[f64], sizes: &[usize], baseline: Baseline) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(rewards.len());
    let mut start = 0;
    for &size in sizes {
        let group = &rewards[start..start + size];
        start += size;
        let g = group.len() as f64;
        let mut mean = group.iter().sum::<f64>() / g;
        if !mean.is_finite() {
            // Σ r overflowed: Σ (r/g) is finite for any finite rewards.
            mean = group.iter().map(|r| r / g).sum::<f64>();
        }
        let constant = group.iter().all(|&r| r == group[0]);
        for &r in group {
            let centred = if constant { 0.0 } else { r - mean };
            out.push(match baseline {
                Baseline::None => r,
                Baseline::Mean => centred,
                Baseline::LeaveOneOut if group.len() < 2 => 0.0,
                Baseline::LeaveOneOut => g / (g - 1.0) * centred,
                Baseline::Grpo { delta } => {
                    if constant || group.len() < 2 {
                        0.0
                    } else {
                        let var = group.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (g - 1.0);
                        if var.is_finite() {
                            centred / (var.sqrt() + delta)
                        } else {
                            // The squares overflowed: divide everything by m = max |x − r̄| first,
                            // A = ((r − r̄)/m) / (sqrt(Σ ((x − r̄)/m)²/(g − 1)) + δ/m).
                            let m = group.iter().map(|x| (x - mean).abs()).fold(0.0, f64::max);
                            let s = group.iter().map(|x| ((x - mean) / m).powi(2)).sum::<f64>();
                            (centred / m) / ((s / (g - 1.0)).sqrt() + delta / m)
                        }
                    }
                }
            });
        }
    }
    if let Some(i) = out.iter().position(|a| !a.is_finite()) {
        return Err(Error::NonFinite {
            what: "advantage (reward differences overflow f64; rescale the reward)",
            index: i,
            value: out[i],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `κ = E[(1/n) Σ_j A_j c(r_j)]` by enumerating all `2^n` pass/fail reward vectors (see below).
    fn enumerated_kappa(n: usize, p: f64, baseline: Baseline) -> f64 {
        (0..1usize << n)
            .map(|bits| {
                let r: Vec<f64> = (0..n).map(|j| (bits >> j & 1) as f64).collect();
                let k = bits.count_ones() as i32;
                let prob = p.powi(k) * (1.0 - p).powi(n as i32 - k);
                let a = advantages(&r, n, baseline).unwrap();
                let term: f64 = a
                    .iter()
                    .zip(&r)
                    .map(|(a, r)| a * if *r == 1.0 { 1.0 / p } else { -1.0 / (1.0 - p) })
                    .sum();
                prob * term / n as f64
            })
            .sum()
    }

    /// What each baseline's per-prompt term estimates, by exact enumeration over pass/fail rewards.
    ///
    /// For one prompt with success probability `p` and `n` i.i.d. draws, the score given the reward
    /// has conditional mean `E[∇log π | r = 1] = ∇p/p`, `E[∇log π | r = 0] = −∇p/(1 − p)`, so the
    /// expectation of `(1/n) Σ_j A_j ∇log π(x_j)` is `κ·∇p` with `κ = E[(1/n) Σ_j A_j c(r_j)]`,
    /// `c(1) = 1/p`, `c(0) = −1/(1 − p)`. Leave-one-out gives `κ = 1` (unbiased) and the mean baseline
    /// `(n − 1)/n`, whatever `p`. GRPO gives, with `k` successes and the unbiased standard deviation
    /// `s_k = sqrt(k(n − k)/(n(n − 1)))`,
    /// `κ(n, p) = Σ_{k=1}^{n−1} C(n, k) p^k (1 − p)^{n−k} · k(n − k)/(n² p(1 − p)(s_k + δ))`,
    /// which tends to `1/sqrt(p(1 − p))` as `n → ∞` and is much smaller at small `n`: at `p = 0.1`,
    /// `κ·sqrt(p(1 − p))` is 0.21 at `n = 2`, 0.65 at 8, 0.97 at 64. The enumeration runs the library's
    /// advantages on all `2^n` reward vectors; the closed form sums over the count `k`.
    #[test]
    fn per_prompt_expectation_by_baseline() {
        let choose =
            |n: usize, k: usize| (1..=k).fold(1.0, |c, i| c * (n + 1 - i) as f64 / i as f64);
        for n in 2..=8usize {
            for p in [0.05f64, 0.1, 0.3, 0.5, 0.8] {
                let nf = n as f64;
                let grpo: f64 = (1..n)
                    .map(|k| {
                        let kf = k as f64;
                        let s = (kf * (nf - kf) / (nf * (nf - 1.0))).sqrt();
                        choose(n, k)
                            * p.powi(k as i32)
                            * (1.0 - p).powi((n - k) as i32)
                            * kf
                            * (nf - kf)
                            / (nf * nf * p * (1.0 - p) * (s + 1e-8))
                    })
                    .sum();
                let loo = enumerated_kappa(n, p, Baseline::LeaveOneOut);
                let mean = enumerated_kappa(n, p, Baseline::Mean);
                let got = enumerated_kappa(n, p, Baseline::GRPO);
                assert!(
                    (loo - 1.0).abs() < 1e-12,
                    "n={n} p={p}: leave-one-out κ {loo}"
                );
                assert!(
                    (mean - (nf - 1.0) / nf).abs() < 1e-12,
                    "n={n} p={p}: mean κ {mean}"
                );
                assert!(
                    (got - grpo).abs() < 1e-9 * grpo,
                    "n={n} p={p}: GRPO κ {got} vs {grpo}"
                );
            }
        }
        // The figures quoted in train::allocation's docs: κ·sqrt(p(1 − p)) at p = 0.1.
        for (n, want) in [(2, 0.212), (8, 0.653)] {
            let got = enumerated_kappa(n, 0.1, Baseline::GRPO) * 0.09f64.sqrt();
            assert!((got - want).abs() < 5e-4, "n={n}: {got}");
        }
    }

    proptest! {
        #[test]
        fn grpo_advantages_have_zero_mean_and_unit_std_per_group(
            rewards in proptest::collection::vec(-100.0f64..100.0, 8..64)
        ) {
            let g = 4;
            let n = rewards.len() / g * g;
            let a = advantages(&rewards[..n], g, Baseline::GRPO).unwrap();
            for (group, adv) in rewards[..n].chunks(g).zip(a.chunks(g)) {
                let mean = adv.iter().sum::<f64>() / g as f64;
                prop_assert!(mean.abs() < 1e-9);
                if group.iter().any(|&r| r != group[0]) {
                    let sd = (adv.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (g as f64 - 1.0)).sqrt();
                    // δ = 1e-8 against spreads ≥ ~1e-13 relative: unit to 1e-6 unless the spread is tiny.
                    let spread = group.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - group.iter().cloned().fold(f64::INFINITY, f64::min);
                    if spread > 1e-3 {
                        prop_assert!((sd - 1.0).abs() < 1e-6, "sd {}", sd);
                    }
                }
            }
        }

        #[test]
        fn leave_one_out_equals_its_definition(rewards in proptest::collection::vec(-10.0f64..10.0, 6..7)) {
            let a = advantages(&rewards, 3, Baseline::LeaveOneOut).unwrap();
            for (gi, group) in rewards.chunks(3).enumerate() {
                for i in 0..3 {
                    let others: f64 = (0..3).filter(|&j| j != i).map(|j| group[j]).sum::<f64>() / 2.0;
                    prop_assert!((a[gi * 3 + i] - (group[i] - others)).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn unequal_groups_are_standardised_each_on_its_own() {
        let r = [1.0, 3.0, 0.0, 0.0, 6.0, 5.0];
        let a = advantages_by_group(&r, &[2, 3, 1], Baseline::LeaveOneOut).unwrap();
        // [1, 3]: ±2; [0, 0, 6]: 6 − 0 = 6 and 0 − 3 = −3; a lone draw: 0.
        assert_eq!(a, vec![-2.0, 2.0, -3.0, -3.0, 6.0, 0.0]);
        let same = advantages_by_group(&r[..4], &[2, 2], Baseline::GRPO).unwrap();
        assert_eq!(same, advantages(&r[..4], 2, Baseline::GRPO).unwrap());
        assert!(advantages_by_group(&r, &[2, 3], Baseline::Mean).is_err());
        assert!(advantages_by_group(&r, &[6, 0], Baseline::Mean).is_err());
    }

    /// Rewards near f64's limits: GRPO advantages stay exact (±1/sqrt(2) for a pair), and a difference
    /// that overflows is a typed error, never an infinite `Ok`.
    #[test]
    fn huge_rewards_standardise_or_fail_cleanly() {
        let r = [1e300, -1e300, 1.5e308, 1e308, f64::MAX, -f64::MAX];
        let a = advantages(&r, 2, Baseline::GRPO).unwrap();
        let h = std::f64::consts::FRAC_1_SQRT_2;
        for (got, want) in a.iter().zip([h, -h, h, -h, h, -h]) {
            assert!((got - want).abs() < 1e-12, "{a:?}");
        }
        // Leave-one-out's advantage 2·f64::MAX is not representable.
        assert!(matches!(
            advantages(&[f64::MAX, -f64::MAX], 2, Baseline::LeaveOneOut),
            Err(Error::NonFinite { .. })
        ));
        assert_eq!(
            advantages(&[f64::MAX, -f64::MAX], 2, Baseline::Mean).unwrap(),
            vec![f64::MAX, -f64::MAX]
        );
    }

    #[test]
    fn constant_groups_give_zero_never_nan() {
        for b in [Baseline::Mean, Baseline::LeaveOneOut, Baseline::GRPO] {
            let a = advantages(&[0.1, 0.1, 0.1, 1.0, 2.0, 3.0], 3, b).unwrap();
            assert_eq!(&a[..3], &[0.0, 0.0, 0.0], "{b:?}");
            assert!(a.iter().all(|x| x.is_finite()));
        }
        assert!(matches!(
            advantages(&[1.0, f64::NAN], 2, Baseline::Mean),
            Err(Error::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            advantages(&[1.0, 2.0, 3.0], 2, Baseline::Mean),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            advantages(&[], 2, Baseline::Mean),
            Err(Error::Empty { .. })
        ));
    }
}
