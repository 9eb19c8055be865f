//! Reverse-time samplers.
//!
//! With `Q(a, b)` the forward rate `a → b` and the model's concrete score `s_y = p_t(y)/p_t(x)` at the
//! current state `x` (per position, `s_x = 1`), the reverse process jumps `x → y` at rate
//! `σ(t)·Q(y, x)·s_y`. Three ways to simulate it:
//!
//! | sampler | rule per position | network calls |
//! |---|---|---|
//! | [`Predictor::Euler`] | `P(x → y) = Δt·σ(t)·Q(y, x)·s_y`, stay with the rest | `steps + 1` |
//! | [`Predictor::Tweedie`] | `P(x → y) ∝ s̃_y·exp(Δσ̄ Q)(y, x)`, `s̃ = s·exp(−Δσ̄ Q)` | `steps + 1` |
//! | [`first_hitting`] (absorbing only) | unmask one position at the exact next event time | `L` |
//!
//! [`sample`] runs the first two on SEDD's grid (`steps` steps from `t = 1` to `eps`, then a denoising
//! step with all remaining noise); [`first_hitting`] has no time discretisation and is exact for exact
//! scores. Every categorical draw is an f64 inverse-CDF draw ([`categorical::draw`]).
//!
//! **Trajectories.** With `record_trajectory` every [`Step`] keeps its times, noise levels, states and
//! the per-sequence log-probability of the transition taken. The probabilities come from one tape-generic
//! function, [`step_probs`]; the sampler draws from its `NoneTape` output and [`step_log_prob`]
//! recomputes it with a gradient tape, so the two cannot disagree.
//!
//! ```no_run
//! # use sepo_core::{graph::Absorbing, schedule::LogLinear, sample::*, score::ScoreModel};
//! # use sepo_core::{Diffusion, Policy};
//! # fn demo<M: ScoreModel<Elem = f32, Device = dfdx::prelude::Cpu>>(model: &M) -> sepo_core::Result<()> {
//! use rand::SeedableRng;
//! let graph = Absorbing::with_tokens(4)?;
//! let cfg = SamplerConfig { steps: 64, ..SamplerConfig::default() };
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let prompt = Condition::prefix(&[2, 1], 16);
//! let diffusion = Diffusion::new(graph, LogLinear::default());
//! let out = sample(&Policy::current(model), &diffusion, &cfg, (8, 16), Some(&prompt), &mut rng)?;
//! assert_eq!(out.sequence(0)[..2], [2, 1]);
//! # Ok(()) }
//! ```

mod cache;
mod chain;
mod condition;
mod factorised;
mod first_hitting;
mod grid;
pub mod guided;
pub mod kernel;
mod step;
pub mod traffic;
mod trajectory;

/// Categorical draws in `f64` by inverse CDF (a leaf of the crate, re-exported here).
pub use crate::categorical;

#[cfg(test)]
mod tests;

pub use chain::{next_states, transition_probs, Particles, SamplerKind};
pub use condition::Condition;
pub use first_hitting::first_hitting;
pub use grid::sample;
pub use guided::{
    smc, value_guided, Denoised, GuidanceConfig, Guide, Guided, Potential, PotentialInput,
    RewardPotential, SmcConfig, SmcOutput, Tempering,
};
pub use kernel::StepProbs;
pub use step::{step_log_prob, step_probs, take, take_full_rows, taken_log_prob};
pub use trajectory::{Step, StepKind, Trajectory};

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::score::ScoreModel;

/// The predictor used on the time grid by [`sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Predictor {
    /// Euler step of the reverse CTMC: `P(x → y) = Δt·σ(t)·Q(y, x)·s_y` (`y ≠ x`), clamped (`euler.rs`).
    Euler,
    /// Analytic τ-leaping (SEDD's `AnalyticPredictor`): `P(x → y) ∝ s̃_y·exp(Δσ̄ Q)(y, x)`.
    ///
    /// On the uniform graph its step-size bias over-samples rare sequences: with exact scores on a
    /// 4^4 space, the 25 rarest sequences get 14 % more mass than they should at 128 steps, halving
    /// with each doubling of the steps (1.7 % at 1,024); Euler's excess is 1.1 % at 128 steps. On the
    /// absorbing graph the two predictors coincide. (Figures pinned by the sampler test
    /// `tweedie_rare_state_bias_on_the_uniform_graph`.)
    Tweedie,
}

/// Settings of the samplers.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplerConfig {
    /// Predictor of [`sample`] (ignored by [`first_hitting`]).
    pub predictor: Predictor,
    /// Number of predictor steps from `t = 1` to `eps` (`≥ 1`); a denoising step follows. Ignored by
    /// [`first_hitting`].
    pub steps: usize,
    /// Last grid time `t_min` (`0 < eps < 1`). Ignored by [`first_hitting`].
    pub eps: f64,
    /// Largest number of sequences in one forward pass (`≥ 1`): bigger batches run in chunks.
    pub max_batch: usize,
    /// Keep every [`Step`] in [`Samples::trajectory`].
    pub record_trajectory: bool,
}

impl Default for SamplerConfig {
    /// Tweedie, 128 steps, `eps = 1e-5`, chunks of 1024 sequences, no trajectory.
    fn default() -> Self {
        Self {
            predictor: Predictor::Tweedie,
            steps: 128,
            eps: 1e-5,
            max_batch: 1024,
            record_trajectory: false,
        }
    }
}

impl SamplerConfig {
    /// Checks `1 ≤ steps ≤` [`crate::check::MAX_ELEMENTS`] (the grid is allocated), `0 < eps < 1`,
    /// `max_batch ≥ 1`.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("steps", self.steps)?;
        crate::check::size(
            "the time grid",
            &[("steps", self.steps)],
            crate::check::MAX_ELEMENTS,
        )?;
        crate::check::nonzero("max_batch", self.max_batch)?;
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(Error::invalid("eps", self.eps, "must be in (0, 1)"));
        }
        Ok(())
    }

    /// The time grid `t_k = 1 − k·(1 − eps)/steps`, `k = 0..=steps` (last entry exactly `eps`).
    pub fn grid(&self) -> Vec<f64> {
        let dt = (1.0 - self.eps) / self.steps as f64;
        (0..=self.steps)
            .map(|k| {
                if k == self.steps {
                    self.eps
                } else {
                    1.0 - k as f64 * dt
                }
            })
            .collect()
    }
}

/// Output of a sampler.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Samples {
    /// Tokens, flat `[batch · seq_len]`.
    pub tokens: Vec<usize>,
    /// Number of sequences.
    pub batch: usize,
    /// Length of each sequence.
    pub seq_len: usize,
    /// The steps taken, if `record_trajectory` was set.
    pub trajectory: Option<Trajectory>,
}

impl Samples {
    /// Sequence `i` (panics if `i ≥ batch`, like slice indexing).
    pub fn sequence(&self, i: usize) -> &[usize] {
        &self.tokens[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// Iterates over the sequences.
    pub fn sequences(&self) -> impl Iterator<Item = &[usize]> {
        self.tokens.chunks(self.seq_len.max(1))
    }

    /// The sequences `rows` (and their paths), in that order.
    pub fn select(&self, rows: &[usize]) -> Samples {
        let l = self.seq_len;
        Samples {
            tokens: rows
                .iter()
                .flat_map(|&r| self.tokens[r * l..(r + 1) * l].iter().copied())
                .collect(),
            batch: rows.len(),
            seq_len: l,
            trajectory: self.trajectory.as_ref().map(|t| t.select(rows)),
        }
    }

    /// The samples of several sampler calls (same `seq_len`, all with or all without paths) as one
    /// batch, in order; `fixed[k]` marks the positions a condition held in `parts[k]`
    /// (`[batch_k · seq_len]`), used to align first-hitting paths of different lengths.
    pub fn stack(parts: Vec<(Samples, Vec<bool>)>) -> Result<Samples> {
        let seq_len = parts.first().map_or(0, |p| p.0.seq_len);
        if let Some(p) = parts.iter().find(|p| p.0.seq_len != seq_len) {
            return Err(Error::ShapeMismatch {
                op: "Samples::stack (sequence lengths)",
                expected: vec![seq_len],
                got: vec![p.0.seq_len],
            });
        }
        let recorded = parts.iter().all(|p| p.0.trajectory.is_some());
        let batch = parts.iter().map(|p| p.0.batch).sum();
        let tokens = parts
            .iter()
            .flat_map(|p| p.0.tokens.iter().copied())
            .collect();
        let trajectory = if recorded {
            Some(Trajectory::stack(
                parts
                    .into_iter()
                    .map(|(s, fixed)| (s.trajectory.expect("checked"), s.tokens, fixed))
                    .collect(),
            )?)
        } else {
            None
        };
        Ok(Samples {
            tokens,
            batch,
            seq_len,
            trajectory,
        })
    }
}

/// Entry checks shared by the samplers; returns the condition expanded to `[batch · seq_len]`.
pub(crate) fn check_entry<E: Dtype, D: Device<E>, M: ScoreModel<Elem = E, Device = D>, G: Graph>(
    model: &M,
    graph: &G,
    batch: usize,
    seq_len: usize,
    condition: Option<&Condition>,
) -> Result<Vec<Option<usize>>> {
    if batch == 0 || seq_len == 0 {
        return Err(Error::Empty {
            op: "sample",
            what: "batch and seq_len must both be ≥ 1",
        });
    }
    crate::check::size(
        "a batch of samples",
        &[("batch", batch), ("seq_len", seq_len)],
        crate::check::MAX_ELEMENTS,
    )?;
    step::check_model(model, graph)?;
    if let Some(max) = model.max_len() {
        if seq_len > max {
            return Err(Error::ShapeMismatch {
                op: "sample (sequence length vs model max_len)",
                expected: vec![max],
                got: vec![seq_len],
            });
        }
        // The model's own length rule (exactly `L` for `Mlp` and `Tabular`), on one dummy sequence,
        // so a refused length fails here rather than at the first step.
        model.check_input(&vec![0; seq_len], 1, seq_len, &[0.0])?;
    }
    match condition {
        Some(c) => c.resolve(graph, batch, seq_len),
        None => Ok(vec![None; batch * seq_len]),
    }
}
