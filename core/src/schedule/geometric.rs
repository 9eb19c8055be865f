//! The geometric schedule of SEDD's uniform models.

use super::NoiseSchedule;
use crate::error::{Error, Result};

/// `σ̄(t) = σ_min^{1−t} σ_max^t`, `σ(t) = σ̄(t)·ln(σ_max/σ_min)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometric {
    /// `σ̄(0)`.
    pub sigma_min: f64,
    /// `σ̄(1)`.
    pub sigma_max: f64,
}

impl Geometric {
    /// Requires `0 < σ_min < σ_max < ∞` with a finite rate `σ_max·ln(σ_max/σ_min)`.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_min.is_finite()) {
            return Err(Error::invalid(
                "sigma_min",
                sigma_min,
                "must be finite and > 0",
            ));
        }
        if !(sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(Error::invalid(
                "sigma_max",
                sigma_max,
                "must be finite and > sigma_min",
            ));
        }
        // The rate σ(1) = σ_max·ln(σ_max/σ_min) must be finite too (found by
        // tests/proptest_rewards_schedules.rs: σ_min ≈ 1e-308 with σ_max ≈ 1e308 overflowed it).
        let rate = sigma_max * (sigma_max / sigma_min).ln();
        if !rate.is_finite() {
            return Err(Error::invalid(
                "sigma_max",
                sigma_max,
                "σ_max·ln(σ_max/σ_min) overflows f64: narrow the range",
            ));
        }
        Ok(Self {
            sigma_min,
            sigma_max,
        })
    }
}

impl Default for Geometric {
    /// SEDD's values: `σ_min = 1e-4`, `σ_max = 20`.
    fn default() -> Self {
        Self {
            sigma_min: 1e-4,
            sigma_max: 20.0,
        }
    }
}

impl NoiseSchedule for Geometric {
    fn total(&self, t: f64) -> f64 {
        self.sigma_min.powf(1.0 - t) * self.sigma_max.powf(t)
    }

    fn rate(&self, t: f64) -> f64 {
        self.total(t) * (self.sigma_max / self.sigma_min).ln()
    }

    /// `t = ln(σ̄/σ_min)/ln(σ_max/σ_min)`.
    fn inverse(&self, sigma_bar: f64) -> f64 {
        ((sigma_bar / self.sigma_min).ln() / (self.sigma_max / self.sigma_min).ln()).clamp(0.0, 1.0)
    }
}
