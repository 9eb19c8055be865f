//! Gradient estimators as mixtures of clipped policy-gradient objectives.
//!
//! Every estimator here shares the same log-ratios `Δ` (from the concrete-score or trajectory
//! log-probability, see [`crate::policy`]) and differs in how advantages are formed and whether the ratio
//! is clipped. A mixture `Σ_i w_i · J_i` with `w_i ≥ 0`, `Σ w_i = 1` is a convex combination of the
//! components' objectives: its gradient is the same combination of their gradients, computed with one
//! forward and one backward pass (the per-term coefficients are summed before backpropagation).
//!
//! | component | advantages | clip |
//! |---|---|---|
//! | `reinforce(baseline)` | `r − b` ([`Baseline`]) | none |
//! | `ppo(baseline, clip)` | `r − b` | `ε` |
//! | `grpo(group, clip)` | `(r − r̄_g)/(σ_g + δ)` over groups of `group` | `ε` |
//! | `snis(temperature, clip)` | `n·w̄_j − 1`, `w ∝ exp(r/τ)·P_ref/P_old` per group ([`Reweight`]) | optional |
//! | `control_variate(baseline, clip)` | `A_j − c*`, `c* = Σ A s / Σ s`, `s = ‖∇log π‖²` per group | optional |

use super::Reweight;
use crate::error::{Error, Result};
use crate::weight::{advantages, Baseline};

/// One component of an estimator mixture.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Component {
    /// Name in metrics (`grpo`, `reinforce`, …).
    pub name: String,
    /// Mixture weight `w_i ≥ 0`.
    pub weight: f64,
    /// How advantages are formed.
    pub baseline: Baseline,
    /// Group size for the baseline (`None`: the trainer's `group_size`).
    pub group: Option<usize>,
    /// PPO clip range `ε ∈ (0, 1)`; `None`: no clipping.
    pub clip: Option<f64>,
    /// A transform of the advantages that needs more than the rewards (`snis`, `control_variate`).
    #[serde(default)]
    pub reweight: Reweight,
}

impl Component {
    /// The PPO clip range `ε = 0.2` a clipped component uses when none is given (PPO's and the
    /// reference's value; `estimator!` and `policy!` expand an omitted `clip` to this constant).
    pub const DEFAULT_CLIP: f64 = 0.2;

    /// Advantages of `rewards` for this component, with `default_group` unless it sets its own.
    pub fn advantages(&self, rewards: &[f64], default_group: usize) -> Result<Vec<f64>> {
        advantages(rewards, self.group.unwrap_or(default_group), self.baseline)
    }

    /// Advantages of `rewards` over groups of the given `sizes` (an adaptive allocation: one group
    /// per prompt), which replace the component's own `group`.
    pub fn advantages_by_group(&self, rewards: &[f64], sizes: &[usize]) -> Result<Vec<f64>> {
        crate::weight::advantages_by_group(rewards, sizes, self.baseline)
    }
}

/// A policy-gradient estimator: a convex mixture of clipped objectives.
pub trait Estimator {
    /// Name in metrics and errors.
    fn name(&self) -> String;
    /// The components and their weights.
    fn components(&self) -> Vec<Component>;
}

/// The core estimator type: a checked list of components.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mixture {
    /// The components; weights are non-negative and sum to 1.
    pub components: Vec<Component>,
}

impl Mixture {
    /// GRPO (group-standardised advantages, δ = 1e-8) with clip `ε`, over the trainer's groups.
    pub fn grpo(clip: f64) -> Self {
        Self::single("grpo", Baseline::GRPO, None, Some(clip))
    }

    /// PPO-clip with the given baseline.
    pub fn ppo(baseline: Baseline, clip: f64) -> Self {
        Self::single("ppo", baseline, None, Some(clip))
    }

    /// REINFORCE (no clipping) with the given baseline.
    pub fn reinforce(baseline: Baseline) -> Self {
        Self::single("reinforce", baseline, None, None)
    }

    /// Self-normalised importance weights towards `p_ref·exp(r/τ)` ([`Reweight::Snis`]), no clipping.
    pub fn snis(temperature: f64) -> Self {
        let mut m = Self::single("snis", Baseline::None, None, None);
        m.components[0].reweight = Reweight::Snis { temperature };
        m
    }

    /// The score-function control variate on `baseline`'s advantages ([`Reweight::ControlVariate`]),
    /// no clipping.
    pub fn control_variate(baseline: Baseline) -> Self {
        let mut m = Self::single("control_variate", baseline, None, None);
        m.components[0].reweight = Reweight::ControlVariate;
        m
    }

    fn single(name: &str, baseline: Baseline, group: Option<usize>, clip: Option<f64>) -> Self {
        Self {
            components: vec![Component {
                name: name.into(),
                weight: 1.0,
                baseline,
                group,
                clip,
                reweight: Reweight::None,
            }],
        }
    }

    /// The mixture of any [`Estimator`].
    pub fn of<E: Estimator + ?Sized>(estimator: &E) -> Result<Self> {
        let m = Self {
            components: estimator.components(),
        };
        m.check()?;
        Ok(m)
    }

    /// Checks weights (finite, `≥ 0`, summing to 1 within 1e-9), clip ranges and group sizes.
    pub fn check(&self) -> Result<()> {
        if self.components.is_empty() {
            return Err(Error::Empty {
                op: "Mixture",
                what: "an estimator needs at least one component",
            });
        }
        let mut total = 0.0;
        for c in &self.components {
            if !(c.weight >= 0.0 && c.weight.is_finite()) {
                return Err(Error::invalid(
                    "mixture weight",
                    c.weight,
                    format!("of `{}` must be finite and ≥ 0", c.name),
                ));
            }
            if let Some(eps) = c.clip {
                if !(eps > 0.0 && eps < 1.0) {
                    return Err(Error::invalid(
                        "clip",
                        eps,
                        format!("of `{}` must be in (0, 1)", c.name),
                    ));
                }
            }
            c.reweight.check()?;
            if c.group == Some(0) {
                return Err(Error::invalid(
                    "group",
                    0,
                    format!("of `{}` must be ≥ 1", c.name),
                ));
            }
            total += c.weight;
        }
        if (total - 1.0).abs() > 1e-9 {
            return Err(Error::invalid("mixture weights", total, "must sum to 1"));
        }
        Ok(())
    }
}

impl Estimator for Mixture {
    fn name(&self) -> String {
        self.components
            .iter()
            .map(|c| format!("{}*{}", c.weight, c.name))
            .collect::<Vec<_>>()
            .join("+")
    }
    fn components(&self) -> Vec<Component> {
        self.components.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixtures_are_checked() {
        assert!(Mixture::grpo(0.2).check().is_ok());
        let mut m = Mixture::grpo(0.2);
        m.components.push(Component {
            name: "reinforce".into(),
            weight: 0.5,
            baseline: Baseline::Mean,
            group: None,
            clip: None,
            reweight: Reweight::None,
        });
        assert!(matches!(
            m.check(),
            Err(Error::InvalidParameter {
                name: "mixture weights",
                ..
            })
        ));
        m.components[0].weight = 0.5;
        assert!(m.check().is_ok());
        assert_eq!(m.name(), "0.5*grpo+0.5*reinforce");
        assert!(Mixture::snis(0.5).check().is_ok());
        assert!(Mixture::snis(-1.0).check().is_err());
        m.components[0].clip = Some(1.5);
        assert!(matches!(
            m.check(),
            Err(Error::InvalidParameter { name: "clip", .. })
        ));
    }
}
