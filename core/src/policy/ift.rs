//! The IFT-corrected policy gradient at the fixed point of a locally balanced chain
//! (docs/gradient_flow.md §2–3).
//!
//! For `J(θ) = E_{π_θ}[r] − β·KL(π_θ‖p_ref)` and `ρ(x) = r(x) − β·log(π_θ(x)/p_ref(x))`,
//! `∇J = Cov_{x∼π_θ}(ρ(x), ∇_θ φ_θ(x))`, `φ_θ` the log-potential (known only up to a constant). Over
//! particles `x_1..x_B` the estimator is `ĝ = (1/(B−1)) Σ_b (ρ̂_b − mean ρ̂)·ĥ_b`, where `ĥ_b` stands for
//! `∇ log π_θ(x_b)` up to a constant shared by all particles (which the centred weights cancel):
//! [`StateGradient::Energy`] (`∇φ_θ(x_b)` from an energy head), [`StateGradient::Conditional`]
//! (`−Σ_{l,v} c_l(v|x_b) ∇ log s_θ(x_b)_{l,v}`) or any SEPO [`NeighbourWeights`].

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{to_f64s, upload, upload_f64s};
use crate::policy::{clean_log_scores, neighbour_log_weights, CleanScores, NeighbourWeights};
use crate::score::{EnergyModel, Policy};
use crate::sequences::Sequences;

/// What stands for `∇ log π_θ(x_b)` in the estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StateGradient {
    /// `∇_θ φ_θ(x_b)` from a model with a scalar energy head ([`EnergyModel`]): exact.
    Energy,
    /// `−Σ_{l,v} c_l(v|x_b) ∇ log s_θ(x_b)_{l,v}` (the pseudo-likelihood gradient; exact on one position).
    Conditional,
    /// `−Σ_{l,v} π̂(x^{l←v}) ∇ log s_θ(x_b)_{l,v}` with SEPO's neighbour weights.
    Neighbour(NeighbourWeights),
}

/// The centred weights `w_b = (ρ̂_b − mean ρ̂)/(B − 1)`, so that `ĝ = Σ_b w_b ĥ_b` is the unbiased sample
/// covariance. Needs `B ≥ 2` finite values. Where `Σ ρ̂` overflows f64 the mean is taken as
/// `Σ (ρ̂_b/B)`, and where `ρ̂_b − mean` overflows the weight is `ρ̂_b/(B − 1) − mean/(B − 1)`: since
/// `|w_b| ≤ (max ρ̂ − min ρ̂)/B`, every weight of finite `ρ̂` is then finite (a non-finite one would
/// still be an [`Error::NonFinite`], never an `Ok`).
pub fn ift_weights(rho: &[f64]) -> Result<Vec<f64>> {
    if rho.len() < 2 {
        return Err(Error::invalid(
            "particles",
            rho.len(),
            "the IFT estimator needs at least 2",
        ));
    }
    for (i, &r) in rho.iter().enumerate() {
        crate::error::ensure_finite("rho", i, r)?;
    }
    let b = rho.len() as f64;
    let mut mean = rho.iter().sum::<f64>() / b;
    if !mean.is_finite() {
        // Σ ρ̂ overflowed: Σ (ρ̂/B) is finite for finite ρ̂.
        mean = rho.iter().map(|r| r / b).sum::<f64>();
    }
    let scale = 1.0 / (rho.len() - 1) as f64;
    let w: Vec<f64> = rho
        .iter()
        .map(|r| {
            let w = (r - mean) * scale;
            if w.is_finite() {
                w
            } else {
                // ρ̂ − mean overflowed: scaled first, the weight may still be finite (B > 2).
                r * scale - mean * scale
            }
        })
        .collect();
    match w.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::NonFinite {
            what: "IFT weight (spread of ρ̂ overflows f64; rescale the reward or β)",
            index: i,
            value: w[i],
        }),
        None => Ok(w),
    }
}

/// Host form of the estimator, `ĝ = Σ_b w_b ĥ_b` with `ĥ` flat `[B, P]`.
pub fn ift_estimate(rho: &[f64], state_gradients: &[f64]) -> Result<Vec<f64>> {
    let w = ift_weights(rho)?;
    let p = state_gradients.len() / w.len();
    if p * w.len() != state_gradients.len() || p == 0 {
        return Err(Error::ShapeMismatch {
            op: "ift_estimate",
            expected: vec![w.len(), p.max(1)],
            got: vec![state_gradients.len()],
        });
    }
    let mut g = vec![0.0; p];
    for (wb, hb) in w.iter().zip(state_gradients.chunks(p)) {
        for (gi, h) in g.iter_mut().zip(hb) {
            *gi += wb * h;
        }
    }
    match g.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::NonFinite {
            what: "IFT estimate (non-finite or overflowing state gradient)",
            index: i,
            value: g[i],
        }),
        None => Ok(g),
    }
}

/// The estimator's configuration: the state gradient, the time `t₀` of the clean-end scores
/// (as `σ̄(t₀)`), and how clean scores are read.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ift {
    /// What stands for `∇ log π_θ(x_b)`.
    pub state_gradient: StateGradient,
    /// Total noise `σ̄(t₀)` at which clean-end scores are read.
    pub sigma0: f64,
    /// How clean-end scores are read under the absorbing graph.
    pub clean: CleanScores,
}

impl Default for Ift {
    /// `Conditional` state gradients from `Masked` clean scores at `σ̄ = 1e-5`.
    fn default() -> Self {
        Self {
            state_gradient: StateGradient::Conditional,
            sigma0: 1e-5,
            clean: CleanScores::Masked,
        }
    }
}

/// The weights [`Ift::surrogate`] combines `h_b` with: `w_b` per particle and, to re-evaluate the same
/// `h_b` at new parameters, the neighbour weights `ω` a previous call returned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurrogateWeights<'a> {
    /// `w_b`, one per particle ([`ift_weights`]).
    pub particle: &'a [f64],
    /// Frozen `ω [B·L·N]` (`None`: computed from the policy).
    pub frozen: Option<&'a [f64]>,
}

/// The surrogate built by [`Ift::surrogate`].
#[derive(Debug)]
pub struct Surrogate<E: Dtype, D: Device<E>, T> {
    /// `−Σ_b w_b h_b(θ)`, whose gradient is `−ĝ`.
    pub loss: Tensor<Rank0, E, D, T>,
    /// `h_b(θ)` per particle (`φ_θ(x_b)`, or `−Σ_{l,v} ω_{b,l,v} log s_θ(x_b)_{l,v}`).
    pub values: Vec<f64>,
    /// The frozen weights `ω [B·L·N]` of the score-based state gradients (empty for `Energy`).
    pub coefficients: Vec<f64>,
    /// Forwards on one sequence that it cost.
    pub evaluations: u64,
}

impl Ift {
    /// The surrogate `h_b(θ)` with `∇h_b = ĥ_b` of the particles `x`, weighted by `weights.particle`
    /// (from [`ift_weights`]) into a loss, under `policy` and on `tape`. `weights.frozen` freezes the
    /// neighbour weights `ω` (pass the ones a previous call returned to evaluate the same `h_b` at new
    /// parameters; `None` computes them from the policy). `rng` draws the `MaskedSubset` positions and
    /// SNIS samples.
    pub fn surrogate<M, G, T, R>(
        &self,
        policy: &Policy<'_, M>,
        graph: &G,
        x: Sequences<'_>,
        weights: SurrogateWeights<'_>,
        tape: T,
        rng: &mut R,
    ) -> Result<Surrogate<M::Elem, M::Device, T>>
    where
        M: EnergyModel,
        G: Graph,
        T: Tape<M::Elem, M::Device>,
        R: Rng,
    {
        let (model, params) = (policy.model, policy.params);
        let SurrogateWeights {
            particle: weights,
            frozen: coefficients,
        } = weights;
        let seqs = x;
        let (x, batch, l) = (x.tokens(), x.batch(), x.seq_len());
        crate::check::tokens(x, batch, l, graph.num_tokens())?;
        if weights.len() != batch {
            return Err(Error::ShapeMismatch {
                op: "Ift::surrogate (weights)",
                expected: vec![batch],
                got: vec![weights.len()],
            });
        }
        let dev = params.device().clone();
        let n = graph.num_states();
        let kind = match self.state_gradient {
            StateGradient::Energy => {
                let ids = upload(&dev, x.to_vec(), (batch, l), "Ift::surrogate (tokens)")?;
                let phi = model
                    .log_potential_with(params, &ids, tape)?
                    .ok_or_else(|| {
                        Error::invalid(
                            "state_gradient",
                            "Energy",
                            "the model has no energy head (EnergyModel::log_potential_with)",
                        )
                    })?;
                let values = to_f64s(&phi.retaped::<NoneTape>().as_vec());
                let w = upload_f64s::<M::Elem, _, _>(
                    &dev,
                    weights,
                    (batch,),
                    "Ift::surrogate (weights)",
                )?;
                return Ok(Surrogate {
                    loss: (phi * w).sum::<Rank0, _>().negate(),
                    values,
                    coefficients: Vec::new(),
                    evaluations: batch as u64,
                });
            }
            StateGradient::Conditional => NeighbourWeights::Conditional,
            StateGradient::Neighbour(k) => k,
        };
        let (ls, position_weight) =
            clean_log_scores(policy, graph, seqs, self.sigma0, self.clean, tape, rng)?;
        let ls_host = to_f64s(&ls.retaped::<NoneTape>().as_vec());
        let mut evaluations = match (graph.mask(), self.clean) {
            (None, _) | (_, CleanScores::Unmasked) => batch,
            (Some(_), CleanScores::Masked) => batch * l,
            (Some(_), CleanScores::MaskedSubset { positions }) => batch * positions,
        } as u64;
        let omega = match coefficients {
            Some(c) if c.len() == batch * l * n => c.to_vec(),
            Some(c) => {
                return Err(Error::ShapeMismatch {
                    op: "Ift::surrogate (coefficients)",
                    expected: vec![batch, l, n],
                    got: vec![c.len()],
                })
            }
            None => {
                let lw =
                    neighbour_log_weights(kind, policy, graph, seqs, self.sigma0, &ls_host, rng)?;
                if let NeighbourWeights::Snis { draws } = kind {
                    evaluations += crate::policy::neighbour::snis_forwards(graph, batch, l, draws);
                }
                lw.iter()
                    .enumerate()
                    .map(|(i, w)| {
                        if w.is_finite() {
                            w.exp() * position_weight[i / n]
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        };
        let values: Vec<f64> = (0..batch)
            .map(|b| {
                -(b * l * n..(b + 1) * l * n)
                    .map(|i| {
                        if omega[i] != 0.0 {
                            omega[i] * ls_host[i]
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>()
            })
            .collect();
        // −Σ_b w_b h_b = Σ_{b,l,v} w_b ω_{b,l,v} log s_{b,l,v}.
        let coef: Vec<f64> = omega
            .iter()
            .enumerate()
            .map(|(i, o)| weights[i / (l * n)] * o)
            .collect();
        let coef = upload_f64s::<M::Elem, _, _>(
            &dev,
            &coef,
            (batch, l, n),
            "Ift::surrogate (coefficients)",
        )?;
        Ok(Surrogate {
            loss: (ls * coef).sum::<Rank0, _>(),
            values,
            coefficients: omega,
            evaluations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_centred_and_scaled_by_b_minus_one() {
        let w = ift_weights(&[1.0, 2.0, 6.0]).unwrap();
        assert_eq!(w, vec![-1.0, -0.5, 1.5]);
        assert!(ift_weights(&[1.0]).is_err());
        assert!(ift_weights(&[1.0, f64::NAN]).is_err());
    }

    /// Near f64's limits: `Σ ρ̂` overflows but the mean and the weights do not (closed form), and a
    /// difference that overflows before the division by `B − 1` is recovered.
    #[test]
    fn weights_near_f64_limits_are_exact() {
        let w = ift_weights(&[1e308, 1.5e308, 1.7e308]).unwrap();
        for (got, want) in w.iter().zip([-0.2e308, 0.05e308, 0.15e308]) {
            assert!((got - want).abs() <= 1e-12 * want.abs(), "{w:?}");
        }
        // mean = 1.7e308/3, ρ̂_0 − mean = −2.27e308 overflows; divided by 2 it is −1.13e308.
        let w = ift_weights(&[-1.7e308, 1.7e308, 1.7e308]).unwrap();
        assert!(
            (w[0] - (-1.7e308 / 2.0 - 1.7e308 / 6.0)).abs() <= 1e-12 * 1.2e308,
            "{w:?}"
        );
        let w = ift_weights(&[-1.7e308, 1.7e308]).unwrap();
        assert_eq!(w, vec![-1.7e308, 1.7e308]);
        assert!(matches!(
            ift_estimate(&[0.0, 2.0], &[1.0, f64::NAN, 0.0, 1.0]),
            Err(Error::NonFinite { index: 1, .. })
        ));
    }

    proptest::proptest! {
        /// Any finite ρ̂, ordinary or near f64's limits: finite centred weights.
        #[test]
        fn weights_of_finite_rho_are_finite_and_centred(
            rho in proptest::collection::vec(
                proptest::prop_oneof![-1e3f64..1e3, -f64::MAX..f64::MAX], 2..9)
        ) {
            match ift_weights(&rho) {
                Ok(w) => {
                    proptest::prop_assert!(w.iter().all(|x| x.is_finite()), "{:?}", w);
                    // Centred: Σ w = 0 up to the rounding of the mean and the sum, a few ulps of
                    // max |ρ̂| each (summed in units of max |ρ̂| so that nothing overflows).
                    let big = rho.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(f64::MIN_POSITIVE);
                    let sum = w.iter().map(|x| x / big).sum::<f64>();
                    proptest::prop_assert!(sum.abs() < 1e-12 * w.len() as f64, "{:?}", w);
                }
                Err(e) => proptest::prop_assert!(false, "{}", e),
            }
        }
    }

    #[test]
    fn host_estimate_is_the_sample_covariance() {
        // ρ = (0, 2), ĥ = ((1, 0), (0, 1)): ĝ = (−1, 1).
        let g = ift_estimate(&[0.0, 2.0], &[1.0, 0.0, 0.0, 1.0]).unwrap();
        assert_eq!(g, vec![-1.0, 1.0]);
        assert!(ift_estimate(&[0.0, 2.0], &[1.0, 0.0, 0.0]).is_err());
    }
}
