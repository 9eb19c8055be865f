//! Gradients of one minibatch: the PPO surrogate of the estimator mixture, the path KL to the
//! reference and the entropy bonus; and the per-prompt gradient spread behind Neyman targets.

use dfdx::prelude::*;
use rand::Rng;

use super::{Finetuner, KlMode, LogProb};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::{path_kl, KlBaseline, KlGradient, PpoObjective};
use crate::nn::{upload, Grads};
use crate::policy::{clean_entropy, clean_log_scores, CleanScores, GRAD_TOKENS};
use crate::reward::Reward;
use crate::sample::{Samples, Trajectory};
use crate::schedule::NoiseSchedule;
use crate::score::ModelGrads;
use crate::score::ScoreModel;
use crate::score::{Params, Policy};
use crate::sequences::Sequences;

impl<M, G, S, R> Finetuner<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// Gradient of the minibatch's loss: PPO surrogate + β·KL − entropy bonus.
    pub(super) fn minibatch_grads<Rn: Rng>(
        &self,
        old: &Params<M>,
        samples: &Samples,
        rows: std::ops::Range<usize>,
        adv: &[Vec<f64>],
        rng: &mut Rn,
    ) -> Result<(ModelGrads<M>, crate::loss::PpoStats, Option<f64>)> {
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
        // cost of the default `Trajectory` estimator just for a metric). Its gradient includes the
        // score-function term (the KL still to come after each step), importance-weighted per step
        // from θ_old, with a leave-one-out baseline over the minibatch (`loss::kl`).
        let mut kl_value = None;
        if let (Some(t), true) = (trajectory.as_ref(), c.kl > 0.0 && c.kl_mode == KlMode::Path) {
            let gradient = KlGradient {
                coefficient: c.kl,
                baseline: KlBaseline::LeaveOneOut,
            };
            let (kl, g) = path_kl(
                &self.model,
                &self.reference,
                &self.diffusion.graph,
                t,
                c.kl_last_steps,
                Some(gradient),
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

    /// How the entropy bonus reads the model's clean conditionals, and at which `σ̄`: always a
    /// supervised read. Under the absorbing graph that is the estimator's masked mode (`Masked` or
    /// `MaskedSubset`) when it has one, else `Masked` (for `Trajectory`, and for `Unmasked`, which reads
    /// the unsupervised softmax at unmasked positions); under the uniform graph one unmasked forward.
    fn clean_mode(&self) -> (CleanScores, f64) {
        let (mode, sigma0) = match self.config.log_prob {
            LogProb::ConcreteScore(c) => (c.clean, self.diffusion.schedule.total(c.t0)),
            LogProb::Trajectory | LogProb::Events { .. } => (
                CleanScores::Masked,
                self.diffusion
                    .schedule
                    .total(self.config.sampler.config().eps),
            ),
        };
        let mode = match (self.diffusion.graph.mask(), mode) {
            (None, _) => CleanScores::Unmasked,
            (Some(_), CleanScores::Unmasked) => CleanScores::Masked,
            (Some(_), m) => m,
        };
        (mode, sigma0)
    }

    /// Mean entropy (nats per position) of the model's clean conditionals `p_θ(·|x_{−l})`
    /// ([`clean_entropy`]) over the first samples of the round, at the `σ̄` of [`Self::clean_mode`]:
    /// up to [`ENTROPY_SAMPLES_ABSORBING`] samples under the absorbing graph (every position masked in
    /// turn: `L` tape-free forwards per sample), up to [`ENTROPY_SAMPLES_UNIFORM`] under the uniform
    /// graph (one forward per sample).
    pub(super) fn entropy(&self, samples: &Samples) -> Result<f64> {
        let l = self.config.seq_len;
        let cap = match self.diffusion.graph.mask() {
            Some(_) => ENTROPY_SAMPLES_ABSORBING,
            None => ENTROPY_SAMPLES_UNIFORM,
        };
        let b = samples.batch.min(cap);
        let (_, sigma0) = self.clean_mode();
        clean_entropy(
            &self.model,
            self.model.params(),
            &self.diffusion.graph,
            &samples.tokens[..b * l],
            b,
            sigma0,
        )
    }

    /// Gradient of `−entropy_bonus · H`, `H = (1/(B·L)) Σ_{b,l} w_{b,l} H(p_θ(·|x_{b,−l}))` with the
    /// position weights `w` of the read ([`Self::clean_mode`]: 1, or `L/m` on a subset's positions),
    /// so the bonus lowers the loss as entropy rises. Accumulated over chunks of samples so that every
    /// taped forward sees at most [`GRAD_TOKENS`] tokens (`Masked` forwards `L` sequences per sample).
    fn entropy_grads<Rn: Rng>(
        &self,
        x: &[usize],
        batch: usize,
        rng: &mut Rn,
    ) -> Result<Grads<M::Elem, M::Device>> {
        let (mode, sigma0) = self.clean_mode();
        let l = x.len() / batch.max(1);
        let reads = match mode {
            CleanScores::Masked => l,
            CleanScores::MaskedSubset { positions } => positions.max(1),
            CleanScores::Unmasked => 1,
        };
        let chunk = (GRAD_TOKENS / (reads * l).max(1)).clamp(1, batch.max(1));
        let mut grads = Grads::zeros(self.model.params());
        for start in (0..batch).step_by(chunk) {
            let end = (start + chunk).min(batch);
            let rows = Sequences::new(&x[start * l..end * l], end - start)?;
            let current = Policy::current(&self.model);
            let graph = &self.diffusion.graph;
            let tape = OwnedTape::default();
            let (ls, weight) = clean_log_scores(&current, graph, rows, sigma0, mode, tape, rng)?;
            let shape = *ls.shape();
            let n = shape.2;
            let dev = self.model.params().device().clone();
            // Exclude the mask column from the conditional with a large finite negative logit.
            let bias: Vec<M::Elem> = (0..shape.0 * shape.1 * n)
                .map(|i| {
                    crate::nn::from_f64(if Some(i % n) == self.diffusion.graph.mask() {
                        -1e9
                    } else {
                        0.0
                    })
                })
                .collect();
            let bias = upload(&dev, bias, shape, "entropy bonus (mask bias)")?;
            let log_c = (ls + bias).log_softmax::<Axis<2>>();
            let c = log_c.with_empty_tape().exp();
            // −bonus·H = bonus·Σ w c log c / (B·L), this chunk's share of the batch.
            let scale = self.config.entropy_bonus / (batch * l) as f64;
            let w: Vec<M::Elem> = weight
                .iter()
                .flat_map(|&w| std::iter::repeat_n(crate::nn::from_f64(w * scale), n))
                .collect();
            let w = upload(&dev, w, shape, "entropy bonus (weights)")?;
            let loss = (c * log_c * w).sum::<Rank0, _>();
            grads.add_assign(&Grads::collect(self.model.params(), &mut loss.backward())?);
        }
        Ok(grads)
    }

    /// Gradient of the PPO surrogate alone over the sequences `x` (`batch` of them) and their paths.
    pub(super) fn surrogate_grads<Rn: Rng>(
        &self,
        old: &Params<M>,
        x: &[usize],
        batch: usize,
        trajectory: Option<&Trajectory>,
        objectives: &[PpoObjective<'_>],
        rng: &mut Rn,
    ) -> Result<(ModelGrads<M>, crate::loss::PpoStats)> {
        match self.config.log_prob {
            // Chunked over samples so that taped forwards stay bounded (Masked reads B·L sequences).
            LogProb::ConcreteScore(est) => est.grads(
                &Policy::new(&self.model, old),
                &self.diffusion,
                Sequences::new(x, batch)?,
                objectives,
                rng,
            ),
            LogProb::Trajectory => {
                let t = trajectory.ok_or(Error::invalid(
                    "log_prob",
                    "Trajectory",
                    "needs recorded trajectories",
                ))?;
                crate::policy::trajectory_ppo_grads(
                    &self.model,
                    &self.diffusion.graph,
                    t,
                    objectives,
                )
            }
            LogProb::Events { positions } => {
                let t = trajectory.ok_or(Error::invalid(
                    "log_prob",
                    "Events",
                    "needs recorded trajectories",
                ))?;
                crate::policy::events_ppo_grads(
                    &Policy::new(&self.model, old),
                    &self.diffusion.graph,
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
        old: &Params<M>,
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
        old: &Params<M>,
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

/// Samples read by the entropy metric under the absorbing graph (`L` masked forwards each).
pub const ENTROPY_SAMPLES_ABSORBING: usize = 4;

/// Samples read by the entropy metric under the uniform graph (one forward each).
pub const ENTROPY_SAMPLES_UNIFORM: usize = 16;

/// The paths of the sequences `rows`, if recorded.
fn rows_of(samples: &Samples, rows: std::ops::Range<usize>) -> Option<Trajectory> {
    samples.trajectory.as_ref().map(|t| Trajectory {
        steps: t.steps.iter().map(|s| s.rows(rows.clone())).collect(),
    })
}

#[cfg(test)]
mod tests {
    //! The entropy metric and bonus read the model's supervised clean conditionals `p_θ(·|x_{−l})`
    //! (masked reads under the absorbing graph) under every estimator, `Trajectory` and `Unmasked`
    //! included; checked against the network's raw logits and by finite differences.
    use dfdx::prelude::*;
    use rand::{Rng, SeedableRng};

    use crate::graph::Absorbing;
    use crate::policy::{CleanScores, ConcreteScore};
    use crate::reward::FnReward;
    use crate::sample::Samples;
    use crate::schedule::LogLinear;
    use crate::score::mlp::Activation;
    use crate::score::testing::perturb;
    use crate::score::{Mlp, MlpConfig, ScoreHead, ScoreModel};
    use crate::train::finetune::{FinetuneConfig, Finetuner, LogProb};

    const L: usize = 3;
    const N: usize = 5;

    type Tuner = Finetuner<Mlp<f64, Cpu>, Absorbing, LogLinear, FnReward<fn(&[usize]) -> f64>>;

    fn tuner(log_prob: LogProb) -> Tuner {
        let config = MlpConfig {
            vocab: N,
            len: L,
            hidden: 8,
            depth: 2,
            sigma_freqs: 2,
            activation: Activation::Gelu,
            head: ScoreHead::Absorbing,
        };
        let mut model = Mlp::<f64, Cpu>::new(config, &Cpu::default(), 1).unwrap();
        perturb(model.params_mut(), 2, 0.7);
        let zero: fn(&[usize]) -> f64 = |_| 0.0;
        Finetuner::new(
            model,
            Absorbing::with_tokens(N - 1).unwrap(),
            LogLinear::default(),
            FnReward::new("zero", zero),
            FinetuneConfig {
                log_prob,
                entropy_bonus: 0.5,
                ..FinetuneConfig::new(L)
            },
        )
        .unwrap()
    }

    /// Mean entropy of `softmax(ℓ)` over the real tokens at position `p` of `x_b` with `p` masked, from
    /// the raw logits (no score head), over the sequences of `x`.
    fn masked_entropy(model: &Mlp<f64, Cpu>, x: &[usize], sigma: f64) -> f64 {
        let batch = x.len() / L;
        let dev = Cpu::default();
        let mut h = 0.0;
        for b in 0..batch {
            for p in 0..L {
                let mut t = x[b * L..(b + 1) * L].to_vec();
                t[p] = N - 1;
                let ids = dev.tensor_from_vec(t, (1, L));
                let logits = model
                    .logits_with(model.params(), &ids, &[sigma], NoneTape)
                    .unwrap();
                let row = &logits.as_vec()[p * N..p * N + N - 1];
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                h -= row.iter().map(|v| (v - lse).exp() * (v - lse)).sum::<f64>();
            }
        }
        h / (batch * L) as f64
    }

    fn samples(batch: usize, seed: u64) -> Samples {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Samples {
            tokens: (0..batch * L).map(|_| rng.gen_range(0..N - 1)).collect(),
            batch,
            seq_len: L,
            trajectory: None,
        }
    }

    #[test]
    fn entropy_metric_is_the_mean_entropy_of_the_masked_clean_conditionals() {
        let s = samples(6, 3);
        let unmasked = LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::Unmasked,
            t0: 1e-3,
            ..ConcreteScore::default()
        });
        for log_prob in [LogProb::Trajectory, unmasked] {
            let ft = tuner(log_prob);
            let (_, sigma) = ft.clean_mode();
            let h = ft.entropy(&s).unwrap();
            // The metric reads the first ENTROPY_SAMPLES_ABSORBING = 4 samples.
            let expect = masked_entropy(&ft.model, &s.tokens[..4 * L], sigma);
            assert!((h - expect).abs() < 1e-12, "{log_prob:?}: {h} vs {expect}");
        }
    }

    #[test]
    fn entropy_bonus_is_the_gradient_of_the_masked_entropy() {
        let s = samples(5, 4);
        for log_prob in [
            LogProb::Trajectory,
            LogProb::ConcreteScore(ConcreteScore::default()),
        ] {
            let mut ft = tuner(log_prob);
            let (_, sigma) = ft.clean_mode();
            let mut rng = rand::rngs::StdRng::seed_from_u64(0);
            let g = ft
                .entropy_grads(&s.tokens, s.batch, &mut rng)
                .unwrap()
                .flat_f64();
            // Directional derivative of H along a random direction u, central differences.
            let theta = ft.model.params().flat_f64();
            let u: Vec<f64> = (0..theta.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let eps = 1e-5;
            let mut at = |sign: f64| {
                let moved: Vec<f64> = theta
                    .iter()
                    .zip(&u)
                    .map(|(t, u)| t + sign * eps * u)
                    .collect();
                ft.model.params_mut().set_flat_f64(&moved).unwrap();
                masked_entropy(&ft.model, &s.tokens, sigma)
            };
            let fd = (at(1.0) - at(-1.0)) / (2.0 * eps);
            // The bonus's loss is −bonus·H.
            let analytic = -g.iter().zip(&u).map(|(g, u)| g * u).sum::<f64>() / 0.5;
            let rel = (fd - analytic).abs() / fd.abs().max(1e-12);
            assert!(rel < 1e-6, "{log_prob:?}: fd {fd} vs analytic {analytic}");
        }
    }
}
