//! Value-guided decoding without training (SVDD: Li et al., *Derivative-Free Guidance in Continuous and
//! Discrete Diffusion Models with Soft Value-Based Decoding*, 2024).
//!
//! At every reverse step each sequence draws `K` candidate next states `x_k^{(1..K)}` from the model's
//! own transition and keeps one with probability
//!
//! ```text
//!   P(keep c) = exp(v(x_k^{(c)})/α) / Σ_{c'} exp(v(x_k^{(c')})/α),
//!   v(x_k) = α·log((1/m) Σ_j exp(r(x̂_0^j(x_k))/α))       (= r(x̂_0(x_k)) for one estimate)
//! ```
//!
//! with `x̂_0^j` the denoised estimates of [`Denoised`] (see [`super::chain`]); at the clean end
//! `v = r(x_0)`. `v` stands in for the soft value `α·log E[exp(r(x_0)/α) | x_k]`: with the exact soft
//! value and `K → ∞` every step would sample the tilted transition and the output would follow
//! `p_ref·exp(r/α)`; with the denoised estimate and finite `K` it is an approximation, biased in general
//! (use [`smc`](super::smc::smc) for an exact target). `α → ∞` (`f64::INFINITY` is accepted) keeps a
//! uniformly chosen candidate, i.e. plain sampling, and calls no reward; `α → 0` keeps the best
//! candidate (greedy).

use rand::Rng;

use super::denoise::{denoise, Denoised};
use super::Guide;
use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::reward::{evaluate, Reward};
use crate::sample::{categorical, Condition, Samples};
use crate::sample::{next_states, Particles, SamplerKind};
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};
use crate::weight::log_sum_exp;

/// Settings of [`value_guided`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuidanceConfig {
    /// Candidates per sequence and step, `K ≥ 1` (`K = 1`: plain sampling).
    pub candidates: usize,
    /// Temperature `α > 0` of the selection; `f64::INFINITY` is plain sampling.
    pub alpha: f64,
    /// The reverse chain.
    pub chain: SamplerKind,
    /// Denoised estimate behind the value `v`.
    pub denoised: Denoised,
}

impl GuidanceConfig {
    /// `K` candidates at temperature `α`, first-hitting chain, argmax denoised estimates.
    pub fn new(candidates: usize, alpha: f64) -> Self {
        Self {
            candidates,
            alpha,
            chain: SamplerKind::default(),
            denoised: Denoised::Argmax,
        }
    }

    /// Checks `K ≥ 1`, `α > 0` (not NaN), the chain and the estimate.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("candidates", self.candidates)?;
        if self.alpha.is_nan() || self.alpha <= 0.0 {
            return Err(Error::invalid(
                "alpha",
                self.alpha,
                "must be > 0 (f64::INFINITY: plain sampling)",
            ));
        }
        self.chain.check()?;
        self.denoised.check()
    }
}

/// Output of [`value_guided`].
#[derive(Debug, Clone, PartialEq)]
pub struct Guided {
    /// The decoded sequences.
    pub samples: Samples,
    /// `r(x_0)` of each sequence.
    pub rewards: Vec<f64>,
    /// Number of reward evaluations spent (denoised estimates and final candidates).
    pub reward_calls: usize,
}

/// Decodes `batch` sequences of length `seq_len` with value-guided selection among `K` candidates per
/// step toward the reward `guide.target`, with the settings `guide.config` (see the module docs), under
/// an optional shared `condition`.
///
/// Cost per step: one model call on the `batch` states (the candidates share their transition
/// probabilities), one on the `batch·K` candidates for their denoised estimates (not at the clean end),
/// `batch·K·m` reward calls (none for `α = ∞`).
pub fn value_guided<M, G, S, W, R>(
    policy: &Policy<'_, M>,
    diffusion: &Diffusion<G, S>,
    guide: &Guide<'_, W, GuidanceConfig>,
    (batch, seq_len): (usize, usize),
    condition: Option<&Condition>,
    rng: &mut R,
) -> Result<Guided>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    W: Reward + ?Sized,
    R: Rng,
{
    let graph = &diffusion.graph;
    let (reward, cfg) = (guide.target, &guide.config);
    cfg.check()?;
    let shape = (batch, seq_len);
    let fixed = super::check_entry(policy.model, diffusion, &cfg.chain, shape, condition)?;
    let steps = cfg.chain.num_steps(&fixed, seq_len);
    let max_batch = cfg.chain.config().max_batch;
    let (k_cands, l, m) = (cfg.candidates, seq_len, cfg.denoised.count());
    let guided = cfg.alpha.is_finite() && k_cands > 1;
    let mut particles = cfg.chain.start(diffusion, &fixed, seq_len, rng);
    let mut reward_calls = 0;
    let mut last_values = None;
    for k in 1..=steps {
        let step = cfg.chain.propose(k - 1, &mut particles, diffusion, rng);
        let candidates = next_states(policy, graph, &step, k_cands, max_batch, rng)?;
        let clean = k == steps;
        // values[b·K + c]: v of candidate c of sequence b.
        let values = if guided {
            // [batch·K·L] candidates, sequence-major.
            let flat: Vec<usize> = (0..batch)
                .flat_map(|b| {
                    candidates
                        .iter()
                        .flat_map(move |c| c[b * l..(b + 1) * l].iter().copied())
                })
                .collect();
            let (to_score, per) = if clean {
                (flat, 1)
            } else {
                let repeat = |v: &[f64]| -> Vec<f64> {
                    v.iter()
                        .flat_map(|&x| std::iter::repeat_n(x, k_cands))
                        .collect()
                };
                // Candidate c of sequence b shares b's fixed positions.
                let fixed_k: Vec<Option<usize>> = (0..batch)
                    .flat_map(|b| {
                        let row = &fixed[b * l..(b + 1) * l];
                        (0..k_cands).flat_map(move |_| row.iter().copied())
                    })
                    .collect();
                let times = (repeat(&step.t_next), repeat(&step.sigma_bar_next));
                let states = Particles::at(flat, times, fixed_k, l);
                let estimates = denoise(policy, graph, &states, cfg.denoised, max_batch, rng)?;
                (estimates, m)
            };
            let rows: Vec<&[usize]> = to_score.chunks(l).collect();
            reward_calls += rows.len();
            let r = evaluate(reward, &rows)?;
            Some(soft_values(&r, per, cfg.alpha))
        } else {
            None
        };
        let choice: Vec<usize> = match &values {
            Some(v) => v
                .chunks(k_cands)
                .map(|vb| {
                    let logits: Vec<f64> = vb.iter().map(|x| x / cfg.alpha).collect();
                    categorical::draw_log(&logits, rng)
                })
                .collect(),
            None => (0..batch).map(|_| rng.gen_range(0..k_cands)).collect(),
        };
        let after: Vec<usize> = (0..batch)
            .flat_map(|b| candidates[choice[b]][b * l..(b + 1) * l].iter().copied())
            .collect();
        if clean {
            last_values = values.map(|v| (0..batch).map(|b| v[b * k_cands + choice[b]]).collect());
        }
        particles.advance(&step, after);
    }
    let rewards = match last_values {
        Some(v) => v,
        None => {
            let rows: Vec<&[usize]> = particles.tokens.chunks(l).collect();
            reward_calls += rows.len();
            evaluate(reward, &rows)?
        }
    };
    Ok(Guided {
        samples: Samples {
            tokens: particles.tokens,
            batch,
            seq_len,
            trajectory: None,
        },
        rewards,
        reward_calls,
    })
}

/// `α·log((1/m) Σ_j exp(r_j/α))` over consecutive groups of `m` rewards (the plain mean for `α = ∞`).
fn soft_values(rewards: &[f64], m: usize, alpha: f64) -> Vec<f64> {
    rewards
        .chunks(m)
        .map(|g| {
            if !alpha.is_finite() || m == 1 {
                return g.iter().sum::<f64>() / g.len() as f64;
            }
            let scaled: Vec<f64> = g.iter().map(|r| r / alpha).collect();
            alpha * (log_sum_exp(&scaled) - (m as f64).ln())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_value_interpolates_between_mean_and_max() {
        let r = [0.0, 1.0, 3.0];
        let mean = soft_values(&r, 3, f64::INFINITY)[0];
        let warm = soft_values(&r, 3, 1.0)[0];
        let cold = soft_values(&r, 3, 1e-3)[0];
        assert!((mean - 4.0 / 3.0).abs() < 1e-12);
        assert!(mean < warm && warm < 3.0, "{warm}");
        assert!((cold - 3.0).abs() < 2e-3, "{cold}");
        assert_eq!(soft_values(&r, 1, 0.5), r.to_vec());
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(GuidanceConfig::new(0, 1.0).check().is_err());
        assert!(GuidanceConfig::new(4, 0.0).check().is_err());
        assert!(GuidanceConfig::new(4, f64::NAN).check().is_err());
        assert!(GuidanceConfig::new(4, f64::INFINITY).check().is_ok());
        let mut c = GuidanceConfig::new(4, 1.0);
        c.denoised = Denoised::Draws(0);
        assert!(c.check().is_err());
    }
}
