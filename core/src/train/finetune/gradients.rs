//! Gradients of one minibatch: the PPO surrogate of the estimator mixture, the path KL to the
//! reference and the entropy bonus; and the per-prompt gradient spread behind Neyman targets.

use dfdx::prelude::*;
use rand::Rng;

use super::{Finetuner, KlMode, LogProb};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::{path_kl, PpoObjective};
use crate::nn::{to_f64s, Grads, ParamStore};
use crate::policy::{clean_log_scores, conditional_log_weights};
use crate::reward::Reward;
use crate::sample::{Samples, Trajectory};
use crate::schedule::NoiseSchedule;
use crate::score::ScoreModel;
use crate::train::step_rng;

impl<E, D, M, G, S, R> Finetuner<E, D, M, G, S, R>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// Gradient of the minibatch's loss: PPO surrogate + β·KL − entropy bonus.
    pub(super) fn minibatch_grads<Rn: Rng>(
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
        let trajectory = rows_of(samples, rows.clone());
        let (mut grads, stats) =
            self.surrogate_grads(old, x, b, trajectory.as_ref(), &objectives, rng)?;
        // The path KL as a loss in `Path` mode only: `InReward` already put it in the rewards. With
        // β = 0 it is not computed at all (a reference and a taped forward per step would double the
        // cost of the default `Trajectory` estimator just for a metric).
        let mut kl_value = None;
        if let (Some(t), true) = (trajectory.as_ref(), c.kl > 0.0 && c.kl_mode == KlMode::Path) {
            let (kl, g) = path_kl(
                &self.model,
                &self.reference,
                &self.graph,
                t,
                c.kl_last_steps,
                c.kl,
                true,
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
            LogProb::Trajectory | LogProb::Events { .. } => (
                crate::policy::CleanScores::Unmasked,
                self.schedule.total(self.config.sampler.config().eps),
            ),
        }
    }

    /// Mean entropy (nats per position) of the clean-end conditionals `c_l(·)` of up to 16 samples.
    pub(super) fn entropy(&self, samples: &Samples) -> Result<f64> {
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

    /// Gradient of the PPO surrogate alone over the sequences `x` (`batch` of them) and their paths.
    pub(super) fn surrogate_grads<Rn: Rng>(
        &self,
        old: &ParamStore<E, D>,
        x: &[usize],
        batch: usize,
        trajectory: Option<&Trajectory>,
        objectives: &[PpoObjective<'_>],
        rng: &mut Rn,
    ) -> Result<(Grads<E, D>, crate::loss::PpoStats)> {
        match self.config.log_prob {
            // Chunked over samples so that taped forwards stay bounded (Masked reads B·L sequences).
            LogProb::ConcreteScore(est) => est.grads(
                &self.model,
                old,
                &self.graph,
                &self.schedule,
                x,
                batch,
                objectives,
                rng,
            ),
            LogProb::Trajectory => {
                let t = trajectory.ok_or(Error::invalid(
                    "log_prob",
                    "Trajectory",
                    "needs recorded trajectories",
                ))?;
                crate::policy::trajectory_ppo_grads(&self.model, &self.graph, t, objectives)
            }
            LogProb::Events { positions } => {
                let t = trajectory.ok_or(Error::invalid(
                    "log_prob",
                    "Events",
                    "needs recorded trajectories",
                ))?;
                crate::policy::events_ppo_grads(
                    &self.model,
                    old,
                    &self.graph,
                    t,
                    positions,
                    objectives,
                    rng,
                )
            }
        }
    }

    /// `‖∇log π(x_b)‖²` of every sample at `θ_old`, for the `control_variate` component: one backward
    /// pass per sample (the surrogate of one sample with advantage 1 at `ρ = 1` has gradient
    /// `−∇log π(x_b)`).
    pub(super) fn score_norms<Rn: Rng>(
        &self,
        old: &ParamStore<E, D>,
        samples: &Samples,
        rng: &mut Rn,
    ) -> Result<Vec<f64>> {
        let l = self.config.seq_len;
        let one = [1.0];
        let objectives = PpoObjective::single(&one, None);
        (0..samples.batch)
            .map(|b| {
                let x = &samples.tokens[b * l..(b + 1) * l];
                let trajectory = rows_of(samples, b..b + 1);
                let (g, _) =
                    self.surrogate_grads(old, x, 1, trajectory.as_ref(), &objectives, rng)?;
                let s = g.global_norm().powi(2);
                if !s.is_finite() {
                    return Err(Error::Diverged {
                        what: "score norm",
                        step: self.state.step,
                    });
                }
                Ok(s)
            })
            .collect()
    }

    /// Per-prompt spread of the policy-gradient terms at `θ_old`, for Neyman targets: for the group
    /// of prompt `i` (rows `rows[i]`, shaped rewards `r_ij`), with Rademacher signs `c_j`,
    /// `S_i = ‖Σ_j c_j (r_ij − r̄_i) ∇log π(x_ij)‖²`, an unbiased estimate of
    /// `Σ_j (r_ij − r̄_i)²·‖∇log π(x_ij)‖²` (`E[c_j c_k] = δ_jk`) from one backward pass per prompt, in
    /// all one extra pass over the round's samples. Returned as per-draw gradient norms
    /// `g_ij = sqrt(S_i / Σ_j (r_ij − r̄_i)²)` (1 for a constant group), which reproduce `S_i` in
    /// [`Allocator::observe`](crate::weight::Allocator::observe).
    pub(super) fn spread_norms<Rn: Rng>(
        &self,
        old: &ParamStore<E, D>,
        samples: &Samples,
        groups: &[std::ops::Range<usize>],
        rewards: &[f64],
        rng: &mut Rn,
    ) -> Result<Vec<Vec<f64>>> {
        let l = self.config.seq_len;
        let mut out = Vec::with_capacity(groups.len());
        for rows in groups {
            let r = &rewards[rows.clone()];
            let mean = r.iter().sum::<f64>() / r.len().max(1) as f64;
            let squares: f64 = r.iter().map(|x| (x - mean).powi(2)).sum();
            if squares == 0.0 {
                out.push(vec![1.0; r.len()]);
                continue;
            }
            let signed: Vec<f64> = r
                .iter()
                .map(|x| {
                    if rng.gen::<bool>() {
                        x - mean
                    } else {
                        mean - x
                    }
                })
                .collect();
            let objectives = PpoObjective::single(&signed, None);
            let x = &samples.tokens[rows.start * l..rows.end * l];
            let trajectory = rows_of(samples, rows.clone());
            let (grads, _) =
                self.surrogate_grads(old, x, rows.len(), trajectory.as_ref(), &objectives, rng)?;
            // The surrogate averages over its rows: undo the 1/n.
            let s = (grads.global_norm() * rows.len() as f64).powi(2);
            if !s.is_finite() {
                return Err(Error::Diverged {
                    what: "per-prompt gradient spread",
                    step: self.state.step,
                });
            }
            out.push(vec![(s / squares).sqrt(); r.len()]);
        }
        Ok(out)
    }
}

/// The paths of the sequences `rows`, if recorded.
fn rows_of(samples: &Samples, rows: std::ops::Range<usize>) -> Option<Trajectory> {
    samples.trajectory.as_ref().map(|t| Trajectory {
        steps: t.steps.iter().map(|s| s.rows(rows.clone())).collect(),
    })
}
