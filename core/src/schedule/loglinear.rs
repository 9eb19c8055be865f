//! The log-linear schedule of SEDD's absorbing models.

use super::NoiseSchedule;
use crate::error::{Error, Result};

/// `σ̄(t) = −ln(1 − (1 − ε) t)`, `σ(t) = (1 − ε)/(1 − (1 − ε) t)`.
///
/// Under the absorbing graph the mask probability is then `1 − e^{−σ̄} = (1 − ε) t`: linear in `t`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLinear {
    /// `ε ∈ (0, 1)`: keeps `σ̄(1) = −ln ε` finite.
    pub eps: f64,
}

impl LogLinear {
    /// Requires `0 < ε < 1` with `1 − ε < 1` in f64 (`ε ≥ 2⁻⁵³`): below that `σ̄(1) = −ln ε`
    /// computes as `−ln(1 − 1) = ∞` (found by `tests/proptest_rewards_schedules.rs`).
    pub fn new(eps: f64) -> Result<Self> {
        if !(eps > 0.0 && eps < 1.0) {
            return Err(Error::invalid("eps", eps, "must be in (0, 1)"));
        }
        if 1.0 - eps == 1.0 {
            return Err(Error::invalid(
                "eps",
                eps,
                "must be ≥ 2^-53: below, 1 − eps rounds to 1 and σ̄(1) is infinite",
            ));
        }
        Ok(Self { eps })
    }
}

impl Default for LogLinear {
    /// SEDD's value `ε = 1e-3`.
    fn default() -> Self {
        Self { eps: 1e-3 }
    }
}

impl NoiseSchedule for LogLinear {
    fn total(&self, t: f64) -> f64 {
        -(-(1.0 - self.eps) * t).ln_1p()
    }

    fn rate(&self, t: f64) -> f64 {
        (1.0 - self.eps) / (1.0 - (1.0 - self.eps) * t)
    }

    /// `t = (1 − e^{−σ̄})/(1 − ε)`.
    fn inverse(&self, sigma_bar: f64) -> f64 {
        (-(-sigma_bar).exp_m1() / (1.0 - self.eps)).clamp(0.0, 1.0)
    }
}
