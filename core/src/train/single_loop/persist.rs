//! Saving and resuming a single-loop run, and its [`Trainer`] impl (so
//! [`fit`](crate::train::fit) checkpoints it periodically like the two-loop trainer).
//!
//! A save is one committed generation ([`crate::train::commit`]) holding
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | the policy θ (and `config.json` when the architecture has a [`ModelKind`](crate::train::ModelKind), so [`Checkpoint::load_model`] reads it) |
//! | `reference.safetensors` | the reference `p_ref` |
//! | `optimizer.safetensors` | AdamW moments and step |
//! | `single_loop.json` | the update counter, the evaluation count, the resolved configuration and its CRC-64, the reward's name, the metrics file's committed length, and the population: particles, cached rewards `r_b`, log-ratios `ℓ̂_b`, the anchor `a` and the reference's cached path values (floats as their IEEE-754 bits, so they round-trip exactly) |
//!
//! Update `i` draws from `step_rng(seed, i)`, so no RNG state is stored: with every other piece of
//! state restored, a resumed run continues bit-identically on CPU.
//!
//! The *resolved configuration* is every [`SingleLoopConfig`](crate::train::SingleLoopConfig) key
//! plus `dtype`, `graph` (its `Debug` form), `particles` (`B`) and `seq_len` (`L`);
//! [`SingleLoop::resume`] refuses the first key that differs with [`Error::ResumeMismatch`]. The
//! reward's name is recorded, not compared (a reward is code; fixing its bug is a reason to resume).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{SingleLoop, UpdateMetrics};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::io::{adamw_to_bytes, load_adamw_bytes};
use crate::policy::EnergyModel;
use crate::score::dtype_name;
use crate::train::checkpoint::{MODEL_FILE, OPTIMIZER_FILE};
use crate::train::commit::{crc64_hex, DEFAULT_KEEP_LAST};
use crate::train::finetune::first_difference;
use crate::train::finetune::REFERENCE_FILE;
use crate::train::{Checkpoint, MetricsWriter, Resumed, Trainer};

/// File name of the single loop's state.
pub const SINGLE_LOOP_FILE: &str = "single_loop.json";

#[derive(Serialize, Deserialize)]
struct StateFile {
    update: u64,
    evaluations: u64,
    config: Value,
    fingerprint: String,
    reward: String,
    metrics: Option<crate::train::MetricsMark>,
    particles: Vec<usize>,
    rewards: Vec<u64>,
    log_ratio: Vec<u64>,
    anchor: Vec<usize>,
    reference_path: Vec<Option<u64>>,
}

fn to_bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn from_bits(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&b| f64::from_bits(b)).collect()
}

impl<M: EnergyModel, G: Graph> SingleLoop<M, G> {
    /// The AdamW state (moments and step).
    pub fn optimizer_state(&self) -> &crate::nn::AdamWState<M::Elem, M::Device> {
        &self.state
    }

    /// The training reward's name.
    pub fn reward_name(&self) -> String {
        self.reward.name()
    }

    /// The resolved configuration of this run (see the module docs), as JSON.
    pub fn resolved_config(&self) -> Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("dtype".into(), dtype_name::<M::Elem>().into());
            map.insert("graph".into(), format!("{:?}", self.graph).into());
            map.insert("particles".into(), self.batch.into());
            map.insert("seq_len".into(), self.seq_len().into());
        }
        v
    }

    /// Commits the run (policy, reference, optimiser state, population and counters) to `checkpoint`
    /// as one generation, keeping the `keep_last` newest, and returns its number. With `metrics`, the
    /// file is flushed and fsynced first and its length recorded, so a resume can drop what was
    /// logged after this save. Crash-consistent: the directory then holds this save or the previous
    /// one, whole.
    pub fn save_with(
        &self,
        checkpoint: &Checkpoint,
        metrics: Option<&mut MetricsWriter>,
        keep_last: usize,
    ) -> Result<u64> {
        let metrics = metrics.map(MetricsWriter::mark).transpose()?;
        let config = self.resolved_config();
        let state = StateFile {
            update: self.update,
            evaluations: self.evaluations,
            fingerprint: crc64_hex(config.to_string().as_bytes()),
            config,
            reward: self.reward.name(),
            metrics,
            particles: self.particles.clone(),
            rewards: to_bits(&self.rewards),
            log_ratio: to_bits(&self.log_ratio),
            anchor: self.anchor.clone(),
            reference_path: self
                .reference_path
                .iter()
                .map(|r| r.map(f64::to_bits))
                .collect(),
        };
        let state = serde_json::to_vec(&state).map_err(|e| Error::Io {
            path: checkpoint.dir.join(SINGLE_LOOP_FILE),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        let extra = serde_json::json!({ "single_loop": self.config, "update": self.update });
        let description = self.model.description();
        let mut files = Checkpoint::model_files(self.model.params(), description.as_ref(), extra)?;
        files.push((
            REFERENCE_FILE,
            self.reference.to_safetensors_bytes(&BTreeMap::new())?,
        ));
        files.push((
            OPTIMIZER_FILE,
            adamw_to_bytes(self.model.params(), &self.state)?,
        ));
        files.push((SINGLE_LOOP_FILE, state));
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        checkpoint.commit(&refs, keep_last)
    }

    /// [`SingleLoop::save_with`] without a metrics file, keeping the default 2 generations.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.save_with(checkpoint, None, DEFAULT_KEEP_LAST)
            .map(|_| ())
    }

    /// Restores the run published in `checkpoint` (saved by [`SingleLoop::save_with`] with the same
    /// architecture and configuration); updates then continue bit-identically on CPU. First removes
    /// what killed writers left there. Nothing changes unless every file of the generation passes
    /// its size and CRC-64 check, loads, and fits this run's sizes and vocabulary.
    ///
    /// Errors: [`Error::NoCheckpoint`] if nothing was committed; [`Error::CheckpointIntegrity`] for a
    /// damaged file (or a directory without a manifest); [`Error::ResumeMismatch`] naming the first
    /// key of the resolved configuration that differs; [`Error::CheckpointMismatch`] for weights of
    /// another shape; [`Error::CorruptCheckpoint`] for a state file that does not parse or whose
    /// population does not fit the configuration.
    pub fn resume(&mut self, checkpoint: &Checkpoint) -> Result<Resumed> {
        let committed = checkpoint.resumable()?;
        let path = committed.path(SINGLE_LOOP_FILE);
        let corrupt = |reason: String| Error::CorruptCheckpoint {
            path: path.clone(),
            reason,
        };
        let file: StateFile = serde_json::from_slice(&committed.read(SINGLE_LOOP_FILE)?)
            .map_err(|e| corrupt(e.to_string()))?;
        if let Some((key, saved, resuming)) =
            first_difference(&file.config, &self.resolved_config())
        {
            return Err(Error::ResumeMismatch {
                path: checkpoint.dir.clone(),
                key,
                saved,
                resuming,
            });
        }
        let (b, l) = (self.batch, self.seq_len());
        crate::check::tokens(&file.particles, b, l, self.graph.num_tokens())
            .map_err(|e| corrupt(format!("particles: {e}")))?;
        if file.particles.len() != b * l {
            return Err(corrupt(format!(
                "{} particle tokens, the run has {b} × {l}",
                file.particles.len()
            )));
        }
        if file.anchor.len() != l || file.anchor.iter().any(|&t| t >= self.graph.num_tokens()) {
            return Err(corrupt("the anchor does not fit the sequence".into()));
        }
        for (name, n) in [
            ("rewards", file.rewards.len()),
            ("log_ratio", file.log_ratio.len()),
            ("reference_path", file.reference_path.len()),
        ] {
            if n != b {
                return Err(corrupt(format!("{n} {name}, the run has {b} particles")));
            }
        }
        let mut params = self.model.params().clone();
        params.load_bytes(&committed.read(MODEL_FILE)?, &committed.path(MODEL_FILE))?;
        let mut reference = self.reference.clone();
        reference.load_bytes(
            &committed.read(REFERENCE_FILE)?,
            &committed.path(REFERENCE_FILE),
        )?;
        let state = load_adamw_bytes(
            &params,
            &committed.read(OPTIMIZER_FILE)?,
            &committed.path(OPTIMIZER_FILE),
        )?;
        *self.model.params_mut() = params;
        self.reference = reference;
        self.state = state;
        self.update = file.update;
        self.evaluations = file.evaluations;
        self.particles = file.particles;
        self.rewards = from_bits(&file.rewards);
        self.log_ratio = from_bits(&file.log_ratio);
        self.anchor = file.anchor;
        self.reference_path = file
            .reference_path
            .iter()
            .map(|r| r.map(f64::from_bits))
            .collect();
        Ok(Resumed {
            round: file.update,
            generation: committed.generation().unwrap_or(0),
            metrics: file.metrics,
        })
    }
}

impl<M: EnergyModel, G: Graph> Trainer for SingleLoop<M, G> {
    type Metrics = UpdateMetrics;
    const LABEL: &'static str = "flow";

    /// [`SingleLoop::step`]: `k` chain steps and one update.
    fn step(&mut self) -> Result<UpdateMetrics> {
        SingleLoop::step(self)
    }

    fn completed(&self) -> u64 {
        self.update
    }

    fn message(&mut self, m: &UpdateMetrics) -> String {
        format!(
            "reward {:.3} log-ratio {:.3} evals {}",
            m.reward, m.log_ratio, m.evaluations
        )
    }

    /// [`SingleLoop::save_with`].
    fn save(
        &self,
        checkpoint: &Checkpoint,
        metrics: Option<&mut MetricsWriter>,
        keep_last: usize,
    ) -> Result<()> {
        self.save_with(checkpoint, metrics, keep_last).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
