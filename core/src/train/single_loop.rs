//! Single-loop gradient-flow SEPO (docs/gradient_flow.md §4): a persistent population of particles
//! moved by the model's own locally balanced chain, and one IFT policy-gradient step per chain step.
//!
//! Start: `B` particles from the pretrained sampler (given by the caller). Each update: advance every
//! particle `k` uniformised steps under `Q_θ` (`B·k` no-grad forwards), score the rewards of the
//! particles that moved (cached otherwise), form `ĝ = Σ_b w_b ĥ_b` with `w_b = (ρ̂_b − mean ρ̂)/(B − 1)`
//! and `ρ̂_b = r_b − β·ℓ̂_b`, clip, AdamW step. `ℓ̂_b ≈ log(π_θ/p_ref)(x_b)` up to a constant is exact for
//! an energy head ([`RatioMode::Exact`]), summed along a canonical Hamming path from an anchor shared
//! by all particles ([`RatioMode::Path`], [`RatioMode::PathSubset`]: a function of the state, exact up
//! to a shared constant for consistent scores; [`crate::flow::path`]), or tracked along the particle
//! ([`RatioMode::Tracked`]: 0 at the start, since fine-tuning starts at the reference;
//! `+ log s_θ(x)_y − log s_ref(x)_y` per jump; `+ h_b(θ_new) − h_b(θ)` per update, the first-order
//! `Δθ·ĥ_b` with the weights of `h_b` frozen; with `Conditional` ĥ that is a change of pseudo-likelihood,
//! so two particles in the same state can carry different values: docs/gradient_flow.md §3).
//!
//! Saving and resuming the whole state, and the [`Trainer`](crate::train::Trainer) impl that lets
//! [`fit`](crate::train::fit) checkpoint it: `single_loop/persist.rs`.

use std::time::Instant;

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::flow::{
    consensus, path_log_potential, step as chain_step, LocallyBalanced, ModelScores, PositionScores,
};
use crate::graph::Graph;
use crate::nn::{upload, AdamW, AdamWState, Grads, LrSchedule, Optimizer, ParamStore};
use crate::policy::{ift_weights, EnergyModel, Ift, SurrogateWeights};
use crate::reward::{evaluate_flat, Reward};
use crate::score::{Params, Policy};
use crate::sequences::Sequences;
use crate::train::step_rng;

mod persist;
pub use persist::SINGLE_LOOP_FILE;

/// How `log(π_θ/p_ref)(x_b)` is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RatioMode {
    /// `φ_θ(x_b) − φ_ref(x_b)` from the energy head (one reference forward per particle).
    Exact,
    /// Tracked along each particle (see the module documentation). Depends on the particle's history
    /// unless ĥ is `Energy` (docs/gradient_flow.md §3).
    Tracked,
    /// `ℓ_θ(x_b) − ℓ_ref(x_b)` with `ℓ(x) = Σ_k log s(z_{k−1})_{l_k, x_{l_k}}` along the canonical
    /// Hamming path from the anchor `a` (positions changed in increasing order,
    /// [`crate::flow::path`]). A function of the state; `φ_θ(x) − φ_ref(x) − (φ_θ(a) − φ_ref(a))` for
    /// consistent scores. Cost per update: `d_b` forwards under θ per particle (`d_b` its Hamming
    /// distance to `a`), and `d_b` under the reference for each particle that moved (cached otherwise).
    Path,
    /// [`RatioMode::Path`] read at `positions` random positions shared by all particles at each update
    /// and scaled by `L/positions`: unbiased for the path value, still a function of the state given the
    /// draw. θ and the reference read the same steps (their difference is what enters ρ̂), about
    /// `2·d_b·positions/L` forwards per particle and update.
    PathSubset {
        /// Positions `m` read per update (`1 ≤ m ≤ L`).
        positions: usize,
    },
}

/// Hyper-parameters of the single loop.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SingleLoopConfig {
    /// Rates of the chain (must be uniformisable: `HeatBath`, `Barker` or `Metropolis`).
    pub rates: LocallyBalanced,
    /// Chain steps per update `k`. Each step resamples one position of each particle, so on long
    /// sequences the particles lag behind the model unless `k` grows with the length (at L = 200 and
    /// k = 1 the particles' mean reward drifted down on one of three seeds while the model trained:
    /// docs/PERFORMANCE.md).
    pub steps_per_update: usize,
    /// The IFT estimator (its `clean` mode also reads the chain's scores).
    pub estimator: Ift,
    /// How `log(π_θ/p_ref)` enters `ρ̂`.
    pub ratio: RatioMode,
    /// KL coefficient β (0 = off); `kl`, as in [`crate::train::FinetuneConfig::kl`] and the DSL. Files
    /// written when it was called `beta` still load.
    #[serde(alias = "beta")]
    pub kl: f64,
    /// AdamW (its `lr` is the initial rate).
    pub optimizer: AdamW,
    /// Learning rate over updates `i = 0, 1, …` from the peak `optimizer.lr`.
    pub lr_schedule: LrSchedule,
    /// Global gradient-norm clip.
    pub grad_clip: Option<f64>,
    /// Largest forward batch of the chain.
    pub max_batch: usize,
    /// Run seed: update `i` draws from `step_rng(seed, i)`.
    pub seed: u64,
}

impl Default for SingleLoopConfig {
    /// Heat bath, `k = 1`, the default [`Ift`], tracked ratios, β = 0, AdamW lr 1e-3 decaying as
    /// `1/√(1 + i/100)`, clip 1.0.
    fn default() -> Self {
        Self {
            rates: LocallyBalanced::HeatBath,
            steps_per_update: 1,
            estimator: Ift::default(),
            ratio: RatioMode::Tracked,
            kl: 0.0,
            optimizer: AdamW::with_lr(1e-3),
            lr_schedule: LrSchedule::InvSqrt { scale: 100.0 },
            grad_clip: Some(1.0),
            max_batch: 4096,
            seed: 0,
        }
    }
}

impl SingleLoopConfig {
    /// The optimiser this configuration describes: `optimizer` under `lr_schedule`, clipped at
    /// `grad_clip`.
    pub fn to_optimizer(&self) -> Optimizer {
        Optimizer {
            adamw: self.optimizer,
            schedule: self.lr_schedule,
            clip: self.grad_clip,
        }
    }

    /// Validates every field.
    pub fn check(&self, num_tokens: usize) -> Result<()> {
        crate::check::nonzero("steps_per_update", self.steps_per_update)?;
        crate::check::nonzero("max_batch", self.max_batch)?;
        self.rates.checked_bound(num_tokens)?;
        self.optimizer.check()?;
        if !(self.kl >= 0.0 && self.kl.is_finite()) {
            return Err(Error::invalid("kl", self.kl, "must be finite and ≥ 0"));
        }
        if let Some(c) = self.grad_clip {
            crate::check::positive("grad_clip", c)?;
        }
        if let RatioMode::PathSubset { positions } = self.ratio {
            crate::check::nonzero("ratio positions", positions)?;
        }
        Ok(())
    }
}

/// What one update did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpdateMetrics {
    /// Update index.
    pub update: u64,
    /// Mean training reward over the particles.
    pub reward: f64,
    /// Mean of `ℓ̂_b`, a (shifted) estimate of `KL(π_θ‖p_ref)`; exact up to the unknown constant (for
    /// the path modes the constant is `−log(π_θ/p_ref)(a)` and moves with the anchor `a`).
    pub log_ratio: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Particles that moved during the chain steps.
    pub jumps: usize,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Model evaluations (forwards on one sequence) spent since the start.
    pub evaluations: u64,
    /// Wall time of the update, seconds.
    pub seconds: f64,
}

/// Everything an update changes, kept to restore on error.
struct Saved<E: Dtype, D: Device<E>> {
    params: ParamStore<E, D>,
    state: AdamWState<E, D>,
    particles: Vec<usize>,
    rewards: Vec<f64>,
    log_ratio: Vec<f64>,
    anchor: Vec<usize>,
    reference_path: Vec<Option<f64>>,
    update: u64,
    evaluations: u64,
}

/// The single-loop trainer.
pub struct SingleLoop<M: EnergyModel, G: Graph> {
    /// The model being fine-tuned.
    pub model: M,
    /// The reference weights `p_ref` (the pretrained model).
    pub reference: Params<M>,
    graph: G,
    reward: Box<dyn Reward>,
    config: SingleLoopConfig,
    particles: Vec<usize>,
    batch: usize,
    rewards: Vec<f64>,
    log_ratio: Vec<f64>,
    anchor: Vec<usize>,
    reference_path: Vec<Option<f64>>,
    state: AdamWState<M::Elem, M::Device>,
    update: u64,
    evaluations: u64,
}

impl<M: EnergyModel, G: Graph> SingleLoop<M, G> {
    /// Starts from `model` (also the reference) and `batch` particles (flat `[batch, L]`, drawn from the
    /// pretrained sampler by the caller).
    pub fn new<R: Reward + 'static>(
        model: M,
        graph: G,
        reward: R,
        config: SingleLoopConfig,
        particles: Vec<usize>,
        batch: usize,
    ) -> Result<Self> {
        config.check(graph.num_tokens())?;
        if batch < 2 {
            return Err(Error::invalid("batch", batch, "needs at least 2 particles"));
        }
        let l = particles.len() / batch;
        crate::check::nonzero("sequence length", l)?;
        crate::check::tokens(&particles, batch, l, graph.num_tokens())?;
        if let RatioMode::PathSubset { positions } = config.ratio {
            if positions > l {
                return Err(Error::invalid(
                    "ratio positions",
                    positions,
                    format!("must be ≤ the sequence length {l}"),
                ));
            }
        }
        let rewards = evaluate_flat(&reward, &particles, l)?;
        let anchor = consensus(&particles, batch, graph.num_tokens());
        let state = config.optimizer.init(model.params());
        Ok(Self {
            reference: model.params().snapshot(),
            model,
            graph,
            reward: Box::new(reward),
            config,
            particles,
            batch,
            rewards,
            log_ratio: vec![0.0; batch],
            anchor,
            reference_path: vec![None; batch],
            state,
            update: 0,
            evaluations: 0,
        })
    }

    /// The particles, flat `[batch, L]`.
    pub fn particles(&self) -> &[usize] {
        &self.particles
    }

    /// The tracked (or exact) log-ratios `ℓ̂_b ≈ log(π_θ/p_ref)(x_b)`, up to a constant shared by all
    /// particles.
    pub fn log_ratios(&self) -> &[f64] {
        &self.log_ratio
    }

    /// The anchor `a` of the path log-ratios ([`RatioMode::Path`]): the most frequent token at each
    /// position of the particles, recomputed at each update (the same for every particle of an update,
    /// so the shift it makes is a constant that the centred weights cancel; the reference's cached path
    /// values are dropped when it changes).
    pub fn anchor(&self) -> &[usize] {
        &self.anchor
    }

    /// The cached training rewards `r_b` of the particles.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }

    /// Model evaluations spent so far (chain steps, reference reads, surrogates).
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// The configuration.
    pub fn config(&self) -> &SingleLoopConfig {
        &self.config
    }

    /// Updates taken so far.
    pub fn updates(&self) -> u64 {
        self.update
    }

    /// Replaces the population (a restart from fresh samples); tracked ratios restart at 0, which is
    /// only right for samples of the reference. Evaluations of the new rewards are not counted.
    pub fn reset_particles(&mut self, particles: Vec<usize>) -> Result<()> {
        let l = self.seq_len();
        crate::check::tokens(&particles, self.batch, l, self.graph.num_tokens())?;
        self.rewards = evaluate_flat(self.reward.as_ref(), &particles, l)?;
        self.particles = particles;
        self.log_ratio = vec![0.0; self.batch];
        self.reference_path = vec![None; self.batch];
        Ok(())
    }

    fn seq_len(&self) -> usize {
        self.particles.len() / self.batch
    }

    /// `k` chain steps of every particle under `Q_θ`; returns how many particles moved.
    pub fn advance<R: Rng>(&mut self, steps: usize, rng: &mut R) -> Result<usize> {
        let l = self.seq_len();
        let mut moved = vec![false; self.batch];
        for _ in 0..steps {
            let mut scores = ModelScores {
                model: &self.model,
                params: self.model.params(),
                graph: &self.graph,
                sigma0: self.config.estimator.sigma0,
                clean: self.config.estimator.clean,
                max_batch: self.config.max_batch,
                spent: 0,
            };
            let before = self.particles.clone();
            let jumps = chain_step(
                self.config.rates,
                &mut scores,
                &mut self.particles,
                self.batch,
                rng,
            )?;
            self.evaluations += scores.evaluations();
            if jumps.is_empty() {
                continue;
            }
            if self.config.ratio == RatioMode::Tracked && self.config.kl > 0.0 {
                // log s_ref at the same jumps, from the pre-jump states.
                let mut x = Vec::with_capacity(jumps.len() * l);
                let positions: Vec<usize> = jumps.iter().map(|j| j.position).collect();
                for j in &jumps {
                    x.extend_from_slice(&before[j.particle * l..(j.particle + 1) * l]);
                }
                let mut reference = ModelScores {
                    model: &self.model,
                    params: &self.reference,
                    graph: &self.graph,
                    sigma0: self.config.estimator.sigma0,
                    clean: self.config.estimator.clean,
                    max_batch: self.config.max_batch,
                    spent: 0,
                };
                let rows = reference.position_log_scores(&x, jumps.len(), &positions)?;
                self.evaluations += reference.evaluations();
                let n = self.graph.num_states();
                for (i, j) in jumps.iter().enumerate() {
                    self.log_ratio[j.particle] += j.log_score - rows[i * n + j.to];
                }
            }
            for j in &jumps {
                moved[j.particle] = true;
                self.reference_path[j.particle] = None;
            }
        }
        // Re-score the particles that moved.
        let idx: Vec<usize> = (0..self.batch).filter(|&b| moved[b]).collect();
        if !idx.is_empty() {
            let mut x = Vec::with_capacity(idx.len() * l);
            for &b in &idx {
                x.extend_from_slice(&self.particles[b * l..(b + 1) * l]);
            }
            let r = evaluate_flat(self.reward.as_ref(), &x, l)?;
            for (&b, r) in idx.iter().zip(r) {
                self.rewards[b] = r;
            }
        }
        Ok(idx.len())
    }

    /// One policy-gradient update at the current particles (no chain step).
    pub fn update<R: Rng>(&mut self, rng: &mut R) -> Result<(f64, f64)> {
        let l = self.seq_len();
        let beta = self.config.kl;
        if self.config.ratio == RatioMode::Exact && beta > 0.0 {
            let dev = self.model.params().device().clone();
            let ids = upload(
                &dev,
                self.particles.clone(),
                (self.batch, l),
                "SingleLoop::update (particles)",
            )?;
            let theta = self
                .model
                .log_potential_with(self.model.params(), &ids, NoneTape)?;
            let reference = self
                .model
                .log_potential_with(&self.reference, &ids, NoneTape)?;
            let (Some(theta), Some(reference)) = (theta, reference) else {
                return Err(Error::invalid(
                    "ratio",
                    "Exact",
                    "the model has no energy head; use RatioMode::Tracked",
                ));
            };
            let (t, r) = (
                crate::nn::to_f64s(&theta.as_vec()),
                crate::nn::to_f64s(&reference.as_vec()),
            );
            self.log_ratio = t.iter().zip(&r).map(|(a, b)| a - b).collect();
            self.evaluations += 2 * self.batch as u64;
        }
        if beta > 0.0 {
            match self.config.ratio {
                RatioMode::Path => self.path_log_ratios(None)?,
                RatioMode::PathSubset { positions } => {
                    let subset = rand::seq::index::sample(rng, l, positions).into_vec();
                    self.path_log_ratios(Some(&subset))?;
                }
                RatioMode::Exact | RatioMode::Tracked => {}
            }
        }
        let rho: Vec<f64> = self
            .rewards
            .iter()
            .zip(&self.log_ratio)
            .map(|(r, lr)| r - beta * lr)
            .collect();
        let weights = ift_weights(&rho)?;
        let seed: u64 = rng.gen();
        let mut sub = step_rng(seed, 0);
        let particles = Sequences::new(&self.particles, self.batch)?;
        let surrogate = self.config.estimator.surrogate(
            &Policy::current(&self.model),
            &self.graph,
            particles,
            SurrogateWeights {
                particle: &weights,
                frozen: None,
            },
            OwnedTape::default(),
            &mut sub,
        )?;
        self.evaluations += surrogate.evaluations;
        let mut grads = Grads::collect(self.model.params(), &mut surrogate.loss.backward())?;
        let optimizer = self.config.to_optimizer();
        let params = self.model.params_mut();
        let applied = optimizer.apply(self.update, params, &mut self.state, &mut grads)?;
        let (norm, lr) = (applied.grad_norm, applied.lr);
        if self.config.ratio == RatioMode::Tracked && beta > 0.0 {
            // + Δθ·ĥ_b ≈ h_b(θ_new) − h_b(θ), same frozen weights and positions.
            let mut sub = step_rng(seed, 0);
            let after = self.config.estimator.surrogate(
                &Policy::current(&self.model),
                &self.graph,
                particles,
                SurrogateWeights {
                    particle: &weights,
                    frozen: Some(surrogate.coefficients.as_slice()).filter(|c| !c.is_empty()),
                },
                NoneTape,
                &mut sub,
            )?;
            self.evaluations += after.evaluations;
            for (lr, (a, b)) in self
                .log_ratio
                .iter_mut()
                .zip(after.values.iter().zip(&surrogate.values))
            {
                *lr += a - b;
            }
        }
        self.update += 1;
        Ok((norm, lr))
    }

    /// `ℓ̂_b = ℓ_θ(x_b) − ℓ_ref(x_b)` along the canonical path from the anchor (the consensus of the
    /// current particles: one anchor for all of them, so a constant shift across updates), over every step
    /// (`subset = None`; the reference's value is cached until the particle moves) or over the steps at
    /// the `subset` positions (both read afresh).
    fn path_log_ratios(&mut self, subset: Option<&[usize]>) -> Result<()> {
        let l = self.seq_len();
        let anchor = consensus(&self.particles, self.batch, self.graph.num_tokens());
        if anchor != self.anchor {
            self.anchor = anchor;
            self.reference_path = vec![None; self.batch];
        }
        let scores = |params| ModelScores {
            model: &self.model,
            params,
            graph: &self.graph,
            sigma0: self.config.estimator.sigma0,
            clean: self.config.estimator.clean,
            max_batch: self.config.max_batch,
            spent: 0,
        };
        let mut theta = scores(self.model.params());
        let ell = path_log_potential(
            &mut theta,
            &self.particles,
            self.batch,
            &self.anchor,
            subset,
        )?;
        let mut spent = theta.evaluations();
        let reference: Vec<f64> = if subset.is_some() {
            let mut reference = scores(&self.reference);
            let r = path_log_potential(
                &mut reference,
                &self.particles,
                self.batch,
                &self.anchor,
                subset,
            )?;
            spent += reference.evaluations();
            r
        } else {
            let stale: Vec<usize> = (0..self.batch)
                .filter(|&b| self.reference_path[b].is_none())
                .collect();
            if !stale.is_empty() {
                let mut x = Vec::with_capacity(stale.len() * l);
                for &b in &stale {
                    x.extend_from_slice(&self.particles[b * l..(b + 1) * l]);
                }
                let mut reference = scores(&self.reference);
                let r = path_log_potential(&mut reference, &x, stale.len(), &self.anchor, None)?;
                spent += reference.evaluations();
                for (&b, r) in stale.iter().zip(r) {
                    self.reference_path[b] = Some(r);
                }
            }
            self.reference_path
                .iter()
                .map(|r| r.unwrap_or(0.0))
                .collect()
        };
        self.evaluations += spent;
        self.log_ratio = ell.iter().zip(&reference).map(|(a, b)| a - b).collect();
        Ok(())
    }

    /// One full iteration: `k` chain steps, then one update. Transactional: on error the model, the
    /// optimiser state, the particles with their rewards and log-ratios, and the counters are as they
    /// were before the call.
    pub fn step(&mut self) -> Result<UpdateMetrics> {
        let saved = Saved {
            params: self.model.params().clone(),
            state: self.state.clone(),
            particles: self.particles.clone(),
            rewards: self.rewards.clone(),
            log_ratio: self.log_ratio.clone(),
            anchor: self.anchor.clone(),
            reference_path: self.reference_path.clone(),
            update: self.update,
            evaluations: self.evaluations,
        };
        match self.step_inner() {
            Ok(m) => Ok(m),
            Err(e) => {
                *self.model.params_mut() = saved.params;
                self.state = saved.state;
                self.particles = saved.particles;
                self.rewards = saved.rewards;
                self.log_ratio = saved.log_ratio;
                self.anchor = saved.anchor;
                self.reference_path = saved.reference_path;
                self.update = saved.update;
                self.evaluations = saved.evaluations;
                Err(e)
            }
        }
    }

    fn step_inner(&mut self) -> Result<UpdateMetrics> {
        let clock = Instant::now();
        let mut rng = step_rng(self.config.seed, self.update);
        let jumps = self.advance(self.config.steps_per_update, &mut rng)?;
        let update = self.update;
        let (grad_norm, lr) = self.update(&mut rng)?;
        Ok(UpdateMetrics {
            update,
            reward: self.mean_reward(),
            log_ratio: self.log_ratio.iter().sum::<f64>() / self.batch as f64,
            grad_norm,
            jumps,
            learning_rate: lr,
            evaluations: self.evaluations,
            seconds: clock.elapsed().as_secs_f64(),
        })
    }

    /// Mean cached reward of the particles.
    pub fn mean_reward(&self) -> f64 {
        self.rewards.iter().sum::<f64>() / self.batch as f64
    }
}
