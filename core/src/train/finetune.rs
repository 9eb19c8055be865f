//! SEPO fine-tuning: rounds of sampling and policy-gradient optimisation.
//!
//! One round: snapshot `θ_old`; draw `groups × group_size` sequences from `θ_old` with the configured
//! sampler (recording trajectories when the estimator or the KL needs them); score them with the training
//! reward (and the held-out evaluation reward, if any); advantages; `epochs` passes over minibatches, each an
//! AdamW step on the PPO-clip loss of the chosen estimator plus `β·KL_path` to the reference and minus an
//! optional entropy bonus; metrics. If anything fails (a NaN reward, a diverging gradient), the model, the
//! optimiser and the round counter are restored to the end of the previous round and the typed error is
//! returned: [`Finetuner::round`] is transactional.

use std::time::Instant;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::path_kl;
use crate::loss::PpoObjective;
use crate::nn::io::write_atomic;
use crate::nn::{to_f64s, AdamW, AdamWState, Grads, ParamStore};
use crate::policy::Mixture;
use crate::policy::{clean_log_scores, conditional_log_weights, path_log_prob, ConcreteScore};
use crate::reward::{evaluate_flat, Reward};
use crate::sample::{first_hitting, sample, Condition, SamplerConfig, Samples};
use crate::schedule::NoiseSchedule;
use crate::score::ScoreModel;
use crate::train::{step_rng, Checkpoint, LrSchedule, MetricsWriter};
use crate::weight::Baseline;

/// Which log-probability estimator the policy gradient uses (docs/sepo.md §3–4).
///
/// The default is [`LogProb::Trajectory`]: `∇ log P_θ(path) = Σ_steps ∇ log p_θ(x_s | x_t)`, itself a
/// weighted log concrete score at the visited states, is unbiased for the sampler's own distribution, so
/// with a KL pull it targets `p* ∝ p_ref·exp(r/β)` (docs/sepo.md §6: TV to `p*` 0.433 → 0.092 on the
/// 4^4 space). [`LogProb::ConcreteScore`] with `Conditional` weights is SEPO's clean-end estimator: cheaper
/// per sample when `L` is small against the number of sampler steps, strong at raising the reward, but it
/// follows the pseudo-likelihood `Σ_l log p_θ(x_l | x_{−l})`, whose KL-regularised fixed point is not
/// `p*` (TV 0.469 at the same settings); choose it explicitly.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LogProb {
    /// SEPO's weighted log concrete score on clean samples.
    ConcreteScore(ConcreteScore),
    /// The sampler's own path log-probability (unbiased for the sampler's distribution; the default).
    Trajectory,
}

impl Default for LogProb {
    fn default() -> Self {
        LogProb::Trajectory
    }
}

/// Which sampler draws the completions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SamplerKind {
    /// The time-grid sampler (Euler or Tweedie predictor, then a denoising step).
    Grid(SamplerConfig),
    /// The first-hitting sampler (absorbing graphs): one network call per position.
    FirstHitting(SamplerConfig),
}

impl SamplerKind {
    fn config(&self) -> SamplerConfig {
        match self {
            SamplerKind::Grid(c) | SamplerKind::FirstHitting(c) => *c,
        }
    }
}

/// How the KL to the reference enters the objective `E[r] − β·KL`.
///
/// The default is [`KlMode::Path`]: its closed-form gradient has far less variance than the score-function
/// gradient of the shaped reward (TV to `p*` 0.092 against 0.266 for `Trajectory` on the 4^4 space,
/// docs/sepo.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum KlMode {
    /// In the reward: each sample's reward becomes `r(x) − β·[log P_θ_old(path) − log P_ref(path)]`, the
    /// path log-ratio of the trajectory that produced it. Then `p* ∝ p_ref·exp(r/β)` (on paths) makes
    /// every shaped reward equal to `β log Z`, a constant, so it is a fixed point of *every* estimator,
    /// biased or not. One reference forward per sampler step.
    InReward,
    /// As a loss (the default): the closed-form per-step KL `Σ_k Σ_l KL(p_θ(·|x_k) ‖ p_ref(·|x_k))` along the sampled
    /// trajectories, differentiated through `p_θ` at the visited states (DRAKES-style).
    #[default]
    Path,
}

/// Fine-tuning hyper-parameters. Defaults follow the reference implementation where it has one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FinetuneConfig {
    /// Sequence length of the completions (prompt included).
    pub seq_len: usize,
    /// Groups per round (prompts, or independent groups of unconditional samples).
    pub groups: usize,
    /// Samples per group `G`.
    pub group_size: usize,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Log-probability estimator.
    pub log_prob: LogProb,
    /// The policy-gradient estimator: a mixture of (baseline, clip) objectives (GRPO by default).
    pub estimator: Mixture,
    /// Optimisation epochs over each round's samples (`K`).
    pub epochs: usize,
    /// Sequences per minibatch.
    pub minibatch: usize,
    /// AdamW (its `lr` is the peak rate).
    pub optimizer: AdamW,
    /// Learning-rate schedule over optimiser steps.
    pub lr_schedule: LrSchedule,
    /// Global gradient-norm clip.
    pub grad_clip: Option<f64>,
    /// KL coefficient β (0 = off).
    pub kl: f64,
    /// How the KL enters the objective.
    pub kl_mode: KlMode,
    /// Compute the KL over the last this-many sampler steps only (`None`: all).
    pub kl_last_steps: Option<usize>,
    /// Refresh the reference to θ every this-many rounds (`None`: keep the pretrained model).
    pub reference_refresh: Option<u64>,
    /// Entropy bonus coefficient on the clean-end conditionals (0 = off).
    pub entropy_bonus: f64,
    /// Run seed: round `k` uses `step_rng(seed, k)`.
    pub seed: u64,
}

impl FinetuneConfig {
    /// Defaults for sequences of length `seq_len`: 4 groups of 8, Tweedie with 32 steps, the
    /// `Trajectory` log-probability, GRPO advantages, ε = 0.2, K = 5 epochs in minibatches of 16, AdamW
    /// lr 1e-4 without weight decay, clip 1.0, no KL (path KL when `kl > 0`), no entropy bonus.
    pub fn new(seq_len: usize) -> Self {
        Self {
            seq_len,
            groups: 4,
            group_size: 8,
            sampler: SamplerKind::Grid(SamplerConfig {
                steps: 32,
                ..SamplerConfig::default()
            }),
            log_prob: LogProb::default(),
            estimator: Mixture::grpo(0.2),
            epochs: 5,
            minibatch: 16,
            optimizer: AdamW::with_lr(1e-4),
            lr_schedule: LrSchedule::Constant,
            grad_clip: Some(1.0),
            kl: 0.0,
            kl_mode: KlMode::default(),
            kl_last_steps: None,
            reference_refresh: None,
            entropy_bonus: 0.0,
            seed: 0,
        }
    }

    /// Number of samples per round.
    pub fn batch(&self) -> usize {
        self.groups * self.group_size
    }

    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("seq_len", self.seq_len)?;
        crate::check::nonzero("groups", self.groups)?;
        crate::check::nonzero("group_size", self.group_size)?;
        crate::check::nonzero("epochs", self.epochs)?;
        crate::check::nonzero("minibatch", self.minibatch)?;
        self.sampler.config().check()?;
        self.optimizer.check()?;
        if let LogProb::ConcreteScore(c) = self.log_prob {
            c.check()?;
        }
        self.estimator.check()?;
        if !(self.kl >= 0.0 && self.kl.is_finite()) {
            return Err(Error::invalid("kl", self.kl, "must be finite and ≥ 0"));
        }
        if !(self.entropy_bonus >= 0.0 && self.entropy_bonus.is_finite()) {
            return Err(Error::invalid(
                "entropy_bonus",
                self.entropy_bonus,
                "must be finite and ≥ 0",
            ));
        }
        if let Some(c) = self.grad_clip {
            crate::check::positive("grad_clip", c)?;
        }
        if self.reference_refresh == Some(0) {
            return Err(Error::invalid("reference_refresh", 0, "must be ≥ 1 round"));
        }
        for comp in &self.estimator.components {
            let g = comp.group.unwrap_or(self.group_size);
            if self.batch() % g != 0 {
                return Err(Error::invalid(
                    "group",
                    g,
                    format!(
                        "of `{}` must divide the {} samples of a round",
                        comp.name,
                        self.batch()
                    ),
                ));
            }
            if matches!(comp.baseline, Baseline::LeaveOneOut) && g < 2 {
                return Err(Error::invalid(
                    "group_size",
                    g,
                    "leave-one-out needs groups of at least 2",
                ));
            }
        }
        Ok(())
    }
}

/// The last `n` steps of a trajectory (all if `None`).
fn last_steps(t: &crate::sample::Trajectory, n: Option<usize>) -> crate::sample::Trajectory {
    let skip = n.map_or(0, |n| t.steps.len().saturating_sub(n));
    crate::sample::Trajectory {
        steps: t.steps[skip..].to_vec(),
    }
}

/// Metrics of one round, named as TRL's `GRPOTrainer` names them where they exist.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoundMetrics {
    /// Round index (0-based).
    pub round: u64,
    /// Mean training reward of the round's samples.
    pub reward: f64,
    /// Its standard deviation.
    pub reward_std: f64,
    /// Mean held-out evaluation reward, if an evaluation reward is set.
    pub eval_reward: Option<f64>,
    /// Mean path KL to the reference (when the KL is on or trajectories were recorded).
    pub kl: Option<f64>,
    /// Mean entropy of the clean-end conditionals (nats per position).
    pub entropy: f64,
    /// Fraction of clipped PPO terms (weighted), averaged over minibatches.
    pub clip_ratio: f64,
    /// Gradient norm before clipping, averaged over minibatches.
    pub grad_norm: f64,
    /// Learning rate of the last step.
    pub learning_rate: f64,
    /// Mean PPO loss.
    pub loss: f64,
    /// Fraction of groups whose rewards were all equal (zero advantage: TRL's `frac_reward_zero_std`).
    pub zero_std_fraction: f64,
    /// Samples drawn per second of sampling.
    pub samples_per_s: f64,
    /// Seconds spent sampling.
    pub time_sample: f64,
    /// Seconds spent scoring rewards.
    pub time_score: f64,
    /// Seconds spent in loss, backward and optimiser.
    pub time_backward: f64,
}

/// A fine-tuning run: the policy, its reference, the forward process, the rewards and the optimiser.
pub struct Finetuner<
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
> {
    /// The policy (trainable score model).
    pub model: M,
    /// Reference weights for the KL.
    pub reference: ParamStore<E, D>,
    /// Forward graph.
    pub graph: G,
    /// Noise schedule.
    pub schedule: S,
    /// Training reward.
    pub reward: R,
    /// Held-out evaluation reward.
    pub eval_reward: Option<Box<dyn Reward>>,
    /// Optional prompt (fixed positions) shared by every sample.
    pub condition: Option<Condition>,
    /// Hyper-parameters.
    pub config: FinetuneConfig,
    /// AdamW state.
    pub state: AdamWState<E, D>,
    /// Rounds completed.
    pub round: u64,
}

impl<E, D, M, G, S, R> Finetuner<E, D, M, G, S, R>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// Starts from `model` (also the reference).
    pub fn new(model: M, graph: G, schedule: S, reward: R, config: FinetuneConfig) -> Result<Self> {
        config.check()?;
        if model.num_states() != graph.num_states() {
            return Err(Error::ShapeMismatch {
                op: "Finetuner::new (model states vs graph states)",
                expected: vec![graph.num_states()],
                got: vec![model.num_states()],
            });
        }
        let state = config.optimizer.init(model.params());
        let reference = model.params().snapshot();
        Ok(Self {
            model,
            reference,
            graph,
            schedule,
            reward,
            eval_reward: None,
            condition: None,
            config,
            state,
            round: 0,
        })
    }

    /// Sets a held-out evaluation reward (reported, never trained on).
    pub fn with_eval_reward(mut self, reward: Box<dyn Reward>) -> Self {
        self.eval_reward = Some(reward);
        self
    }

    /// Sets a prompt: positions fixed in every sample.
    pub fn with_condition(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// One prompt per group: group `g`'s `group_size` completions start with `prompts[g]` (a prefix held
    /// fixed by the sampler), and GRPO standardises rewards among the completions of one prompt. Sets
    /// `groups = prompts.len()`.
    pub fn with_prompts(mut self, prompts: &[Vec<usize>]) -> Result<Self> {
        let c = &mut self.config;
        if prompts.is_empty() {
            return Err(Error::Empty {
                op: "Finetuner::with_prompts",
                what: "no prompt",
            });
        }
        let vocab = self.graph.num_tokens();
        let mut fixed = Vec::with_capacity(prompts.len() * c.group_size * c.seq_len);
        for (g, prompt) in prompts.iter().enumerate() {
            if prompt.len() > c.seq_len {
                return Err(Error::ShapeMismatch {
                    op: "Finetuner::with_prompts (prompt longer than seq_len)",
                    expected: vec![c.seq_len],
                    got: vec![g, prompt.len()],
                });
            }
            if let Some(p) = prompt.iter().position(|&t| t >= vocab) {
                return Err(Error::TokenOutOfVocab {
                    sequence: g,
                    position: p,
                    token: prompt[p],
                    vocab,
                });
            }
            for _ in 0..c.group_size {
                fixed.extend((0..c.seq_len).map(|l| prompt.get(l).copied()));
            }
        }
        c.groups = prompts.len();
        c.check()?;
        self.condition = Some(Condition::per_sequence(fixed));
        Ok(self)
    }

    /// Draws `batch` samples from `params` with the configured sampler.
    pub fn sample_with<Rn: Rng>(
        &self,
        params: &ParamStore<E, D>,
        batch: usize,
        record: bool,
        rng: &mut Rn,
    ) -> Result<Samples> {
        let c = &self.config;
        let (kind, mut cfg) = (c.sampler, c.sampler.config());
        cfg.record_trajectory = record;
        let cond = self.condition.as_ref();
        match kind {
            SamplerKind::Grid(_) => sample(
                &self.model,
                params,
                &self.graph,
                &self.schedule,
                &cfg,
                batch,
                c.seq_len,
                cond,
                rng,
            ),
            SamplerKind::FirstHitting(_) => first_hitting(
                &self.model,
                params,
                &self.graph,
                &self.schedule,
                &cfg,
                batch,
                c.seq_len,
                cond,
                rng,
            ),
        }
    }

    /// One round; on error everything is as it was before the call.
    pub fn round(&mut self) -> Result<RoundMetrics> {
        let saved = (
            self.model.params().clone(),
            self.state.clone(),
            self.reference.clone(),
        );
        match self.round_inner() {
            Ok(m) => Ok(m),
            Err(e) => {
                *self.model.params_mut() = saved.0;
                self.state = saved.1;
                self.reference = saved.2;
                Err(e)
            }
        }
    }

    fn round_inner(&mut self) -> Result<RoundMetrics> {
        let c = self.config.clone();
        let mut rng = step_rng(c.seed, self.round);
        let old = self.model.params().snapshot();
        let batch = c.batch();
        let record = matches!(c.log_prob, LogProb::Trajectory) || c.kl > 0.0;

        let clock = Instant::now();
        let samples = self.sample_with(&old, batch, record, &mut rng)?;
        let time_sample = clock.elapsed().as_secs_f64();

        let clock = Instant::now();
        let rewards = evaluate_flat(&self.reward, &samples.tokens, c.seq_len)?;
        let eval = match &self.eval_reward {
            Some(r) => {
                let v = evaluate_flat(r.as_ref(), &samples.tokens, c.seq_len)?;
                Some(v.iter().sum::<f64>() / v.len() as f64)
            }
            None => None,
        };
        let time_score = clock.elapsed().as_secs_f64();
        // KL in the reward: shape with the path log-ratio of θ_old (recorded) to the reference.
        let (shaped, kl_in_reward) = match (&samples.trajectory, c.kl_mode) {
            (Some(t), KlMode::InReward) if c.kl > 0.0 => {
                let t = last_steps(t, c.kl_last_steps);
                let reference = path_log_prob(&self.model, &self.reference, &self.graph, &t)?;
                let log_ratio: Vec<f64> = t
                    .log_prob()
                    .iter()
                    .zip(&reference)
                    .map(|(p, q)| p - q)
                    .collect();
                let shaped: Vec<f64> = rewards
                    .iter()
                    .zip(&log_ratio)
                    .map(|(r, d)| r - c.kl * d)
                    .collect();
                (shaped, Some(log_ratio.iter().sum::<f64>() / batch as f64))
            }
            _ => (rewards.clone(), None),
        };
        let adv: Vec<Vec<f64>> = c
            .estimator
            .components
            .iter()
            .map(|comp| comp.advantages(&shaped, c.group_size))
            .collect::<Result<_>>()?;
        let zero_groups = rewards
            .chunks(c.group_size)
            .filter(|g| g.iter().all(|&r| r == g[0]))
            .count();

        let clock = Instant::now();
        let (mut clip_sum, mut norm_sum, mut loss_sum, mut kl_sum, mut updates) =
            (0.0, 0.0, 0.0, 0.0, 0usize);
        let mut lr = c.optimizer.lr;
        let mut order: Vec<usize> = (0..batch.div_ceil(c.minibatch)).collect();
        for _ in 0..c.epochs {
            order.shuffle(&mut rng);
            for &chunk in &order {
                let rows = chunk * c.minibatch..((chunk + 1) * c.minibatch).min(batch);
                let (mut grads, stats, kl) =
                    self.minibatch_grads(&old, &samples, rows, &adv, &mut rng)?;
                let norm = match c.grad_clip {
                    Some(m) => grads.clip_norm(m),
                    None => grads.global_norm(),
                };
                if !norm.is_finite() {
                    return Err(Error::Diverged {
                        what: "gradient norm",
                        step: self.state.step,
                    });
                }
                lr = c.lr_schedule.at(c.optimizer.lr, self.state.step);
                c.optimizer
                    .step(lr, self.model.params_mut(), &mut self.state, &grads)?;
                clip_sum += stats.clip_ratio;
                norm_sum += norm;
                loss_sum += stats.loss;
                kl_sum += kl.unwrap_or(0.0);
                updates += 1;
            }
        }
        let time_backward = clock.elapsed().as_secs_f64();

        let entropy = self.entropy(&samples)?;
        self.round += 1;
        if let Some(every) = c.reference_refresh {
            if self.round % every == 0 {
                self.reference = self.model.params().snapshot();
            }
        }
        let n = updates.max(1) as f64;
        let mean = rewards.iter().sum::<f64>() / batch as f64;
        let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / batch as f64;
        Ok(RoundMetrics {
            round: self.round - 1,
            reward: mean,
            reward_std: var.sqrt(),
            eval_reward: eval,
            kl: kl_in_reward.or(record.then_some(kl_sum / n)),
            entropy,
            clip_ratio: clip_sum / n,
            grad_norm: norm_sum / n,
            learning_rate: lr,
            loss: loss_sum / n,
            zero_std_fraction: zero_groups as f64 / c.groups as f64,
            samples_per_s: batch as f64 / time_sample.max(1e-9),
            time_sample,
            time_score,
            time_backward,
        })
    }

    /// Gradient of the minibatch's loss: PPO surrogate + β·KL − entropy bonus.
    fn minibatch_grads<Rn: Rng>(
        &self,
        old: &ParamStore<E, D>,
        samples: &Samples,
        rows: std::ops::Range<usize>,
        adv: &[Vec<f64>],
        rng: &mut Rn,
    ) -> Result<(Grads<E, D>, crate::loss::PpoStats, Option<f64>)> {
        let c = &self.config;
        let l = c.seq_len;
        let x = &samples.tokens[rows.start * l..rows.end * l];
        let objectives: Vec<PpoObjective<'_>> = c
            .estimator
            .components
            .iter()
            .zip(adv)
            .map(|(comp, a)| PpoObjective {
                scale: comp.weight,
                advantage: &a[rows.clone()],
                clip: comp.clip,
            })
            .collect();
        let b = rows.len();
        let trajectory = samples
            .trajectory
            .as_ref()
            .map(|t| crate::sample::Trajectory {
                steps: t.steps.iter().map(|s| s.rows(rows.clone())).collect(),
            });
        let (mut grads, stats) = match c.log_prob {
            LogProb::ConcreteScore(est) => est.grads(
                &self.model,
                old,
                &self.graph,
                &self.schedule,
                x,
                b,
                &objectives,
                rng,
            )?,
            LogProb::Trajectory => {
                let t = trajectory
                    .as_ref()
                    .expect("trajectories are recorded for this estimator");
                crate::policy::trajectory_ppo_grads(&self.model, &self.graph, t, &objectives)?
            }
        };
        let mut kl_value = None;
        if let Some(t) = trajectory.as_ref() {
            let (kl, g) = path_kl(
                &self.model,
                &self.reference,
                &self.graph,
                t,
                c.kl_last_steps,
                c.kl,
                c.kl > 0.0,
            )?;
            if let Some(g) = g {
                grads.add_assign(&g);
            }
            kl_value = Some(kl);
        }
        if c.entropy_bonus > 0.0 {
            grads.add_assign(&self.entropy_grads(x, b, rng)?);
        }
        Ok((grads, stats, kl_value))
    }

    /// How clean-end scores are read for the entropy: the estimator's mode, else one unmasked forward.
    fn clean_mode(&self) -> (crate::policy::CleanScores, f64) {
        match self.config.log_prob {
            LogProb::ConcreteScore(c) => (c.clean, self.schedule.total(c.t0)),
            LogProb::Trajectory => (
                crate::policy::CleanScores::Unmasked,
                self.schedule.total(self.config.sampler.config().eps),
            ),
        }
    }

    /// Mean entropy (nats per position) of the clean-end conditionals `c_l(·)` of up to 16 samples.
    fn entropy(&self, samples: &Samples) -> Result<f64> {
        let l = self.config.seq_len;
        let b = samples.batch.min(16);
        let x = &samples.tokens[..b * l];
        let (mode, sigma0) = self.clean_mode();
        let mut rng = step_rng(self.config.seed ^ 0xE27, self.round);
        let (ls, _) = clean_log_scores(
            &self.model,
            self.model.params(),
            &self.graph,
            x,
            b,
            sigma0,
            mode,
            NoneTape,
            &mut rng,
        )?;
        let n = self.graph.num_states();
        let log_c = conditional_log_weights(&to_f64s(&ls.as_vec()), n, self.graph.mask());
        let h: f64 = log_c
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| -v.exp() * v)
            .sum();
        Ok(h / (b * l) as f64)
    }

    /// Gradient of `−entropy_bonus · H` (the bonus lowers the loss as entropy rises).
    fn entropy_grads<Rn: Rng>(
        &self,
        x: &[usize],
        batch: usize,
        rng: &mut Rn,
    ) -> Result<Grads<E, D>> {
        let (mode, sigma0) = self.clean_mode();
        let (ls, _) = clean_log_scores(
            &self.model,
            self.model.params(),
            &self.graph,
            x,
            batch,
            sigma0,
            mode,
            OwnedTape::default(),
            rng,
        )?;
        let shape = *ls.shape();
        let n = shape.2;
        let dev = self.model.params().device().clone();
        // Exclude the mask column from the conditional with a large finite negative logit.
        let bias: Vec<E> = (0..shape.0 * shape.1 * n)
            .map(|i| {
                crate::nn::from_f64(if Some(i % n) == self.graph.mask() {
                    -1e9
                } else {
                    0.0
                })
            })
            .collect();
        let log_c = (ls + dev.tensor_from_vec(bias, shape)).log_softmax::<Axis<2>>();
        let c = log_c.with_empty_tape().exp();
        let scale = self.config.entropy_bonus / (shape.0 * shape.1) as f64;
        // −bonus·H = bonus·Σ c log c / (B·L).
        let loss = (c * log_c).sum::<Rank0, _>() * crate::nn::from_f64::<E>(scale);
        Grads::collect(self.model.params(), &mut loss.backward())
    }

    /// Runs `rounds` rounds with a progress bar (if `progress`) and metrics as JSON lines (if given).
    /// Stops at the first error, with the state of the last completed round intact.
    pub fn fit(
        &mut self,
        rounds: u64,
        progress: bool,
        mut metrics: Option<&mut MetricsWriter>,
    ) -> Result<Vec<RoundMetrics>> {
        let bar = if progress {
            let bar = indicatif::ProgressBar::new(rounds);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix("fine-tune");
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut out = Vec::with_capacity(rounds as usize);
        for _ in 0..rounds {
            let m = self.round()?;
            let eval = m
                .eval_reward
                .map_or(String::new(), |e| format!(" eval {e:.3}"));
            let kl = m.kl.map_or(String::new(), |k| format!(" kl {k:.3}"));
            bar.set_message(format!("reward {:.3}{eval}{kl}", m.reward));
            bar.inc(1);
            if let Some(w) = metrics.as_deref_mut() {
                w.write(&m)?;
            }
            out.push(m);
        }
        bar.finish();
        Ok(out)
    }

    /// Writes the policy, the reference, the optimiser state and the round counter (with the config) to
    /// `checkpoint`'s directory, each file atomically.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let meta = std::collections::BTreeMap::new();
        self.model.params().save(&checkpoint.model_path(), &meta)?;
        self.reference
            .save(&checkpoint.dir.join("reference.safetensors"), &meta)?;
        checkpoint.save_optimizer(self.model.params(), &self.state)?;
        let state = serde_json::json!({ "round": self.round, "finetune": self.config });
        write_atomic(
            &checkpoint.dir.join("trainer.json"),
            &serde_json::to_vec_pretty(&state).expect("serialisable"),
        )
    }

    /// Restores a run saved by [`Finetuner::save`] (same architecture and configuration); rounds then
    /// continue bit-identically on CPU, since round `k` draws from `step_rng(seed, k)`. Nothing changes
    /// unless every file loads.
    pub fn resume(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let path = checkpoint.dir.join("trainer.json");
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::CorruptCheckpoint {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let round = json["round"]
            .as_u64()
            .ok_or_else(|| Error::CorruptCheckpoint {
                path: path.clone(),
                reason: "no integer `round`".into(),
            })?;
        let mut params = self.model.params().clone();
        params.load(&checkpoint.model_path())?;
        let mut reference = self.reference.clone();
        reference.load(&checkpoint.dir.join("reference.safetensors"))?;
        let state = checkpoint.load_optimizer(&params)?;
        *self.model.params_mut() = params;
        self.reference = reference;
        self.state = state;
        self.round = round;
        Ok(())
    }
}
