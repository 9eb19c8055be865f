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
    Ok(standardise(rewards, &sizes, baseline))
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
    if sizes.iter().sum::<usize>() != rewards.len() {
        return Err(Error::ShapeMismatch {
            op: "advantages_by_group (Σ sizes vs rewards)",
            expected: vec![rewards.len()],
            got: vec![sizes.iter().sum()],
        });
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::NonFinite {
            what: "reward",
            index: i,
            value: rewards[i],
        });
    }
    Ok(standardise(rewards, sizes, baseline))
}

fn standardise(rewards: &[f64], sizes: &[usize], baseline: Baseline) -> Vec<f64> {
    let mut out = Vec::with_capacity(rewards.len());
    let mut start = 0;
    for &size in sizes {
        let group = &rewards[start..start + size];
        start += size;
        let g = group.len() as f64;
        let mean = group.iter().sum::<f64>() / g;
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
                        centred / (var.sqrt() + delta)
                    }
                }
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
