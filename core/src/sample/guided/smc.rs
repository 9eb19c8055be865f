//! Sequential Monte Carlo along the reverse chain (Feynman–Kac), targeting the reward-tilted law
//!
//! ```text
//!   p*(x_0) = q(x_0)·exp(r(x_0)/β) / Z,        Z = Σ_x q(x)·exp(r(x)/β)
//! ```
//!
//! where `q` is the law of the model's reverse chain (`= p_ref` for exact scores and the first-hitting
//! chain; the grid chain adds its small discretisation bias).
//!
//! **Algorithm.** `N` particles start at `t = 1` and move with the model's own reverse transitions
//! `x_{k−1} → x_k` ([`SamplerKind`]). After step `k` each particle gets a log-potential `φ_k(x_k)` from a
//! [`Potential`]; the default [`RewardPotential`] is the tempered reward of the denoised estimate,
//! `φ_k = λ_k·r(x̂_0(x_k))/β`, with `0 = λ_0 ≤ λ_1 ≤ … ≤ λ_K = 1` ([`Tempering`]). The incremental
//! log-weight is `φ_k − φ_{k−1}`. When the effective sample size falls under `ess_threshold·N`, the
//! particles are resampled ([`Resampling`]) and their weights reset to equal.
//!
//! **Exactness.** The product of the increments telescopes to `exp(φ_K(x_K) − φ_0)`; at the clean end
//! the potential must be the *exact* terminal one, `φ_K = r(x_0)/β` (`λ_K = 1`, `x̂_0(x_0) = x_0`), and
//! `φ_0 = 0`. Then for any intermediate potentials the weighted particles target `p*` exactly and
//! `Ẑ = Π_{resampling epochs} mean_i(w_i)` is an unbiased estimate of `Z`; the intermediate potentials
//! (tempering, the denoised estimate) only shape *where* the particles are, i.e. the variance. Without
//! resampling (`ess_threshold = 0`) and with [`Tempering::Terminal`] this is plain importance sampling
//! of the model's samples with weights `exp(r/β)`.

use rand::Rng;

use super::denoise::{denoise, Denoised};
use super::Guide;
use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::reward::{evaluate, Reward};
use crate::sample::{next_states, SamplerKind};
use crate::sample::{Condition, Samples};
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};
use crate::weight::{LogWeights, Resampling};

/// What a [`Potential`] sees after step `k` of `K`.
#[derive(Debug, Clone, Copy)]
pub struct PotentialInput<'a> {
    /// Step just taken, `1..=K`.
    pub step: usize,
    /// Number of steps `K` of the chain.
    pub num_steps: usize,
    /// Tempering `λ_k ∈ [0, 1]` ([`Tempering::lambda`]); `1` at the clean end.
    pub lambda: f64,
    /// Whether the states are the clean end of the chain (`k = K`).
    pub clean: bool,
    /// Current states `x_k`, flat `[n · L]`.
    pub states: &'a [usize],
    /// Denoised estimates `x̂_0(x_k)`, flat `[n · m · L]` (the `m` of sequence `b` at rows
    /// `b·m..(b+1)·m`); empty at the clean end (read `states`) and where `λ_k = 0` (no guidance).
    pub denoised: &'a [usize],
    /// Estimates per state `m`.
    pub draws: usize,
    /// Sequence length `L`.
    pub seq_len: usize,
}

/// An intermediate log-potential `φ_k(x_k)` of the Feynman–Kac model (see the module docs). The value
/// at the clean end defines the target: `p* ∝ q(x_0)·exp(φ_K(x_0))`.
pub trait Potential {
    /// Name used in errors.
    fn name(&self) -> String;

    /// `φ_k` of every particle (`−∞` allowed: the particle is discarded; NaN and `+∞` are errors).
    fn log_potential(&self, input: &PotentialInput<'_>) -> Result<Vec<f64>>;
}

/// The tempered reward of the denoised estimate, `φ_k = λ_k · log((1/m) Σ_j exp(r(x̂_0^j)/β))`
/// (`= λ_k·r(x̂_0)/β` for one estimate): the soft value `V(x_k) = β·log E[exp(r(x_0)/β) | x_k]` with the
/// conditional expectation replaced by the denoiser's `m` draws, tempered by `λ_k`. At the clean end it
/// is exactly `r(x_0)/β`.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardPotential<R> {
    /// The reward `r`.
    pub reward: R,
    /// Temperature `β > 0` of the target `p_ref·exp(r/β)`.
    pub beta: f64,
}

impl<R: Reward> RewardPotential<R> {
    /// `r` at temperature `β`.
    pub fn new(reward: R, beta: f64) -> Self {
        Self { reward, beta }
    }

    /// Checks `β` finite and `> 0`.
    pub fn check(&self) -> Result<()> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(Error::invalid("beta", self.beta, "must be finite and > 0"));
        }
        Ok(())
    }
}

impl<R: Reward> Potential for RewardPotential<R> {
    fn name(&self) -> String {
        format!("{}/{}", self.reward.name(), self.beta)
    }

    fn log_potential(&self, input: &PotentialInput<'_>) -> Result<Vec<f64>> {
        self.check()?;
        let l = input.seq_len;
        let m = input.draws.max(1);
        if input.lambda == 0.0 {
            // No reward call where the potential is flat.
            return Ok(vec![0.0; input.states.len() / l]);
        }
        let rewards = if input.clean {
            let batch: Vec<&[usize]> = input.states.chunks(l).collect();
            evaluate(&self.reward, &batch)?
        } else {
            let batch: Vec<&[usize]> = input.denoised.chunks(l).collect();
            let values = evaluate(&self.reward, &batch)?;
            values
                .chunks(m)
                .map(|v| {
                    let scaled: Vec<f64> = v.iter().map(|r| r / self.beta).collect();
                    self.beta * (crate::weight::log_sum_exp(&scaled) - (m as f64).ln())
                })
                .collect()
        };
        Ok(rewards
            .into_iter()
            .map(|r| input.lambda * r / self.beta)
            .collect())
    }
}

/// The tempering `λ_k` of the intermediate potentials, `k = 0..=K`, with `λ_0 = 0` and `λ_K = 1`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Tempering {
    /// `λ_k = k/K`.
    Linear,
    /// `λ_k = (k/K)^p`, `p > 0` (`p > 1`: later, gentler early guidance).
    Power(f64),
    /// `λ_k = 0` for `k < K`: no intermediate guidance (importance sampling at the end only).
    Terminal,
}

impl Tempering {
    /// `λ_k` for step `k` of `K` (`1` at `k ≥ K`).
    pub fn lambda(&self, k: usize, num_steps: usize) -> f64 {
        if k >= num_steps {
            return 1.0;
        }
        let x = k as f64 / num_steps as f64;
        match self {
            Tempering::Linear => x,
            Tempering::Power(p) => x.powf(*p),
            Tempering::Terminal => 0.0,
        }
    }

    /// Checks the exponent of [`Tempering::Power`].
    pub fn check(&self) -> Result<()> {
        if let Tempering::Power(p) = self {
            if !(*p > 0.0 && p.is_finite()) {
                return Err(Error::invalid(
                    "Tempering::Power",
                    p,
                    "must be finite and > 0",
                ));
            }
        }
        Ok(())
    }
}

/// Settings of [`smc`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SmcConfig {
    /// Number of particles `N ≥ 1`.
    pub particles: usize,
    /// The reverse chain the particles follow.
    pub chain: SamplerKind,
    /// Tempering of the intermediate potentials.
    pub tempering: Tempering,
    /// Resample when `ESS < ess_threshold · N`, in `[0, 1]` (`0`: never, `1`: at every step).
    pub ess_threshold: f64,
    /// Resampling scheme.
    pub resampling: Resampling,
    /// Denoised estimate fed to the potential.
    pub denoised: Denoised,
}

impl SmcConfig {
    /// `particles` particles on the first-hitting chain, linear tempering, systematic resampling when
    /// `ESS < N/2`, argmax denoised estimates.
    pub fn new(particles: usize) -> Self {
        Self {
            particles,
            chain: SamplerKind::default(),
            tempering: Tempering::Linear,
            ess_threshold: 0.5,
            resampling: Resampling::Systematic,
            denoised: Denoised::Argmax,
        }
    }

    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("particles", self.particles)?;
        self.chain.check()?;
        self.tempering.check()?;
        self.denoised.check()?;
        if !(0.0..=1.0).contains(&self.ess_threshold) {
            return Err(Error::invalid(
                "ess_threshold",
                self.ess_threshold,
                "must be in [0, 1]",
            ));
        }
        Ok(())
    }
}

/// Output of [`smc`]: weighted particles targeting `p*`.
#[derive(Debug, Clone, PartialEq)]
pub struct SmcOutput {
    /// Final particles (clean sequences), no trajectory.
    pub samples: Samples,
    /// Final log-weights `log w_i` (since the last resampling; normalise with
    /// [`LogWeights::normalized`]).
    pub log_weights: LogWeights,
    /// `log Ẑ`, the log of the unbiased estimate of `Z = E_q[exp(φ_K(x_0))]`
    /// (`= Σ_x p_ref(x)·exp(r(x)/β)` for [`RewardPotential`] on an exact chain).
    pub log_normalizer: f64,
    /// Terminal log-potential `φ_K(x_0)` of each particle (`r(x_0)/β` for [`RewardPotential`]).
    pub terminal: Vec<f64>,
    /// ESS after each step's reweighting, before any resampling.
    pub ess: Vec<f64>,
    /// Whether the particles were resampled after each step.
    pub resampled: Vec<bool>,
}

impl SmcOutput {
    /// Self-normalised weights `w̄_i`.
    pub fn weights(&self) -> Result<Vec<f64>> {
        self.log_weights.normalized()
    }

    /// `Σ_i w̄_i f(x_i)`: the self-normalised estimate of `E_{p*}[f]`.
    pub fn expectation(&self, f: impl Fn(&[usize]) -> f64) -> Result<f64> {
        Ok(self
            .weights()?
            .iter()
            .zip(self.samples.sequences())
            .map(|(w, x)| w * f(x))
            .sum())
    }

    /// `n` unweighted sequences by resampling the final particles, flat `[n · L]`.
    pub fn resample<R: Rng + ?Sized>(
        &self,
        n: usize,
        scheme: Resampling,
        rng: &mut R,
    ) -> Result<Vec<usize>> {
        let idx = scheme.resample(&self.weights()?, n, rng)?;
        Ok(idx
            .iter()
            .flat_map(|&i| self.samples.sequence(i).iter().copied())
            .collect())
    }
}

/// Runs SMC along the reverse chain of `policy` with the potential `guide.target` and the settings
/// `guide.config` (see the module docs), for `guide.config.particles` sequences of length `seq_len`
/// under an optional shared `condition`.
///
/// Cost per step: one model call on the particles for the transition, one for the denoised estimates
/// (skipped where `λ_k = 0` and at the clean end), and `N·m` reward calls (none where `λ_k = 0`).
///
/// Errors: a bad config or input (typed, at entry); a NaN / `+∞` potential
/// ([`Error::NonFinite`], index = particle); every particle at zero weight ([`Error::InvalidParameter`]).
pub fn smc<M, G, S, P, R>(
    policy: &Policy<'_, M>,
    diffusion: &Diffusion<G, S>,
    guide: &Guide<'_, P, SmcConfig>,
    seq_len: usize,
    condition: Option<&Condition>,
    rng: &mut R,
) -> Result<SmcOutput>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    P: Potential + ?Sized,
    R: Rng,
{
    let graph = &diffusion.graph;
    let (potential, cfg) = (guide.target, &guide.config);
    cfg.check()?;
    let n = cfg.particles;
    let fixed = super::check_entry(policy.model, diffusion, &cfg.chain, (n, seq_len), condition)?;
    let steps = cfg.chain.num_steps(&fixed, seq_len);
    let max_batch = cfg.chain.config().max_batch;
    let mut particles = cfg.chain.start(diffusion, &fixed, seq_len, rng);
    let mut log_w = LogWeights::uniform(n);
    let mut phi_prev = vec![0.0; n];
    let mut log_z = 0.0;
    let (mut ess, mut resampled) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for k in 1..=steps {
        let step = cfg.chain.propose(k - 1, &mut particles, diffusion, rng);
        let mut next = next_states(policy, graph, &step, 1, max_batch, rng)?;
        particles.advance(&step, next.remove(0));
        let clean = k == steps;
        let lambda = cfg.tempering.lambda(k, steps);
        let denoised = if clean || lambda == 0.0 {
            Vec::new()
        } else {
            denoise(policy, graph, &particles, cfg.denoised, max_batch, rng)?
        };
        let phi = potential.log_potential(&PotentialInput {
            step: k,
            num_steps: steps,
            lambda,
            clean,
            states: &particles.tokens,
            denoised: &denoised,
            draws: cfg.denoised.count(),
            seq_len,
        })?;
        check_potential(&phi, n)?;
        for i in 0..n {
            // A particle already at zero weight stays there (−∞ − −∞ would be NaN).
            if log_w.0[i] > f64::NEG_INFINITY {
                log_w.0[i] += phi[i] - phi_prev[i];
            }
        }
        phi_prev = phi;
        let current = log_w.ess()?;
        ess.push(current);
        let resample = !clean && current < cfg.ess_threshold * n as f64;
        if resample {
            log_z += log_w.log_mean()?;
            let ancestors = cfg.resampling.resample(&log_w.normalized()?, n, rng)?;
            particles.select(&ancestors);
            phi_prev = ancestors.iter().map(|&a| phi_prev[a]).collect();
            log_w = LogWeights::uniform(n);
        }
        resampled.push(resample);
    }
    log_z += log_w.log_mean()?;
    Ok(SmcOutput {
        samples: Samples {
            tokens: particles.tokens,
            batch: n,
            seq_len,
            trajectory: None,
        },
        log_weights: log_w,
        log_normalizer: log_z,
        terminal: phi_prev,
        ess,
        resampled,
    })
}

/// Errors on a wrong count, a NaN or a `+∞` log-potential.
pub(crate) fn check_potential(phi: &[f64], n: usize) -> Result<()> {
    if phi.len() != n {
        return Err(Error::ShapeMismatch {
            op: "Potential::log_potential (one value per particle)",
            expected: vec![n],
            got: vec![phi.len()],
        });
    }
    if let Some(i) = phi.iter().position(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(Error::NonFinite {
            what: "log-potential (index = particle)",
            index: i,
            value: phi[i],
        });
    }
    Ok(())
}
