//! A configured fine-tuning run: a [`Finetuner`] plus what [`Run::fit`] needs to run unattended (the
//! number of rounds, a progress bar, a metrics file, a checkpoint directory). This is what the facade's
//! `policy!` macro builds; it is plain code and can be used without the macro.
//!
//! ```no_run
//! # use sepo_core::{graph::Absorbing, reward::{BoxedReward, GcContent}, schedule::LogLinear};
//! # use sepo_core::score::{Mlp, MlpConfig, ScoreHead, ScoreModel};
//! # use sepo_core::train::{FinetuneConfig, Finetuner, FromStates, Run, RunOptions};
//! # fn main() -> sepo_core::Result<()> {
//! let dev = dfdx::prelude::Cpu::default();
//! let model = Mlp::<f32, _>::new(MlpConfig::tiny(5, 4, ScoreHead::Absorbing), &dev, 0)?;
//! let graph = Absorbing::from_states(model.num_states())?;
//! let reward = BoxedReward(Box::new(GcContent::default()));
//! let finetuner = Finetuner::new(model, graph, LogLinear::default(), reward, FinetuneConfig::new(4))?;
//! let mut run = Run::new(finetuner, RunOptions { rounds: 10, ..RunOptions::default() });
//! let history = run.fit()?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::graph::{Absorbing, Graph, Uniform};
use crate::reward::{BoxedReward, Reward};
use crate::schedule::NoiseSchedule;
use crate::score::ScoreModel;
use crate::train::{Checkpoint, Finetuner, MetricsWriter, Periodic, RoundMetrics};

/// A graph built for a model's number of states, so a configuration can say `Absorbing` and take
/// the vocabulary from the model.
pub trait FromStates: Graph + Sized {
    /// The graph over `states` states in total (the mask included, for [`Absorbing`]).
    fn from_states(states: usize) -> Result<Self>;
}

impl FromStates for Absorbing {
    fn from_states(states: usize) -> Result<Self> {
        Absorbing::new(states)
    }
}

impl FromStates for Uniform {
    fn from_states(states: usize) -> Result<Self> {
        Uniform::new(states)
    }
}

/// The sequence length of a run: `given`, else the model's fixed or maximal length.
pub fn seq_len_of<M: ScoreModel>(model: &M, given: Option<usize>) -> Result<usize> {
    match (given, model.max_len()) {
        (Some(len), Some(max)) if len > max => Err(Error::invalid(
            "seq_len",
            len,
            format!("exceeds the model's maximal length {max}"),
        )),
        (Some(len), _) | (None, Some(len)) => Ok(len),
        (None, None) => Err(Error::invalid(
            "seq_len",
            "unset",
            "the model accepts any length: set `seq_len`",
        )),
    }
}

/// What [`Run::fit`] does besides the rounds themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Total rounds: `fit` runs until the finetuner has completed this many (so a resumed run
    /// finishes the remainder).
    pub rounds: u64,
    /// Show a progress bar with the running reward.
    pub progress: bool,
    /// Append each round's [`RoundMetrics`] as a JSON line to this file.
    pub metrics: Option<PathBuf>,
    /// Commit the run here (policy and its `config.json`, reference, optimiser, trainer state) when
    /// `fit` starts, every [`Run::periodic`] rounds and after the last round; [`Run::resume`] restores
    /// it.
    pub checkpoint: Option<PathBuf>,
}

impl Default for RunOptions {
    /// 100 rounds, a progress bar, no metrics file, no checkpoint.
    fn default() -> Self {
        Self {
            rounds: 100,
            progress: true,
            metrics: None,
            checkpoint: None,
        }
    }
}

/// A fine-tuning run ready to [`fit`](Run::fit). The reward is type-erased by default, so the type of a
/// run names only the device, the model, the graph and the schedule.
pub struct Run<M, G, S, R = BoxedReward>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// The trainer: policy, reference, rewards, configuration, optimiser state.
    pub finetuner: Finetuner<M, G, S, R>,
    /// Rounds, progress, metrics and checkpoint.
    pub options: RunOptions,
    /// How often `fit` checkpoints to [`RunOptions::checkpoint`] (default: every 10 rounds, keeping
    /// 2 generations).
    pub periodic: Periodic,
    /// Recorded under `"source"` in the metrics file's header line, beside what [`Run::header`]
    /// reads from the finetuner (a configuration file's keys, when the run was built from one);
    /// `Null` by default.
    pub source: serde_json::Value,
}

impl<M, G, S, R> Run<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// A run of `finetuner` with `options`.
    pub fn new(finetuner: Finetuner<M, G, S, R>, options: RunOptions) -> Self {
        Self {
            finetuner,
            options,
            periodic: Periodic::default(),
            source: serde_json::Value::Null,
        }
    }

    /// The resolved configuration the metrics file's header line holds: sepo's version, the
    /// [`FinetuneConfig`](crate::train::FinetuneConfig), the graph and schedule, the rewards' names,
    /// the prompts and [`Run::source`]. Not the run options: a run continued with more rounds, or
    /// its metrics moved, is the same run.
    pub fn header(&self) -> serde_json::Value {
        let ft = &self.finetuner;
        serde_json::json!({
            "sepo_version": env!("CARGO_PKG_VERSION"),
            "config": ft.config(),
            "graph": format!("{:?}", ft.diffusion().graph),
            "schedule": format!("{:?}", ft.diffusion().schedule),
            "reward": ft.reward().name(),
            "eval_reward": ft.eval_reward().map(|r| r.name()),
            "prompts": ft.prompts(),
            "source": self.source,
        })
    }

    /// The policy being fine-tuned.
    pub fn model(&self) -> &M {
        self.finetuner.model()
    }

    /// Runs the remaining rounds (up to [`RunOptions::rounds`] in total) with the configured progress
    /// bar and metrics file (a header line first, [`MetricsWriter::for_run`]), committing a checkpoint at the start, every [`Run::periodic`] rounds and
    /// at the end if a directory is configured ([`Finetuner::fit_checkpointed`]). With a directory it
    /// also installs the Ctrl-C handler ([`crate::train::interrupt`]): a signal stops the run at the
    /// next round boundary, saved, with [`Error::Interrupted`]. Returns the metrics of the rounds run
    /// by this call. On error the finetuner keeps the last completed round.
    pub fn fit(&mut self) -> Result<Vec<RoundMetrics>> {
        let mut writer = match &self.options.metrics {
            Some(path) => Some(MetricsWriter::for_run(path, &self.header())?),
            None => None,
        };
        let remaining = self
            .options
            .rounds
            .saturating_sub(self.finetuner.completed());
        let checkpoint = self.options.checkpoint.as_ref().map(Checkpoint::new);
        if checkpoint.is_some() {
            // A program with its own handler keeps it (and may call `interrupt::request`).
            let _ = crate::train::interrupt::install();
        }
        self.finetuner.fit_checkpointed(
            remaining,
            self.options.progress,
            writer.as_mut(),
            checkpoint.as_ref().map(|c| (c, self.periodic)),
        )
    }

    /// Restores the run committed in the checkpoint directory by an earlier [`Run::fit`], if there is
    /// one, and cuts the metrics file back to what that checkpoint covers (when it is the file
    /// configured now), so no round is logged twice. `Ok(true)` if it resumed, `Ok(false)` if no
    /// directory is configured or nothing was committed there yet; a damaged checkpoint or a changed
    /// configuration is an error ([`Finetuner::resume`]).
    pub fn resume(&mut self) -> Result<bool> {
        let Some(dir) = &self.options.checkpoint else {
            return Ok(false);
        };
        let resumed = match self.finetuner.resume(&Checkpoint::new(dir)) {
            Ok(r) => r,
            Err(Error::NoCheckpoint { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if let (Some(mark), Some(path)) = (&resumed.metrics, &self.options.metrics) {
            if mark.path == *path {
                mark.rewind()?;
            }
        }
        Ok(true)
    }
}
