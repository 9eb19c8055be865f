//! One round, as stages: **draw** (one pass, or several under an adaptive allocation) and score the
//! training rewards, **shape** them with the KL, the **advantages** (this file); then the evaluation
//! **score**, the **epochs** of AdamW updates over minibatches and the **metrics** (`stages.rs`).

use std::time::Instant;

use rand::Rng;

use super::config::last_steps;
use super::{Finetuner, KlMode, LogProb, RoundMetrics};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::PpoObjective;
use crate::policy::{control_variate_advantages, path_log_prob, snis_advantages, Reweight};
use crate::reward::{evaluate_flat, Reward};
use crate::sample::{Condition, Samples, Trajectory};
use crate::schedule::NoiseSchedule;
use crate::score::Params;
use crate::score::ScoreModel;
use crate::train::step_rng;
use crate::train::Planner;

/// A round's draws: the samples grouped by prompt, their training rewards, the group sizes (with
/// prompts) and the planner that allocated them (to be committed with the round).
pub(super) struct Drawn {
    pub(super) samples: Samples,
    pub(super) rewards: Vec<f64>,
    pub(super) sizes: Option<Vec<usize>>,
    pub(super) planner: Option<Planner>,
    pub(super) time_sample: f64,
    pub(super) time_score: f64,
}

/// One draw of the policy-gradient estimate ([`Finetuner::gradient_estimate`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GradientEstimate {
    /// `Ĝ`, flat over the parameters in store order.
    pub gradient: Vec<f64>,
    /// Training-reward evaluations it took.
    pub reward_calls: usize,
    /// Fraction of its groups whose rewards were all equal.
    pub zero_std_fraction: f64,
}

/// Contiguous row ranges of groups of the given sizes.
fn ranges(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            start += n;
            start - n..start
        })
        .collect()
}

/// A round's samples with what the optimisation reads: the snapshot `θ_old` they were drawn from,
/// the draw, the shaped rewards (and the mean path log-ratio when the KL is in the reward) and the
/// advantages, one vector per estimator component.
struct Prepared<P> {
    old: P,
    drawn: Drawn,
    shaped: Vec<f64>,
    kl_in_reward: Option<f64>,
    advantages: Vec<Vec<f64>>,
}

impl<M, G, S, R> Finetuner<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// The stages of a round before the optimisation, shared by [`Finetuner::round`] and
    /// [`Finetuner::gradient_estimate`]: snapshot `θ_old`, **draw** and score the samples
    /// ([`Self::draw`]), **shape** the rewards with the KL ([`Self::shaped_rewards`]) and compute
    /// the **advantages** of every estimator component ([`Self::advantages`]).
    fn prepare<Rn: Rng>(&self, rng: &mut Rn) -> Result<Prepared<Params<M>>> {
        let old = self.model.params().snapshot();
        let drawn = self.draw(&old, self.records_paths(), rng)?;
        let (shaped, kl_in_reward) = self.shaped_rewards(&drawn.samples, &drawn.rewards)?;
        let advantages = self.advantages(
            &old,
            &drawn.samples,
            (&drawn.rewards, &shaped),
            drawn.sizes.as_deref(),
            rng,
        )?;
        Ok(Prepared {
            old,
            drawn,
            shaped,
            kl_in_reward,
            advantages,
        })
    }

    /// One round as its stages, each a function: **draw** the samples and score their training rewards,
    /// **shape** the rewards and compute the **advantages** ([`Self::prepare`]); **score** the evaluation
    /// reward ([`Self::score_eval`]); commit the allocation; the **epochs** of AdamW updates
    /// ([`Self::epochs`]); then the round's **metrics** ([`Self::metrics`]).
    pub(super) fn round_inner(&mut self) -> Result<RoundMetrics> {
        let mut rng = step_rng(self.config.seed, self.round);
        let Prepared {
            old,
            mut drawn,
            shaped,
            kl_in_reward,
            advantages,
        } = self.prepare(&mut rng)?;
        let scored = self.score_eval(&drawn)?;
        let groups = self.commit_allocation(
            drawn.planner.take(),
            &drawn.sizes,
            &old,
            &drawn.samples,
            &shaped,
            &mut rng,
        )?;
        let stats = self.epochs(&old, &drawn.samples, &advantages, &mut rng)?;
        let entropy = self.entropy(&drawn.samples)?;
        self.round += 1;
        if let Some(every) = self.config.reference_refresh {
            if self.round.is_multiple_of(every) {
                self.reference = self.model.params().snapshot();
            }
        }
        Ok(self.metrics(&drawn, &groups, scored, kl_in_reward, entropy, &stats))
    }

    /// Reward shaping: the rewards the gradient sees. With the KL in the reward, `r − β·[log P_θ_old(path) −
    /// log P_ref(path)]` over the recorded paths (and the mean log-ratio), else the rewards as they are.
    fn shaped_rewards(
        &self,
        samples: &Samples,
        rewards: &[f64],
    ) -> Result<(Vec<f64>, Option<f64>)> {
        let c = &self.config;
        match (&samples.trajectory, c.kl_mode) {
            (Some(t), KlMode::InReward) if c.kl > 0.0 => {
                let log_ratio = self.path_log_ratio(&last_steps(t, c.kl_last_steps))?;
                let shaped = rewards
                    .iter()
                    .zip(&log_ratio)
                    .map(|(r, d)| r - c.kl * d)
                    .collect();
                let mean = log_ratio.iter().sum::<f64>() / rewards.len().max(1) as f64;
                Ok((shaped, Some(mean)))
            }
            _ => Ok((rewards.to_vec(), None)),
        }
    }

    /// The round's groups as row ranges; with prompts, also records each prompt's spread in the
    /// planner (Neyman and Adaptive: one extra backward pass, see `spread_norms`) and keeps it.
    fn commit_allocation<Rn: Rng>(
        &mut self,
        planner: Option<Planner>,
        sizes: &Option<Vec<usize>>,
        old: &Params<M>,
        samples: &Samples,
        shaped: &[f64],
        rng: &mut Rn,
    ) -> Result<Vec<std::ops::Range<usize>>> {
        let c = &self.config;
        let uniform = vec![c.group_size; samples.batch / c.group_size];
        let groups = ranges(sizes.as_deref().unwrap_or(&uniform));
        if let Some(mut planner) = planner {
            if planner.allocator.is_some() {
                let norms = self.spread_norms(old, samples, &groups, shaped, rng)?;
                let rewards: Vec<Vec<f64>> =
                    groups.iter().map(|g| shaped[g.clone()].to_vec()).collect();
                planner.observe(&rewards, &norms)?;
            }
            self.planner = Some(planner);
        }
        Ok(groups)
    }

    /// One draw of the policy-gradient estimate at the current parameters, as a round would draw it
    /// (allocation included, whose state it updates) but without any step: the ascent direction
    /// `Ĝ = −∇loss` of the estimator's surrogate over the whole round at `θ = θ_old` (no KL, no
    /// entropy bonus, no clipping), i.e. `Ĝ = (1/B) Σ_b w_b A_b ∇log π(x_b)` (`w_b` the prompt
    /// weights of unequal groups). For measuring an estimator's or an allocation's variance; `seed`
    /// seeds its draws.
    pub fn gradient_estimate(&mut self, seed: u64) -> Result<GradientEstimate> {
        let mut rng = step_rng(seed, u64::MAX - self.round);
        let Prepared {
            old,
            drawn,
            shaped,
            advantages: adv,
            ..
        } = self.prepare(&mut rng)?;
        // On any error below the planner is as it was: the estimate is all or nothing.
        let saved = self.planner.clone();
        let result = self.estimate_after_draw(&old, drawn, &shaped, &adv, &mut rng);
        if result.is_err() {
            self.planner = saved;
        }
        result
    }

    fn estimate_after_draw<Rn: Rng>(
        &mut self,
        old: &Params<M>,
        drawn: Drawn,
        shaped: &[f64],
        adv: &[Vec<f64>],
        rng: &mut Rn,
    ) -> Result<GradientEstimate> {
        let groups = self.commit_allocation(
            drawn.planner,
            &drawn.sizes,
            old,
            &drawn.samples,
            shaped,
            rng,
        )?;
        let objectives: Vec<PpoObjective<'_>> = self
            .config
            .estimator
            .components
            .iter()
            .zip(adv)
            .map(|(comp, a)| PpoObjective {
                scale: comp.weight,
                advantage: a,
                clip: None,
            })
            .collect();
        let s = &drawn.samples;
        let (grads, _) = self.surrogate_grads(
            old,
            &s.tokens,
            s.batch,
            s.trajectory.as_ref(),
            &objectives,
            rng,
        )?;
        let zero = zero_std_groups(&groups, &drawn.rewards);
        Ok(GradientEstimate {
            gradient: grads.flat_f64().iter().map(|g| -g).collect(),
            reward_calls: s.batch,
            zero_std_fraction: zero as f64 / groups.len() as f64,
        })
    }

    /// Draws and scores a round: `groups × group_size` samples at once without prompts; with prompts,
    /// the passes of the configured allocation, stacked and regrouped by prompt.
    fn draw<Rn: Rng>(&self, old: &Params<M>, record: bool, rng: &mut Rn) -> Result<Drawn> {
        let c = &self.config;
        if self.prompts.is_empty() && c.allocation != crate::train::Allocation::Uniform {
            return Err(Error::invalid(
                "allocation",
                format!("{:?}", c.allocation),
                "splits a round's draws across prompts: call `with_prompts` first",
            ));
        }
        if self.prompts.is_empty() {
            let clock = Instant::now();
            let samples = self.sample_with(old, c.batch(), record, rng)?;
            let time_sample = clock.elapsed().as_secs_f64();
            let clock = Instant::now();
            let rewards = evaluate_flat(&self.reward, &samples.tokens, c.seq_len)?;
            return Ok(Drawn {
                samples,
                rewards,
                sizes: None,
                planner: None,
                time_sample,
                time_score: clock.elapsed().as_secs_f64(),
            });
        }
        let planner = match &self.planner {
            Some(p)
                if p.allocation == c.allocation
                    && p.prompts() == self.prompts.len()
                    && p.uniform_budget == c.batch() =>
            {
                p.clone()
            }
            _ => Planner::new(c.allocation, self.prompts.len(), c.batch())?,
        };
        let (mut time_sample, mut time_score) = (0.0, 0.0);
        let mut parts = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        let mut flat_rewards: Vec<f64> = Vec::new();
        let (per_prompt, _) = planner.round(|counts| {
            let mut fixed = Vec::with_capacity(counts.iter().sum::<usize>() * c.seq_len);
            for (i, &n) in counts.iter().enumerate() {
                for _ in 0..n {
                    fixed.extend((0..c.seq_len).map(|l| self.prompts[i].get(l).copied()));
                    owner.push(i);
                }
            }
            let held: Vec<bool> = fixed.iter().map(Option::is_some).collect();
            let condition = Condition::per_sequence(fixed);
            let clock = Instant::now();
            let total = counts.iter().sum();
            let s = self.sample_conditioned(old, total, record, Some(&condition), rng)?;
            time_sample += clock.elapsed().as_secs_f64();
            let clock = Instant::now();
            let r = evaluate_flat(&self.reward, &s.tokens, c.seq_len)?;
            time_score += clock.elapsed().as_secs_f64();
            let mut out = vec![Vec::new(); counts.len()];
            let first = owner.len() - total;
            for (k, &v) in r.iter().enumerate() {
                out[owner[first + k]].push(v);
            }
            flat_rewards.extend(r);
            parts.push((s, held));
            Ok(out)
        })?;
        let stacked = Samples::stack(parts)?;
        // Regroup by prompt, draw order kept within a prompt.
        let mut rows: Vec<usize> = (0..owner.len()).collect();
        rows.sort_by_key(|&k| owner[k]);
        let rewards = rows.iter().map(|&k| flat_rewards[k]).collect();
        Ok(Drawn {
            samples: stacked.select(&rows),
            rewards,
            sizes: Some(per_prompt.iter().map(Vec::len).collect()),
            planner: Some(planner),
            time_sample,
            time_score,
        })
    }

    /// Whether the round records the sampler's paths: for the trajectory log-probability, the KL, or a
    /// component that weighs by the path log-ratio to the reference.
    fn records_paths(&self) -> bool {
        let c = &self.config;
        matches!(c.log_prob, LogProb::Trajectory | LogProb::Events { .. })
            || c.kl > 0.0
            || c.estimator
                .components
                .iter()
                .any(|comp| comp.reweight.needs_reference_ratio())
    }

    /// Each component's advantages: its baseline over its groups (with prompt groups of `sizes` and
    /// no `group` of its own, per prompt), then its [`Reweight`], then, with prompt groups, scaled by
    /// `w_i = B/(P·n_i)` so that every prompt weighs the same in the surrogate
    /// `(1/B) Σ_b w_b A_b ρ_b = (1/P) Σ_i (1/n_i) Σ_j A_ij ρ_ij` (`w = 1` for equal groups; PPO's
    /// `min(ρA, clip(ρ)A)` is positively homogeneous in `A`, so the clip is unchanged). The path
    /// log-ratios to the reference and the squared score norms are computed once, if a component
    /// needs them.
    fn advantages<Rn: Rng>(
        &self,
        old: &Params<M>,
        samples: &Samples,
        (raw, shaped): (&[f64], &[f64]),
        sizes: Option<&[usize]>,
        rng: &mut Rn,
    ) -> Result<Vec<Vec<f64>>> {
        let c = &self.config;
        let comps = &c.estimator.components;
        let log_ratio = match comps.iter().any(|k| k.reweight.needs_reference_ratio()) {
            true => Some(self.reference_log_ratio(samples)?),
            false => None,
        };
        let norms = match comps.iter().any(|k| k.reweight.needs_score_norms()) {
            true => Some(self.score_norms(old, samples, rng)?),
            false => None,
        };
        comps
            .iter()
            .map(|comp| {
                let groups = match (sizes, comp.group) {
                    (Some(sizes), None) => sizes.to_vec(),
                    (_, g) => {
                        let g = g.unwrap_or(c.group_size);
                        vec![g; shaped.len() / g]
                    }
                };
                let base = comp.advantages_by_group(shaped, &groups)?;
                let a = match comp.reweight {
                    Reweight::None => base,
                    // SNIS weighs towards p_ref·exp(r/τ) with its own reference ratio: the raw
                    // rewards, or an in-reward KL would count that ratio twice.
                    Reweight::Snis { temperature } => snis_advantages(
                        raw,
                        log_ratio.as_deref().expect("computed above"),
                        &groups,
                        temperature,
                    )?,
                    Reweight::ControlVariate => control_variate_advantages(
                        &base,
                        norms.as_deref().expect("computed above"),
                        &groups,
                    )?,
                };
                Ok(match (sizes, comp.group) {
                    (Some(sizes), None) => {
                        let (b, p) = (shaped.len() as f64, sizes.len() as f64);
                        let weight = sizes
                            .iter()
                            .flat_map(|&n| std::iter::repeat_n(b / (p * n as f64), n));
                        a.iter().zip(weight).map(|(a, w)| a * w).collect()
                    }
                    _ => a,
                })
            })
            .collect()
    }

    /// `log P_old(path) − log P_ref(path)` of every recorded path (all steps).
    fn reference_log_ratio(&self, samples: &Samples) -> Result<Vec<f64>> {
        let t = samples.trajectory.as_ref().ok_or(Error::invalid(
            "estimator",
            "snis",
            "needs recorded paths",
        ))?;
        self.path_log_ratio(t)
    }

    /// `log P_old(path) − log P_ref(path)` over the steps of `t` (`t.log_prob()` was recorded under
    /// θ_old; the reference's is recomputed).
    fn path_log_ratio(&self, t: &Trajectory) -> Result<Vec<f64>> {
        let reference = path_log_prob(&self.model, &self.reference, &self.diffusion.graph, t)?;
        Ok(t.log_prob()
            .iter()
            .zip(&reference)
            .map(|(p, q)| p - q)
            .collect())
    }
}

/// Groups (row ranges of `rewards`) whose rewards are all equal: they carry no GRPO signal.
pub(super) fn zero_std_groups(groups: &[std::ops::Range<usize>], rewards: &[f64]) -> usize {
    groups
        .iter()
        .filter(|g| rewards[(*g).clone()].iter().all(|&r| r == rewards[g.start]))
        .count()
}

#[cfg(test)]
mod tests {
    use dfdx::prelude::*;

    use crate::graph::Absorbing;
    use crate::nn::AdamW;
    use crate::reward::FnReward;
    use crate::schedule::LogLinear;
    use crate::score::{Mlp, MlpConfig, ScoreHead, ScoreModel};
    use crate::train::finetune::{FinetuneConfig, Finetuner};
    use crate::Error;

    /// A learning rate that is finite in f64 but overflows f32 (`1e39 > 3.4e38`) makes the update
    /// non-finite with a finite gradient: the round is a typed error and the parameters are those from
    /// before it, never NaN.
    #[test]
    fn non_finite_parameters_after_a_step_are_an_error_and_are_not_kept() {
        let model = Mlp::<f32, Cpu>::new(
            MlpConfig::tiny(3, 2, ScoreHead::Absorbing),
            &Cpu::default(),
            1,
        )
        .unwrap();
        let before = model.params().flat_f64();
        let count: fn(&[usize]) -> f64 = |x| x.iter().filter(|&&t| t == 0).count() as f64;
        let mut ft = Finetuner::new(
            model,
            Absorbing::with_tokens(2).unwrap(),
            LogLinear::default(),
            FnReward::new("zeros", count),
            FinetuneConfig {
                groups: 1,
                group_size: 4,
                minibatch: 4,
                epochs: 1,
                optimizer: AdamW::with_lr(1e39),
                ..FinetuneConfig::new(2)
            },
        )
        .unwrap();
        match ft.round() {
            Err(Error::Diverged { what, .. }) => assert_eq!(what, "parameters"),
            other => panic!("expected Diverged {{ parameters }}, got {other:?}"),
        }
        assert_eq!(ft.model.params().flat_f64(), before);
    }
}
