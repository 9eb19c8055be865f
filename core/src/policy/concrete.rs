//! SEPO's concrete-score estimator: the per-neighbour PPO surrogate on clean samples.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::{ppo_clip, PpoObjective, PpoStats, PpoTerms};
use crate::nn::{from_f64, to_f64s, upload_f64s, Grads};
use crate::policy::{clean_log_scores, neighbour_log_weights, CleanScores, NeighbourWeights};
use crate::schedule::NoiseSchedule;
use crate::score::ModelGrads;
use crate::score::{Policy, ScoreModel};
use crate::sequences::Sequences;

/// A scalar loss carrying the tape of its forward pass.
pub type TapedLoss<E, D> = Tensor<Rank0, E, D, OwnedTape<E, D>>;

/// The scalar loss of a [`ScoreModel`] `M`, carrying its tape.
pub type ModelLoss<M> = TapedLoss<<M as ScoreModel>::Elem, <M as ScoreModel>::Device>;

/// The concrete-score log-probability estimator.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConcreteScore {
    /// Time `t₀` at which scores are read (default: the sampler's last grid time, 1e-5).
    pub t0: f64,
    /// Neighbour weights.
    pub weights: NeighbourWeights,
    /// How clean-end scores are read under the absorbing graph.
    pub clean: CleanScores,
}

impl Default for ConcreteScore {
    /// `t₀ = 1e-5`, `Conditional` weights, `Masked` clean scores.
    fn default() -> Self {
        Self {
            t0: 1e-5,
            weights: NeighbourWeights::Conditional,
            clean: CleanScores::Masked,
        }
    }
}

impl ConcreteScore {
    /// Validates `t₀ ∈ [0, 1]`.
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.t0) {
            return Err(Error::invalid("t0", self.t0, "must be in [0, 1]"));
        }
        if let NeighbourWeights::Snis { draws: 0 } = self.weights {
            return Err(Error::invalid("draws", 0, "SNIS needs at least one draw"));
        }
        Ok(())
    }

    /// The PPO-clip loss `−J` of docs/sepo.md (4) for clean samples `x` with objectives (advantages
    /// `[batch]`, clip), differentiable in the model's own parameters θ; `old` is the model under
    /// `θ_old`.
    pub fn loss<M, G, S, R>(
        &self,
        old: &Policy<'_, M>,
        diffusion: &Diffusion<G, S>,
        x: Sequences<'_>,
        objectives: &[PpoObjective<'_>],
        rng: &mut R,
    ) -> Result<(ModelLoss<M>, PpoStats)>
    where
        M: ScoreModel,
        G: Graph,
        S: NoiseSchedule,
        R: Rng,
    {
        self.check()?;
        let (graph, model) = (&diffusion.graph, old.model);
        let current = Policy::current(model);
        let seqs = x;
        let (x, batch) = (x.tokens(), x.batch());
        let sigma0 = diffusion.total(self.t0);
        let n = graph.num_states();
        // θ and θ_old must read the same masked positions: share the subset's randomness.
        let subset_seed: u64 = rng.gen();
        let mut sub = rand::rngs::StdRng::seed_from_u64(subset_seed);
        let (ls_theta, position_weight) = clean_log_scores(
            &current,
            graph,
            seqs,
            sigma0,
            self.clean,
            OwnedTape::default(),
            &mut sub,
        )?;
        let mut sub = rand::rngs::StdRng::seed_from_u64(subset_seed);
        let (ls_old, _) =
            clean_log_scores(old, graph, seqs, sigma0, self.clean, NoneTape, &mut sub)?;
        let ls_theta_host = to_f64s(&ls_theta.retaped::<NoneTape>().as_vec());
        let ls_old_host = to_f64s(&ls_old.as_vec());
        // Common random numbers: SNIS draws the same z for θ and θ_old, so their ratio is 1 at θ = θ_old.
        let weight_seed: u64 = rng.gen();
        let mut sub = rand::rngs::StdRng::seed_from_u64(weight_seed);
        let log_w_theta = neighbour_log_weights(
            self.weights,
            &current,
            graph,
            seqs,
            sigma0,
            &ls_theta_host,
            &mut sub,
        )?;
        let mut sub = rand::rngs::StdRng::seed_from_u64(weight_seed);
        let log_w_old = neighbour_log_weights(
            self.weights,
            old,
            graph,
            seqs,
            sigma0,
            &ls_old_host,
            &mut sub,
        )?;
        let l = x.len() / batch;
        let mut weight = vec![0.0; batch * l * n];
        let mut log_offset = vec![0.0; batch * l * n];
        for i in 0..batch * l * n {
            if log_w_theta[i].is_finite() && log_w_old[i].is_finite() {
                weight[i] = log_w_theta[i].exp() * position_weight[i / n];
                log_offset[i] = log_w_theta[i] - log_w_old[i];
            }
        }
        let dev = model.params().device();
        let ls_old = upload_f64s::<M::Elem, _, _>(
            dev,
            &ls_old_host,
            (batch, l, n),
            "concrete surrogate (old log-scores)",
        )?;
        // Δ = log s_old − log s_θ, so ρ = c·e^Δ and ∇ρ = −ρ ∇ log s_θ.
        let delta = (ls_theta.negate() + ls_old).reshape_like(&(batch, l * n));
        ppo_clip(
            delta,
            &PpoTerms {
                weight: &weight,
                log_offset: &log_offset,
                objectives,
            },
        )
    }

    /// The gradient of [`Self::loss`] (and its statistics), accumulated over chunks of samples so that
    /// every taped forward sees at most [`GRAD_TOKENS`] tokens (one sample per chunk when its masked copies
    /// alone exceed that): the loss is a mean over samples, `−J = Σ_c (|c|/B)·(−J_c)`, so each chunk's
    /// loss is scaled by `|c|/B` before its backward pass. Memory stays bounded whatever `B` and `L`
    /// (`Masked` clean scores forward `B·L` sequences).
    pub fn grads<M, G, S, R>(
        &self,
        old: &Policy<'_, M>,
        diffusion: &Diffusion<G, S>,
        x: Sequences<'_>,
        objectives: &[PpoObjective<'_>],
        rng: &mut R,
    ) -> Result<(ModelGrads<M>, PpoStats)>
    where
        M: ScoreModel,
        G: Graph,
        S: NoiseSchedule,
        R: Rng,
    {
        let (model, graph) = (old.model, &diffusion.graph);
        let (batch, l) = (x.batch(), x.seq_len());
        let reads = match (graph.mask(), self.clean) {
            (Some(_), CleanScores::Masked) => l,
            (Some(_), CleanScores::MaskedSubset { positions }) => positions.max(1),
            _ => 1,
        };
        if let Some(o) = objectives.iter().find(|o| o.advantage.len() != batch) {
            return Err(Error::ShapeMismatch {
                op: "ConcreteScore::grads advantages",
                expected: vec![batch],
                got: vec![o.advantage.len()],
            });
        }
        let chunk = (GRAD_TOKENS / (reads * l).max(1)).clamp(1, batch);
        let mut grads = Grads::zeros(model.params());
        let mut stats = PpoStats::default();
        for start in (0..batch).step_by(chunk) {
            let end = (start + chunk).min(batch);
            let share = (end - start) as f64 / batch as f64;
            let sub = PpoObjective::rows(objectives, start, end);
            let (loss, s) = self.loss(old, diffusion, x.rows(start, end), &sub, rng)?;
            let loss = loss * from_f64::<M::Elem>(share);
            grads.add_assign(&Grads::collect(model.params(), &mut loss.backward())?);
            // The loss is a mean over samples; the ratio statistics are term-weighted means.
            stats.add_chunk(share, &s);
        }
        Ok((grads, stats.finish()))
    }
}

/// Tokens per taped forward in [`ConcreteScore::grads`] (activations and the tape grow with it).
pub const GRAD_TOKENS: usize = 1 << 14;
