//! The stages of a round after the draw ([`super::round`] has draw → shape → advantages): **score** the
//! evaluation reward, the **epochs** of AdamW updates, and the round's **metrics**. Each takes its
//! inputs explicitly, so a round reads as the list of these calls in `round_inner`.

use std::ops::Range;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::Rng;

use super::round::Drawn;
use super::{Finetuner, KlMode, RoundMetrics};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::reward::{evaluate_flat, Reward};
use crate::sample::Samples;
use crate::schedule::NoiseSchedule;
use crate::score::{Params, ScoreModel};

/// The score stage's output: the evaluation reward's batch mean (when one is set) and the seconds
/// spent scoring, the training rewards' included.
pub(super) struct Scored {
    eval: Option<f64>,
    seconds: f64,
}

/// The epochs stage's output: sums over its AdamW updates (the metrics report their means), the last
/// learning rate and the seconds spent.
pub(super) struct EpochStats {
    clip: f64,
    clip_low: f64,
    clip_high: f64,
    grad_norm: f64,
    loss: f64,
    kl: f64,
    updates: usize,
    lr: f64,
    seconds: f64,
}

impl EpochStats {
    /// `sum / max(updates, 1)`: the mean over the round's updates.
    fn mean(&self, sum: f64) -> f64 {
        sum / self.updates.max(1) as f64
    }
}

impl<M, G, S, R> Finetuner<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// **Score**: the evaluation reward's mean over the drawn samples (`None` without one), timed
    /// together with the training rewards' scoring of the draw.
    pub(super) fn score_eval(&self, drawn: &Drawn) -> Result<Scored> {
        let clock = Instant::now();
        let eval = match &self.eval_reward {
            Some(r) => {
                let v = evaluate_flat(r.as_ref(), &drawn.samples.tokens, self.config.seq_len)?;
                Some(v.iter().sum::<f64>() / v.len() as f64)
            }
            None => None,
        };
        Ok(Scored {
            eval,
            seconds: drawn.time_score + clock.elapsed().as_secs_f64(),
        })
    }

    /// **Epochs**: `epochs` passes over the samples in shuffled minibatches, one AdamW update (with the
    /// schedule and clipping of [`crate::nn::Optimizer`]) per minibatch on the estimator's loss against
    /// `θ_old` and the advantages. Parameters that come out non-finite are [`Error::Diverged`] (the
    /// caller, [`Finetuner::round`], restores the state from before the round).
    pub(super) fn epochs<Rn: Rng>(
        &mut self,
        old: &Params<M>,
        samples: &Samples,
        advantages: &[Vec<f64>],
        rng: &mut Rn,
    ) -> Result<EpochStats> {
        let (epochs, minibatch) = (self.config.epochs, self.config.minibatch);
        let batch = samples.batch;
        let clock = Instant::now();
        let mut stats = EpochStats {
            clip: 0.0,
            clip_low: 0.0,
            clip_high: 0.0,
            grad_norm: 0.0,
            loss: 0.0,
            kl: 0.0,
            updates: 0,
            lr: self.config.optimizer.lr,
            seconds: 0.0,
        };
        let optimizer = self.config.to_optimizer();
        let mut order: Vec<usize> = (0..batch.div_ceil(minibatch)).collect();
        for _ in 0..epochs {
            order.shuffle(rng);
            for &chunk in &order {
                let rows = chunk * minibatch..((chunk + 1) * minibatch).min(batch);
                let (mut grads, step, kl) =
                    self.minibatch_grads(old, samples, rows, advantages, rng)?;
                let index = self.state.step;
                let params = self.model.params_mut();
                let update = optimizer.apply(index, params, &mut self.state, &mut grads)?;
                stats.lr = update.lr;
                stats.clip += step.clip_ratio;
                stats.clip_low += step.clip_low;
                stats.clip_high += step.clip_high;
                stats.grad_norm += update.grad_norm;
                stats.loss += step.loss;
                stats.kl += kl.unwrap_or(0.0);
                stats.updates += 1;
            }
        }
        stats.seconds = clock.elapsed().as_secs_f64();
        // A finite gradient can still give non-finite parameters (an update that overflows the
        // parameters' dtype).
        if self
            .model
            .params()
            .flat_f64()
            .iter()
            .any(|v| !v.is_finite())
        {
            return Err(Error::Diverged {
                what: "parameters",
                step: self.state.step,
            });
        }
        Ok(stats)
    }

    /// **Metrics** of the round just completed (`self.round` already advanced): TRL's names
    /// ([`RoundMetrics`]) from the draw, its groups, the scores, the KL (in the reward, or the path KL's
    /// mean over the updates), the entropy and the epochs' statistics.
    pub(super) fn metrics(
        &self,
        drawn: &Drawn,
        groups: &[Range<usize>],
        scored: Scored,
        kl_in_reward: Option<f64>,
        entropy: f64,
        stats: &EpochStats,
    ) -> RoundMetrics {
        let c = &self.config;
        let (samples, rewards) = (&drawn.samples, &drawn.rewards);
        let batch = samples.batch;
        let mean = rewards.iter().sum::<f64>() / batch as f64;
        // TRL's `rewards/<name>/mean` and `/std`: per component when the reward is a sum of named
        // terms, else of the reward itself.
        let seqs: Vec<&[usize]> = samples.tokens.chunks(c.seq_len).collect();
        let parts = self
            .reward
            .components(&seqs)
            .unwrap_or_else(|| vec![(self.reward.name(), rewards.to_vec())]);
        let per_reward: Vec<(String, f64)> = parts
            .iter()
            .flat_map(|(name, v)| {
                let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
                [
                    (format!("rewards/{name}/mean"), m),
                    (format!("rewards/{name}/std"), super::config::sample_std(v)),
                ]
            })
            .collect();
        let log_completions = self
            .log_completions
            .is_some_and(|every| every > 0 && (self.round - 1).is_multiple_of(every));
        let completions = match log_completions {
            true => groups
                .iter()
                .take(8)
                .map(|g| samples.tokens[g.start * c.seq_len..(g.start + 1) * c.seq_len].to_vec())
                .collect(),
            false => Vec::new(),
        };
        let path_kl = c.kl > 0.0 && c.kl_mode == KlMode::Path;
        RoundMetrics {
            round: self.round - 1,
            reward: mean,
            reward_std: super::config::mean_group_std(groups, rewards),
            rewards: per_reward.into_iter().collect(),
            completions,
            eval_reward: scored.eval,
            kl: kl_in_reward.or(path_kl.then_some(stats.mean(stats.kl))),
            entropy,
            clip_ratio: stats.mean(stats.clip),
            clip_low: stats.mean(stats.clip_low),
            clip_high: stats.mean(stats.clip_high),
            grad_norm: stats.mean(stats.grad_norm),
            learning_rate: stats.lr,
            loss: stats.mean(stats.loss),
            zero_std_fraction: super::round::zero_std_groups(groups, rewards) as f64
                / groups.len() as f64,
            reward_calls: batch,
            samples_per_s: batch as f64 / drawn.time_sample.max(1e-9),
            time_sample: drawn.time_sample,
            time_score: scored.seconds,
            time_backward: stats.seconds,
        }
    }
}
