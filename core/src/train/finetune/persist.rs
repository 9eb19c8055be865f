//! Saving and resuming a fine-tuning run.
//!
//! A save is one committed generation ([`crate::train::commit`]) holding
//!
//! | file | content |
//! |---|---|
//! | `model.safetensors` | the policy θ (header `sepo.kind` when the architecture has a [`ModelKind`](crate::train::ModelKind)) |
//! | `config.json` | the model's configuration, as a pretrained checkpoint has it, with `extra = {"finetune": .., "round": ..}`; absent for architectures without a [`ModelKind`](crate::train::ModelKind) (e.g. `Tabular`) |
//! | `reference.safetensors` | the KL reference |
//! | `optimizer.safetensors` | AdamW moments and step |
//! | `trainer.json` | the round counter, the resolved run configuration and its CRC-64, the allocation planner, the reward names, and the metrics file's committed length |
//!
//! so [`Checkpoint::load_model`] reads a fine-tuned directory like a pretrained one, and a resume
//! restores every piece of state from one generation or none.
//!
//! The *resolved configuration* is every [`FinetuneConfig`](super::FinetuneConfig) key plus what else fixes the run:
//! `dtype`, `graph` (its `Debug` form), `schedule` (σ̄ at `t = k/16`, `k = 0..=16`), `prompts` and
//! `condition`. [`Finetuner::resume`] compares it key by key with the resuming run's and refuses the
//! first difference with [`Error::ResumeMismatch`] naming it (`seed`, `optimizer.lr`,
//! `estimator.components[0].clip`, ...). Reward names are recorded but not compared: a reward is
//! code, its name no identity, and fixing a reward's bug is a reason to resume.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::io::{adamw_to_bytes, load_adamw_bytes};
use crate::reward::Reward;
use crate::schedule::NoiseSchedule;
use crate::score::dtype_name;
use crate::score::ScoreModel;
use crate::train::checkpoint::{MODEL_FILE, OPTIMIZER_FILE};
use crate::train::commit::{crc64_hex, DEFAULT_KEEP_LAST};
use crate::train::Planner;
use crate::train::{Checkpoint, MetricsMark, MetricsWriter};

use super::Finetuner;

/// File name of the KL reference's weights.
pub const REFERENCE_FILE: &str = "reference.safetensors";
/// File name of the trainer state.
pub const TRAINER_FILE: &str = "trainer.json";

/// What [`Finetuner::resume`] restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// Rounds completed at the checkpoint.
    pub round: u64,
    /// The generation it came from.
    pub generation: u64,
    /// How much of the metrics file the checkpoint covers, if it was saved with one: pass it to
    /// [`MetricsMark::rewind`] before appending again ([`crate::train::Run::resume`] does).
    pub metrics: Option<MetricsMark>,
}

#[derive(Serialize, Deserialize)]
struct TrainerFile {
    round: u64,
    config: Value,
    fingerprint: String,
    planner: Option<Planner>,
    rewards: Vec<String>,
    metrics: Option<MetricsMark>,
}

/// Points at which the schedule is recorded: `t = k/16`.
const SCHEDULE_POINTS: u32 = 16;

fn invalid_data(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    }
}

impl<M, G, S, R> Finetuner<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// The resolved configuration of this run (see the module docs), as JSON.
    pub fn resolved_config(&self) -> Value {
        let mut v = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        let schedule: Vec<f64> = (0..=SCHEDULE_POINTS)
            .map(|k| {
                self.diffusion
                    .schedule
                    .total(f64::from(k) / f64::from(SCHEDULE_POINTS))
            })
            .collect();
        if let Value::Object(map) = &mut v {
            map.insert("dtype".into(), dtype_name::<M::Elem>().into());
            map.insert("graph".into(), format!("{:?}", self.diffusion.graph).into());
            map.insert("schedule".into(), serde_json::json!(schedule));
            map.insert("prompts".into(), serde_json::json!(self.prompts));
            map.insert("condition".into(), serde_json::json!(self.condition));
        }
        v
    }

    /// Commits the run (policy, model config, reference, optimiser state, trainer state) to
    /// `checkpoint` as one generation; see [`Finetuner::save_with`].
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        self.save_with(checkpoint, None, DEFAULT_KEEP_LAST)
            .map(|_| ())
    }

    /// Commits the run to `checkpoint` as one generation, keeping the `keep_last` newest, and returns
    /// its number. With `metrics`, the file is flushed and fsynced first and its length recorded, so a
    /// resume can drop what was logged after this save. Crash-consistent: the directory then holds
    /// this save or the previous one, whole ([`crate::train::commit`]).
    pub fn save_with(
        &self,
        checkpoint: &Checkpoint,
        metrics: Option<&mut MetricsWriter>,
        keep_last: usize,
    ) -> Result<u64> {
        let metrics = metrics.map(MetricsWriter::mark).transpose()?;
        let config = self.resolved_config();
        let fingerprint = crc64_hex(config.to_string().as_bytes());
        let mut rewards = vec![self.reward.name()];
        rewards.extend(self.eval_reward.as_ref().map(|r| r.name()));
        let trainer = TrainerFile {
            round: self.round,
            config,
            fingerprint,
            planner: self.planner.clone(),
            rewards,
            metrics,
        };
        let trainer = serde_json::to_vec_pretty(&trainer)
            .map_err(|e| invalid_data(&checkpoint.dir.join(TRAINER_FILE), e))?;
        let extra = serde_json::json!({ "finetune": self.config, "round": self.round });
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
        files.push((TRAINER_FILE, trainer));
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        checkpoint.commit(&refs, keep_last)
    }

    /// Restores the run published in `checkpoint` (saved by [`Finetuner::save`] with the same
    /// architecture and configuration); rounds then continue bit-identically on CPU, since round `k`
    /// draws from `step_rng(seed, k)`. First removes what killed writers left there. Nothing changes
    /// unless every file of the generation passes its size and CRC-64 check and loads.
    ///
    /// Errors: [`Error::NoCheckpoint`] if nothing was committed; [`Error::CheckpointIntegrity`] for a
    /// damaged file (or a directory of the older per-file layout, which has no manifest to trust);
    /// [`Error::ResumeMismatch`] naming the first key of the resolved configuration that differs;
    /// [`Error::CheckpointMismatch`] for weights of another shape.
    pub fn resume(&mut self, checkpoint: &Checkpoint) -> Result<Resumed> {
        let committed = checkpoint.resumable()?;
        let path = committed.path(TRAINER_FILE);
        let file: TrainerFile =
            serde_json::from_slice(&committed.read(TRAINER_FILE)?).map_err(|e| {
                Error::CorruptCheckpoint {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
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
        if file.planner.is_some() {
            self.planner = file.planner;
        }
        *self.model.params_mut() = params;
        self.reference = reference;
        self.state = state;
        self.round = file.round;
        Ok(Resumed {
            round: file.round,
            generation: committed.generation().unwrap_or(0),
            metrics: file.metrics,
        })
    }
}

/// A JSON value for an error message, cut to 120 characters.
fn show(v: Option<&Value>) -> String {
    let s = v.map_or_else(|| "absent".to_string(), Value::to_string);
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// The first key (in key order, depth first) where `saved` and `now` differ, with both values:
/// `a.b[2].c`. Arrays of different lengths differ at the array itself.
pub(crate) fn first_difference(saved: &Value, now: &Value) -> Option<(String, String, String)> {
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>) -> Option<(String, String, String)> {
        let here = || Some((path.to_string(), show(a), show(b)));
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                keys.into_iter().find_map(|k| {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&sub, x.get(k), y.get(k))
                })
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (p, q))| walk(&format!("{path}[{i}]"), Some(p), Some(q))),
            _ if a == b => None,
            _ => here(),
        }
    }
    walk("", Some(saved), Some(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_difference_is_named_by_its_path() {
        let a = json!({"seed": 1, "optimizer": {"lr": 1e-3, "betas": [0.9, 0.99]}, "k": [1, 2]});
        assert_eq!(first_difference(&a, &a), None);
        let mut b = a.clone();
        b["optimizer"]["betas"][1] = json!(0.999);
        assert_eq!(
            first_difference(&a, &b),
            Some(("optimizer.betas[1]".into(), "0.99".into(), "0.999".into()))
        );
        let mut c = a.clone();
        c["k"] = json!([1, 2, 3]);
        c["seed"] = json!(2);
        // `k` comes before `seed` in key order.
        assert_eq!(first_difference(&a, &c).unwrap().0, "k");
        let mut d = a.clone();
        d.as_object_mut().unwrap().remove("seed");
        assert_eq!(
            first_difference(&a, &d),
            Some(("seed".into(), "1".into(), "absent".into()))
        );
    }
}
