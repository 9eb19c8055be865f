//! The PPO-clip surrogate over weighted terms, shared by every policy-gradient estimator.
//!
//! Each sample `b` contributes terms `k` (the neighbours `y` of SEPO's concrete-score estimator, or a single
//! term for the trajectory estimator), each with a constant weight `w_bk`, a constant log-offset `log c_bk`
//! and a differentiable log-ratio `Δ_bk(θ)`. With `ρ_bk = exp(log c_bk + Δ_bk)` and advantage `A_b`,
//!
//! `J = (1/B) Σ_b Σ_k w_bk · min(ρ_bk A_b, clip(ρ_bk, 1 − ε, 1 + ε) A_b)`,  loss `= −J`.
//!
//! The minimum is resolved on the host: where the clipped branch is strictly smaller the term is a
//! constant (zero gradient), elsewhere it is `ρ A` with `∇ρ = ρ ∇Δ`. That is exactly the (sub)gradient of
//! the expression above.

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::{to_f64s, upload_f64s};

/// One clipped objective: `scale · J(A, ε)`. An estimator mixture is a sum of these over the same terms.
#[derive(Debug, Clone, Copy)]
pub struct PpoObjective<'a> {
    /// Mixture weight (1 for a single estimator).
    pub scale: f64,
    /// Advantages `A_b`, `[B]`.
    pub advantage: &'a [f64],
    /// Clip range `ε ∈ (0, 1)`; `None` disables clipping (plain REINFORCE with importance ratio).
    pub clip: Option<f64>,
}

/// Inputs of [`ppo_clip`]; host vectors are `[B·K]`.
#[derive(Debug, Clone)]
pub struct PpoTerms<'a> {
    /// Constant weights `w_bk ≥ 0`.
    pub weight: &'a [f64],
    /// Constant log-offsets `log c_bk`.
    pub log_offset: &'a [f64],
    /// The objectives summed into the loss.
    pub objectives: &'a [PpoObjective<'a>],
}

impl<'a> PpoObjective<'a> {
    /// A single objective of weight 1.
    pub fn single(advantage: &'a [f64], clip: Option<f64>) -> [PpoObjective<'a>; 1] {
        [PpoObjective {
            scale: 1.0,
            advantage,
            clip,
        }]
    }

    /// The objectives restricted to samples `start..end` (their advantages sliced; scale and clip
    /// kept): what an estimator evaluating a batch in chunks passes for one chunk.
    pub fn rows(
        objectives: &[PpoObjective<'a>],
        start: usize,
        end: usize,
    ) -> Vec<PpoObjective<'a>> {
        objectives
            .iter()
            .map(|o| PpoObjective {
                advantage: &o.advantage[start..end],
                ..*o
            })
            .collect()
    }
}

/// Diagnostics of one surrogate evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct PpoStats {
    /// Value of the loss `−J`.
    pub loss: f64,
    /// Weight fraction of terms whose clipped branch was active (TRL's `clip_ratio/region_mean`):
    /// `clip_low + clip_high`.
    pub clip_ratio: f64,
    /// Weight fraction clipped below: `ρ < 1 − ε` with `A < 0` (TRL's `clip_ratio/low_mean`).
    pub clip_low: f64,
    /// Weight fraction clipped above: `ρ > 1 + ε` with `A > 0` (TRL's `clip_ratio/high_mean`).
    pub clip_high: f64,
    /// Weighted mean of `ρ`.
    pub ratio_mean: f64,
    /// Total term weight `Σ_i w_i` behind the two weighted statistics, so that statistics of pieces
    /// of a batch combine exactly: `clip_ratio = Σ_c w_c·clip_ratio_c / Σ_c w_c`, likewise
    /// `clip_low`, `clip_high` and `ratio_mean`.
    pub weight: f64,
}

impl PpoStats {
    /// Adds the statistics `s` of a chunk holding `share` of the batch's samples: the loss (a mean over
    /// samples) by `share`, the two weighted statistics by their term weight `s.weight`.
    pub fn add_chunk(&mut self, share: f64, s: &PpoStats) {
        self.loss += share * s.loss;
        self.clip_ratio += s.weight * s.clip_ratio;
        self.clip_low += s.weight * s.clip_low;
        self.clip_high += s.weight * s.clip_high;
        self.ratio_mean += s.weight * s.ratio_mean;
        self.weight += s.weight;
    }

    /// Turns the sums of [`PpoStats::add_chunk`] into means: `clip_ratio` and `ratio_mean` divided by
    /// the total weight, or `ratio_mean = 1` (every `ρ` of an empty batch) when no term weighed
    /// anything.
    pub fn finish(mut self) -> Self {
        if self.weight > 0.0 {
            self.clip_ratio /= self.weight;
            self.clip_low /= self.weight;
            self.clip_high /= self.weight;
            self.ratio_mean /= self.weight;
        } else {
            self.ratio_mean = 1.0;
        }
        self
    }
}

/// Host part of the surrogate: for log-ratios `delta` (`[B·K]`, values only) returns coefficients `κ`
/// with `loss = Σ_i κ_i e^{Δ_i} + constant`, so that `∇loss = Σ_i κ_i e^{Δ_i} ∇Δ_i`, and the statistics
/// (with `loss` the full value). Shared by [`ppo_clip`] and estimators that backpropagate `Δ` in pieces.
pub fn ppo_coefficients(
    delta: &[f64],
    batch: usize,
    terms: &PpoTerms<'_>,
) -> Result<(Vec<f64>, PpoStats)> {
    let k = delta.len() / batch.max(1);
    for (name, len, want) in [
        ("ppo_clip (weight)", terms.weight.len(), batch * k),
        ("ppo_clip (log_offset)", terms.log_offset.len(), batch * k),
    ] {
        if len != want || batch == 0 {
            return Err(Error::ShapeMismatch {
                op: name,
                expected: vec![want],
                got: vec![len],
            });
        }
    }
    if terms.objectives.is_empty() {
        return Err(Error::Empty {
            op: "ppo_clip",
            what: "no objective",
        });
    }
    for o in terms.objectives {
        if o.advantage.len() != batch {
            return Err(Error::ShapeMismatch {
                op: "ppo_clip (advantage)",
                expected: vec![batch],
                got: vec![o.advantage.len()],
            });
        }
        if let Some(eps) = o.clip {
            if !(eps > 0.0 && eps < 1.0) {
                return Err(Error::invalid("epsilon", eps, "must be in (0, 1)"));
            }
        }
        if !(o.scale >= 0.0 && o.scale.is_finite()) {
            return Err(Error::invalid(
                "mixture weight",
                o.scale,
                "must be finite and ≥ 0",
            ));
        }
    }
    if let Some(i) = delta.iter().position(|d| !d.is_finite()) {
        return Err(Error::NonFinite {
            what: "policy log-ratio",
            index: i,
            value: delta[i],
        });
    }
    let mut coeff = vec![0.0; batch * k];
    let (mut value, mut total_w, mut ratio_w) = (0.0, 0.0, 0.0);
    // Clipped weight with A < 0 (ρ < 1 − ε) and with A > 0 (ρ > 1 + ε): the clipped branch is the
    // smaller only on those sides.
    let (mut low_w, mut high_w) = (0.0, 0.0);
    for i in 0..batch * k {
        let w = terms.weight[i];
        let rho = (terms.log_offset[i] + delta[i]).exp();
        total_w += w;
        ratio_w += w * rho;
        for o in terms.objectives {
            let a = o.advantage[i / k];
            let unclipped = rho * a;
            let clipped = o
                .clip
                .map_or(unclipped, |eps| rho.clamp(1.0 - eps, 1.0 + eps) * a);
            if clipped < unclipped {
                if a < 0.0 {
                    low_w += o.scale * w;
                } else {
                    high_w += o.scale * w;
                }
                value -= o.scale * w * clipped / batch as f64;
            } else {
                // ρ = c·e^Δ: the offset enters as a constant factor of the coefficient.
                coeff[i] -= o.scale * w * a * terms.log_offset[i].exp() / batch as f64;
                value -= o.scale * w * unclipped / batch as f64;
            }
        }
    }
    let total_scale: f64 = terms.objectives.iter().map(|o| o.scale).sum();
    let fraction = |clipped: f64| {
        if total_w > 0.0 && total_scale > 0.0 {
            clipped / (total_w * total_scale)
        } else {
            0.0
        }
    };
    let stats = PpoStats {
        loss: value,
        clip_ratio: fraction(low_w + high_w),
        clip_low: fraction(low_w),
        clip_high: fraction(high_w),
        ratio_mean: if total_w > 0.0 {
            ratio_w / total_w
        } else {
            1.0
        },
        weight: total_w,
    };
    Ok((coeff, stats))
}

/// The clipped surrogate loss `−J` for log-ratios `delta [B, K]` (taped). The returned tensor has the
/// loss's gradient; its value omits the constant clipped terms, which [`PpoStats::loss`] includes.
pub fn ppo_clip<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    delta: Tensor<(usize, usize), E, D, T>,
    terms: &PpoTerms<'_>,
) -> Result<(Tensor<Rank0, E, D, T>, PpoStats)> {
    let (b, k) = *delta.shape();
    let delta_host = to_f64s(&delta.retaped::<NoneTape>().as_vec());
    let (coeff, stats) = ppo_coefficients(&delta_host, b, terms)?;
    let dev = delta.device().clone();
    let coeff = upload_f64s::<E, _, _>(&dev, &coeff, (b, k), "ppo_clip (coefficients)")?;
    Ok(((delta.exp() * coeff).sum::<Rank0, _>(), stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Grads, Init, ParamStore};

    fn grad_of(delta: &[f64], terms: &PpoTerms<'_>) -> (Vec<f64>, PpoStats) {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 0);
        let id = store.add("delta", &[delta.len()], Init::Zeros).unwrap();
        store.set_values(id, delta.to_vec()).unwrap();
        let b = terms.objectives[0].advantage.len();
        let x = store
            .vector(id)
            .put_tape(OwnedTape::default())
            .reshape_like(&(b, delta.len() / b));
        let (loss, stats) = ppo_clip(x, terms).unwrap();
        (
            Grads::collect(&store, &mut loss.backward())
                .unwrap()
                .flat_f64(),
            stats,
        )
    }

    #[test]
    fn at_the_old_policy_ratios_are_one_and_the_gradient_is_reinforce() {
        let (w, c, a) = ([0.2, 0.3, 0.5, 1.0], [0.0; 4], [2.0, -1.0]);
        let o = PpoObjective::single(&a, Some(0.2));
        let terms = PpoTerms {
            weight: &w,
            log_offset: &c,
            objectives: &o,
        };
        let (g, stats) = grad_of(&[0.0; 4], &terms);
        assert_eq!(stats.ratio_mean, 1.0);
        assert_eq!(stats.clip_ratio, 0.0);
        // ∂(−J)/∂Δ_bk = −w A ρ / B with ρ = 1.
        for (i, gi) in g.iter().enumerate() {
            assert!((gi + w[i] * a[i / 2] / 2.0).abs() < 1e-15);
        }
    }

    #[test]
    fn clipped_terms_carry_zero_gradient() {
        // Positive advantage, ρ = e^{0.5} > 1.2: clipped, constant. Negative advantage, ρ = e^{−0.5} < 0.8:
        // clipped too. Positive advantage with ρ < 1 − ε is *not* clipped (min keeps ρA).
        let (w, c, a) = ([1.0, 1.0, 1.0], [0.0; 3], [1.0, -1.0, 1.0]);
        let o = PpoObjective::single(&a, Some(0.2));
        let terms = PpoTerms {
            weight: &w,
            log_offset: &c,
            objectives: &o,
        };
        let (g, stats) = grad_of(&[0.5, -0.5, -0.5], &terms);
        assert_eq!(g[0], 0.0);
        assert_eq!(g[1], 0.0);
        assert!((g[2] + (-0.5f64).exp() / 3.0).abs() < 1e-15);
        assert!((stats.clip_ratio - 2.0 / 3.0).abs() < 1e-15);
        // TRL's split: term 1 above (A > 0, ρ > 1 + ε), term 2 below (A < 0, ρ < 1 − ε).
        assert!((stats.clip_high - 1.0 / 3.0).abs() < 1e-15);
        assert!((stats.clip_low - 1.0 / 3.0).abs() < 1e-15);
        // The loss value is −(1/B) Σ min(...).
        let expect = -(1.2 + (-0.8) + (-0.5f64).exp()) / 3.0;
        assert!(
            (stats.loss - expect).abs() < 1e-12,
            "{} vs {expect}",
            stats.loss
        );
    }

    #[test]
    fn zero_advantages_give_zero_gradient_and_shapes_are_checked() {
        let (w, c, a) = ([1.0, 0.5], [0.1, -0.2], [0.0]);
        let o = PpoObjective::single(&a, Some(0.2));
        let terms = PpoTerms {
            weight: &w,
            log_offset: &c,
            objectives: &o,
        };
        let (g, _) = grad_of(&[0.3, -0.1], &terms);
        assert!(g.iter().all(|&x| x == 0.0));
        let o = PpoObjective::single(&a, Some(0.2));
        let bad = PpoTerms {
            weight: &w[..1],
            log_offset: &c,
            objectives: &o,
        };
        let dev = Cpu::default();
        let x: Tensor<(usize, usize), f64, Cpu> = dev.zeros_like(&(1, 2));
        assert!(matches!(
            ppo_clip(x, &bad),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
