//! Noise schedules: the total noise `σ̄(t)` and its rate `σ(t) = dσ̄/dt` on `t ∈ [0, 1]`.

mod geometric;
mod loglinear;

pub use geometric::Geometric;
pub use loglinear::LogLinear;

use crate::error::{Error, Result};

/// Number of intervals of the grid `t_k = k/CHECK_INTERVALS` on which [`NoiseSchedule::check`]
/// evaluates a schedule.
pub const CHECK_INTERVALS: usize = 256;

/// A noise schedule. `σ̄` must be non-decreasing on `[0, 1]` with `σ̄ ≥ 0` and `σ(t) = dσ̄/dt ≥ 0`,
/// all finite ([`NoiseSchedule::check`]).
pub trait NoiseSchedule: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Total noise `σ̄(t)`.
    fn total(&self, t: f64) -> f64;

    /// Rate `σ(t) = dσ̄/dt`.
    fn rate(&self, t: f64) -> f64;

    /// Inverse of `σ̄` on `[0, 1]`: the `t` with `σ̄(t) = sigma_bar`, clamped to `[0, 1]`.
    /// The default bisects (60 halvings: exact to f64 precision); schedules override it in closed form.
    fn inverse(&self, sigma_bar: f64) -> f64 {
        let (mut lo, mut hi) = (0.0, 1.0);
        if sigma_bar <= self.total(lo) {
            return lo;
        }
        if sigma_bar >= self.total(hi) {
            return hi;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if self.total(mid) < sigma_bar {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    /// Validates the schedule on the grid `t_k = k/256`, `k = 0..=256` (1 included: samplers start
    /// there): `σ̄(t_k)` and `σ(t_k)` finite ([`Error::NonFinite`], index `k`), `σ̄(t_k) ≥ 0`,
    /// `σ(t_k) ≥ 0` and `σ̄(t_k) ≥ σ̄(t_{k−1})` up to a relative `1e-12` of rounding
    /// ([`Error::InvalidParameter`] naming `t`), and `σ̄(1) > 0` (a schedule that adds no noise). Trainers and samplers call it at entry, so a schedule
    /// written with `noise_schedule!` (whose fields are public) is checked where it is used; a
    /// negative `σ̄` would otherwise give negative transition probabilities and a negative DWDSE loss.
    fn check(&self) -> Result<()> {
        let mut previous = 0.0f64;
        for k in 0..=CHECK_INTERVALS {
            let t = k as f64 / CHECK_INTERVALS as f64;
            let (total, rate) = (self.total(t), self.rate(t));
            crate::error::ensure_finite("σ̄(t) of the schedule, t = index/256", k, total)?;
            crate::error::ensure_finite("σ(t) of the schedule, t = index/256", k, rate)?;
            let bad = |what: &str, value: f64, reason: &str| {
                Err(Error::invalid(
                    "schedule",
                    format!("{self:?} with {what}({t}) = {value}"),
                    reason,
                ))
            };
            if total < 0.0 {
                return bad("σ̄", total, "the total noise σ̄(t) must be ≥ 0 on [0, 1]");
            }
            if rate < 0.0 {
                return bad("σ", rate, "the rate σ(t) = dσ̄/dt must be ≥ 0 on [0, 1]");
            }
            if total < previous - 1e-12 * previous.abs().max(1.0) {
                return bad("σ̄", total, "σ̄ must be non-decreasing on [0, 1]");
            }
            previous = total;
        }
        if previous <= 0.0 {
            return Err(Error::invalid(
                "schedule",
                format!("{self:?} with σ̄(1) = {previous}"),
                "the schedule must add noise: σ̄(1) > 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// σ matches a central difference of σ̄, σ̄ is monotone, and `inverse` inverts `total`.
    pub(crate) fn check_schedule<S: NoiseSchedule>(s: &S, t_max: f64) {
        let h = 1e-6;
        let mut prev = s.total(0.0);
        for i in 1..=200 {
            let t = t_max * i as f64 / 200.0;
            let total = s.total(t);
            assert!(total >= prev, "{s:?}: σ̄ decreases at t = {t}");
            prev = total;
            if t > h && t + h <= 1.0 {
                let fd = (s.total(t + h) - s.total(t - h)) / (2.0 * h);
                let rel = (fd - s.rate(t)).abs() / s.rate(t).abs().max(1e-3);
                assert!(
                    rel < 1e-6,
                    "{s:?}: σ({t}) = {} but finite difference gives {fd}",
                    s.rate(t)
                );
            }
            let back = s.inverse(total);
            assert!((back - t).abs() < 1e-9, "{s:?}: inverse(σ̄({t})) = {back}");
        }
    }

    /// `check` on built-in schedules with their public fields set anyhow: a typed error or a schedule
    /// that is finite, ≥ 0 and non-decreasing, also between the grid points it checks.
    mod check_fields {
        use super::*;
        use crate::error::Error;
        use proptest::prelude::*;

        fn sound<S: NoiseSchedule>(s: &S) -> bool {
            let mut previous = 0.0f64;
            (0..=1000).all(|k| {
                let t = k as f64 / 1000.0;
                let (total, rate) = (s.total(t), s.rate(t));
                let ok = total.is_finite() && rate.is_finite() && total >= 0.0 && rate >= 0.0;
                let monotone = total >= previous - 1e-12 * previous.max(1.0);
                previous = total;
                ok && monotone
            })
        }

        fn accepted_or_typed<S: NoiseSchedule>(s: &S) -> std::result::Result<(), TestCaseError> {
            match s.check() {
                Ok(()) => prop_assert!(sound(s), "{s:?} passed check"),
                Err(Error::InvalidParameter { .. } | Error::NonFinite { .. }) => {}
                Err(e) => prop_assert!(false, "{s:?}: {e}"),
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn log_linear(eps in prop_oneof![-2.0f64..3.0, proptest::num::f64::ANY]) {
                accepted_or_typed(&LogLinear { eps })?;
                // `LogLinear::new`'s range, up to ε so small that 1 − ε rounds to 1 (σ̄(1) = ∞).
                let ok = LogLinear { eps }.check().is_ok();
                prop_assert!(!ok || (eps > 0.0 && eps < 1.0), "eps = {}", eps);
                prop_assert!(ok || !(1e-12..=1.0 - 1e-12).contains(&eps), "eps = {}", eps);
            }

            #[test]
            fn geometric(
                sigma_min in prop_oneof![-1.0f64..30.0, proptest::num::f64::ANY],
                sigma_max in prop_oneof![-1.0f64..30.0, proptest::num::f64::ANY],
            ) {
                accepted_or_typed(&Geometric { sigma_min, sigma_max })?;
            }
        }
    }

    #[test]
    fn built_in_schedules_are_consistent() {
        check_schedule(&Geometric::new(1e-4, 20.0).unwrap(), 1.0);
        check_schedule(&Geometric::default(), 1.0);
        check_schedule(&LogLinear::new(1e-3).unwrap(), 1.0);
        check_schedule(&LogLinear::default(), 1.0);
    }
}
