//! The fine-tuning configuration: which log-probability, sampler, KL mode and hyper-parameters a
//! [`Finetuner`](super::Finetuner) runs with, and the metrics of one round.

use crate::error::{Error, Result};
use crate::nn::AdamW;
use crate::nn::{LrSchedule, Optimizer};
use crate::policy::{ConcreteScore, Mixture};
use crate::sample::{SamplerConfig, SamplerKind};
use crate::train::Allocation;
use crate::weight::Baseline;

/// Which log-probability estimator the policy gradient uses (docs/sepo.md §3–4).
///
/// The default is [`LogProb::Trajectory`]: `∇ log P_θ(path) = Σ_steps ∇ log p_θ(x_s | x_t)`, itself a
/// weighted log concrete score at the visited states, is unbiased for the sampler's own distribution, so
/// with a KL pull it targets `p* ∝ p_ref·exp(r/β)` (docs/sepo.md §6: TV to `p*` 0.433 → 0.035 ± 0.006
/// over five seeds on the 4^4 space, `p_ref` the pretrained model's exact first-hitting law). [`LogProb::ConcreteScore`] with `Conditional` weights is SEPO's clean-end estimator: cheaper
/// per sample when `L` is small against the number of sampler steps, strong at raising the reward, but it
/// follows the pseudo-likelihood `Σ_l log p_θ(x_l | x_{−l})`, whose KL-regularised fixed point is not
/// `p*` (TV 0.292 ± 0.026 at the same settings); choose it explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum LogProb {
    /// SEPO's weighted log concrete score on clean samples.
    ConcreteScore(ConcreteScore),
    /// The sampler's own path log-probability (unbiased for the sampler's distribution; the default).
    #[default]
    Trajectory,
    /// The same path gradient from `positions` of each path's unmasking events (absorbing graphs):
    /// `∇ log P_θ(path) = Σ_events ∇ log c_θ(x_l | x_k)` when the head is normalised, estimated by
    /// `n/m` times the sum over `m` events drawn without replacement (unbiased), at about the cost of
    /// `ConcreteScore` with `MaskedSubset { positions: m }`. PPO uses one ratio per event
    /// `ρ_e = c_θ/c_old` (DDPO-style), so the clip bounds each event's ratio, not the path's
    /// ([`crate::policy::events`], docs/sepo.md §4).
    Events {
        /// Unmasking events read per sample (`m ≥ 1`).
        positions: usize,
    },
}

/// How the KL to the reference enters the objective `E[r] − β·KL`.
///
/// Both modes aim at the same objective, `E[r(x_0)] − β·KL(P_θ(path) ‖ P_ref(path))` over the
/// sampler's paths (over the last `kl_last_steps` steps, see [`FinetuneConfig::kl_last_steps`]), whose
/// maximiser is `P*(path) ∝ P_ref(path)·exp(r/β)`: its clean end is `p* ∝ p_ref·exp(r/β)` when the
/// reference's chain ends in `p_ref` (e.g. first-hitting with exact scores) and the model can represent
/// it. They differ in how the KL's gradient is estimated and what it costs.
///
/// The default is [`KlMode::InReward`]: `P*` is then a fixed point of every estimator, it lands closer
/// to `p*` and it is the cheaper of the two (one tape-free reference forward per step and round,
/// against, for `Path`, per step, minibatch and epoch, a tape-free and a taped forward of θ and two of
/// the reference). On the 4^4 space (docs/sepo.md §6; β = 1, 60 rounds, `Trajectory`, `p_ref` the
/// pretrained MLP's exact first-hitting law, five seeds) TV(samples, `p*`) is 0.035 ± 0.006 for
/// `InReward` and 0.070 ± 0.010 for `Path`, a difference of −0.034 ± 0.012 (95%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum KlMode {
    /// In the reward: each sample's reward becomes `r(x) − β·[log P_θ_old(path) − log P_ref(path)]`, the
    /// path log-ratio of the trajectory that produced it. Then `p* ∝ p_ref·exp(r/β)` (on paths) makes
    /// every shaped reward equal to `β log Z`, a constant, so it is a fixed point of *every* estimator,
    /// biased or not. One reference forward per sampler step. The default.
    #[default]
    InReward,
    /// As a loss `β·F`, `F = E_{P_θ}[Σ_k KL_k(x_k)] = KL(P_θ(path) ‖ P_ref(path))`, with
    /// `KL_k = Σ_l KL(p_θ(·|x_k) ‖ p_ref(·|x_k))` the closed-form KL of step `k` at the visited state
    /// ([`crate::loss::path_kl`]). Its gradient is the closed-form term at the visited states *plus* the
    /// score-function term `Σ_j (Σ_{k>j} KL_k − b_j)·∇log p_θ(x_{j+1} | x_j)` (the states themselves
    /// depend on θ), with `b_j` a leave-one-out baseline over the minibatch, every term
    /// importance-weighted per step from θ_old within PPO epochs (unclipped). It is therefore unbiased
    /// for `∇F`, and with an unbiased reward gradient ([`LogProb::Trajectory`]) `P*` is its fixed
    /// point. Against `InReward` it replaces each step's sampled log-ratio by its expectation given the
    /// visited state (the closed-form KL), at a higher cost.
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
    /// Compute the KL over the last this-many sampler steps only (`None`: all). The objective is then
    /// `E[r] − β·E_{P_θ}[Σ_{k ≥ K−n} KL_k(x_k)]`, the KL of the last `n` steps given the state
    /// `x_{K−n}` they start from, averaged over that state's law under θ (in both modes; under `Path`
    /// the score-function term still reaches the steps before the window, through taped forwards over
    /// the whole path). Its optimum is *not* `p*`: from each `x_{K−n}` the last `n` steps follow
    /// `p_ref`'s tilted by `exp(r/β)`, but the law of `x_{K−n}` itself is unregularised and
    /// concentrates on the states of largest soft value `β·log E_ref[exp(r/β) | x_{K−n}]`.
    pub kl_last_steps: Option<usize>,
    /// Refresh the reference to θ every this-many rounds (`None`: keep the pretrained model).
    pub reference_refresh: Option<u64>,
    /// Entropy bonus coefficient on the model's clean conditionals `p_θ(·|x_{−l})` (masked reads under
    /// the absorbing graph, whatever the estimator; 0 = off).
    pub entropy_bonus: f64,
    /// Run seed: round `k` uses `step_rng(seed, k)`.
    pub seed: u64,
    /// How a round's draws are split across prompts (with [`Finetuner::with_prompts`]; `Uniform`:
    /// `group_size` each). Adaptive strategies draw groups of unequal sizes; each prompt then has the
    /// same weight in the surrogate, which makes it count equally in expectation under leave-one-out
    /// only (GRPO and the mean baseline shrink prompts given few draws: [`crate::train::allocation`]).
    ///
    /// [`Finetuner::with_prompts`]: super::Finetuner::with_prompts
    #[serde(default)]
    pub allocation: Allocation,
}

impl FinetuneConfig {
    /// The optimiser this configuration describes: `optimizer` under `lr_schedule`, clipped at
    /// `grad_clip`.
    pub fn to_optimizer(&self) -> Optimizer {
        Optimizer {
            adamw: self.optimizer,
            schedule: self.lr_schedule,
            clip: self.grad_clip,
        }
    }

    /// Defaults for sequences of length `seq_len`: 4 groups of 8, Tweedie with 32 steps, the
    /// `Trajectory` log-probability, GRPO advantages, ε = 0.2, K = 5 epochs in minibatches of 16, AdamW
    /// lr 1e-4 without weight decay, clip 1.0, no KL (in the reward when `kl > 0`), no entropy bonus, uniform
    /// allocation.
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
            allocation: Allocation::Uniform,
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
        crate::check::size(
            "a round of samples",
            &[
                ("groups", self.groups),
                ("group_size", self.group_size),
                ("seq_len", self.seq_len),
            ],
            crate::check::MAX_ELEMENTS,
        )?;
        self.sampler.config().check()?;
        self.optimizer.check()?;
        self.lr_schedule.check()?;
        if let LogProb::ConcreteScore(c) = self.log_prob {
            c.check()?;
        }
        if let LogProb::Events { positions } = self.log_prob {
            crate::check::nonzero("positions", positions)?;
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
        self.allocation.check()?;
        let adaptive = !matches!(self.allocation, Allocation::Uniform);
        if let Some(comp) = self
            .estimator
            .components
            .iter()
            .find(|c| adaptive && c.group.is_some())
        {
            return Err(Error::invalid(
                "group",
                comp.group.unwrap_or(0),
                format!(
                    "of `{}`: under an adaptive allocation the groups are the prompts' draws; \
                     leave `group` unset",
                    comp.name
                ),
            ));
        }
        if self.kl_last_steps == Some(0) {
            return Err(Error::invalid(
                "kl_last_steps",
                0,
                "must be ≥ 1 sampler step (`None` for all steps)",
            ));
        }
        if self.reference_refresh == Some(0) {
            return Err(Error::invalid("reference_refresh", 0, "must be ≥ 1 round"));
        }
        for comp in &self.estimator.components {
            let g = comp.group.unwrap_or(self.group_size);
            if !self.batch().is_multiple_of(g) {
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
pub(super) fn last_steps(
    t: &crate::sample::Trajectory,
    n: Option<usize>,
) -> crate::sample::Trajectory {
    let skip = n.map_or(0, |n| t.steps.len().saturating_sub(n));
    crate::sample::Trajectory {
        steps: t.steps[skip..].to_vec(),
    }
}

/// Metrics of one round, written under the names TRL's `GRPOTrainer` logs (`reward`, `reward_std`,
/// `frac_reward_zero_std`, `kl`, `entropy`, `clip_ratio/region_mean`, `clip_ratio/low_mean`,
/// `clip_ratio/high_mean`, `grad_norm`, `learning_rate`,
/// `loss`, `rewards/<name>/mean` and `/std`) where it logs one, and sepo's own names for the rest
/// (`eval_reward`, `reward_calls`, `samples_per_s`, `time_*`, `completions`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoundMetrics {
    /// Round index (0-based).
    pub round: u64,
    /// Mean training reward of the round's samples.
    pub reward: f64,
    /// TRL's `reward_std`: the mean over groups of each group's sample standard deviation,
    /// `(1/G) Σ_g √(Σ_{i∈g} (r_i − r̄_g)² / (n_g − 1))` (0 for a group of one), the spread GRPO
    /// divides the advantages by; not the standard deviation of the whole batch.
    pub reward_std: f64,
    /// Mean held-out evaluation reward, if an evaluation reward is set.
    pub eval_reward: Option<f64>,
    /// Mean path KL to the reference along the round's trajectories, when the KL is on (`kl > 0`):
    /// the mean path log-ratio under `InReward`; under `Path`, the closed-form per-step KLs summed
    /// along each path, averaged over its sequences (importance-weighted to the current θ) and over
    /// the round's minibatches.
    pub kl: Option<f64>,
    /// Mean entropy (nats per position) of the model's clean conditionals `p_θ(·|x_{−l})` over the
    /// first 4 samples (absorbing graph: `L` masked forwards each) or 16 (uniform graph).
    pub entropy: f64,
    /// Fraction of clipped PPO terms (weighted, either side of the clip region), averaged over
    /// minibatches: TRL's `clip_ratio/region_mean`.
    #[serde(rename = "clip_ratio/region_mean", alias = "clip_ratio")]
    pub clip_ratio: f64,
    /// Fraction clipped below (`ρ < 1 − ε` with a negative advantage), averaged over minibatches:
    /// TRL's `clip_ratio/low_mean`. `clip_low + clip_high = clip_ratio`.
    #[serde(rename = "clip_ratio/low_mean", default)]
    pub clip_low: f64,
    /// Fraction clipped above (`ρ > 1 + ε` with a positive advantage), averaged over minibatches:
    /// TRL's `clip_ratio/high_mean`.
    #[serde(rename = "clip_ratio/high_mean", default)]
    pub clip_high: f64,
    /// Gradient norm before clipping, averaged over minibatches.
    pub grad_norm: f64,
    /// Learning rate of the last step.
    pub learning_rate: f64,
    /// Mean PPO loss.
    pub loss: f64,
    /// Fraction of groups whose rewards were all equal (zero advantage): TRL's
    /// `frac_reward_zero_std`.
    #[serde(rename = "frac_reward_zero_std", alias = "zero_std_fraction")]
    pub zero_std_fraction: f64,
    /// Per reward function, TRL's `rewards/<name>/mean` and `rewards/<name>/std` (the sample
    /// standard deviation over the batch, `n − 1` in the denominator), `<name>` each component's
    /// name when the training reward is a sum of named terms
    /// ([`Reward::components`](crate::reward::Reward::components)), else the training reward's
    /// [`Reward::name`](crate::reward::Reward::name). Written as top-level keys.
    #[serde(flatten)]
    pub rewards: std::collections::BTreeMap<String, f64>,
    /// Training-reward evaluations this round (`groups × group_size` unless the allocation is
    /// adaptive, which may spend less than its budget).
    #[serde(default)]
    pub reward_calls: usize,
    /// Samples drawn per second of sampling.
    pub samples_per_s: f64,
    /// Seconds spent sampling.
    pub time_sample: f64,
    /// Seconds spent scoring rewards.
    pub time_score: f64,
    /// Seconds spent in loss, backward and optimiser.
    pub time_backward: f64,
    /// The first completion of each group (at most 8), token ids, on the rounds whose index is a
    /// multiple of [`Finetuner::log_completions`](super::Finetuner::log_completions); empty (and
    /// not written) otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<Vec<usize>>,
}

/// TRL's `reward_std` (see [`RoundMetrics::reward_std`]) over `groups` of `rewards`.
pub(super) fn mean_group_std(groups: &[std::ops::Range<usize>], rewards: &[f64]) -> f64 {
    if groups.is_empty() {
        return 0.0;
    }
    let total: f64 = groups.iter().map(|g| sample_std(&rewards[g.clone()])).sum();
    total / groups.len() as f64
}

/// `√(Σ (x − x̄)² / (n − 1))`, 0 when `n < 2`.
pub(super) fn sample_std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod metric_tests {
    use super::*;

    /// `reward_std` against hand-computed values: groups [0, 2] (sd √2) and [1, 1, 4] (sd √3) give
    /// (√2 + √3)/2; a group of one counts 0; the names written are TRL's.
    #[test]
    fn reward_std_is_the_mean_of_group_sample_stds_and_names_are_trls() {
        let rewards = [0.0, 2.0, 1.0, 1.0, 4.0, 7.0];
        let groups = [0..2, 2..5, 5..6];
        let expected = (2f64.sqrt() + 3f64.sqrt() + 0.0) / 3.0;
        assert!((mean_group_std(&groups, &rewards) - expected).abs() < 1e-15);
        let mut m = RoundMetrics::default();
        m.rewards.insert("rewards/gc/mean".into(), 0.5);
        let v = serde_json::to_value(&m).unwrap();
        for k in [
            "clip_ratio/region_mean",
            "clip_ratio/low_mean",
            "clip_ratio/high_mean",
            "frac_reward_zero_std",
            "rewards/gc/mean",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(v.get("completions").is_none());
        let back: RoundMetrics = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }
}
