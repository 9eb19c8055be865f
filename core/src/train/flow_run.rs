//! A configured single-loop (gradient-flow) run: what `policy!` builds for `mode: SingleLoop`.
//!
//! [`FlowRun::start`] draws the initial particles with the pretrained model's own sampler (the law the
//! chain starts from, `p_ref`), hands them to a [`SingleLoop`], and [`FlowRun::fit`] runs its updates
//! with a progress bar, a JSON-lines metrics file (a header line with the resolved configuration and
//! the run id first) and periodic crash-consistent checkpoints of the whole single-loop state
//! ([`SingleLoop::save_with`]), like [`Run::fit`](crate::train::Run::fit) does for the two-loop
//! trainer; [`FlowRun::resume`] continues a run bit-identically. Each update costs `B·k` tape-free
//! forwards (the chain) plus the estimator's forward and backward on `B` particles, against a fresh
//! sampling of every sample per round for the two-loop trainer (docs/gradient_flow.md §4).

use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::policy::EnergyModel;
use crate::reward::Reward;
use crate::schedule::NoiseSchedule;
use crate::score::Policy;
use crate::train::{
    step_rng, MetricsWriter, RunOptions, SamplerKind, SingleLoop, SingleLoopConfig, UpdateMetrics,
};
use crate::train::{Checkpoint, Periodic};

/// The single loop's starting population: `count` particles of length `seq_len` drawn from the
/// pretrained model with `sampler` (the law `p_ref` the chain starts from).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InitialParticles {
    /// The sampler that draws them.
    pub sampler: SamplerKind,
    /// Number of particles `B`.
    pub count: usize,
    /// Sequence length `L`.
    pub seq_len: usize,
}

/// A single-loop run ready to [`fit`](FlowRun::fit): `options.rounds` counts *updates* (one chain
/// advance of `k` steps and one gradient step each).
pub struct FlowRun<M, G>
where
    M: EnergyModel,
    G: Graph,
{
    /// The trainer: model, reference, particles, optimiser state.
    pub single_loop: SingleLoop<M, G>,
    /// Updates in total, progress, metrics and checkpoint directory.
    pub options: RunOptions,
    /// How often `fit` checkpoints to [`RunOptions::checkpoint`] (default: every 10 updates, keeping
    /// 2 generations).
    pub periodic: Periodic,
    /// Recorded under `"source"` in the metrics file's header line ([`FlowRun::header`]); `Null` by
    /// default.
    pub source: serde_json::Value,
}

impl<M, G> FlowRun<M, G>
where
    M: EnergyModel,
    G: Graph,
{
    /// Draws the `init.count` initial particles of length `init.seq_len` from `model` (the pretrained
    /// reference) under `diffusion` with `init.sampler`, seeded by `step_rng(config.seed, u64::MAX)` so that the chain's own steps
    /// (`step_rng(config.seed, i)`) never reuse its stream, and starts the single loop on them.
    ///
    /// # Errors
    /// Invalid configuration or sizes, a failing reward on the initial particles.
    pub fn start<S: NoiseSchedule, R: Reward + 'static>(
        model: M,
        diffusion: Diffusion<G, S>,
        reward: R,
        config: SingleLoopConfig,
        init: InitialParticles,
        options: RunOptions,
    ) -> Result<Self> {
        let InitialParticles {
            sampler,
            count,
            seq_len,
        } = init;
        crate::check::nonzero("particles", count)?;
        crate::check::nonzero("seq_len", seq_len)?;
        let mut rng = step_rng(config.seed, u64::MAX);
        let policy = Policy::current(&model);
        let drawn = sampler.draw(&policy, &diffusion, (count, seq_len), None, false, &mut rng)?;
        let graph = diffusion.graph;
        let single_loop = SingleLoop::new(model, graph, reward, config, drawn.tokens, count)?;
        Ok(Self {
            single_loop,
            options,
            periodic: Periodic::default(),
            source: serde_json::Value::Null,
        })
    }

    /// The metrics file's header line: sepo's version, `mode = "single_loop"`, the resolved
    /// configuration ([`SingleLoop::resolved_config`]), the reward's name and [`FlowRun::source`].
    /// Not the run options: a run continued with more updates is the same run.
    pub fn header(&self) -> serde_json::Value {
        serde_json::json!({
            "sepo_version": env!("CARGO_PKG_VERSION"),
            "mode": "single_loop",
            "config": self.single_loop.resolved_config(),
            "reward": self.single_loop.reward_name(),
            "source": self.source,
        })
    }

    /// The policy being fine-tuned.
    pub fn model(&self) -> &M {
        &self.single_loop.model
    }

    /// Runs the remaining updates (up to `options.rounds` in total) with the configured progress bar
    /// and metrics file (a header line first, [`MetricsWriter::for_run`]), committing a checkpoint
    /// at the start, every [`FlowRun::periodic`] updates and at the end if a directory is
    /// configured; returns the metrics of the updates run by this call. With a checkpoint directory
    /// it installs the Ctrl-C handler ([`crate::train::interrupt`]): a signal then stops the run at
    /// the next update boundary, saved, with [`Error::Interrupted`]. On error the metrics of the
    /// completed updates are already in the metrics file.
    pub fn fit(&mut self) -> Result<Vec<UpdateMetrics>> {
        let mut writer = match &self.options.metrics {
            Some(path) => Some(MetricsWriter::for_run(path, &self.header())?),
            None => None,
        };
        let remaining = self
            .options
            .rounds
            .saturating_sub(self.single_loop.updates());
        let checkpoint = self.options.checkpoint.as_ref().map(Checkpoint::new);
        if checkpoint.is_some() {
            // A program with its own handler keeps it (and may call `interrupt::request`).
            let _ = crate::train::interrupt::install();
        }
        crate::train::fit(
            &mut self.single_loop,
            remaining,
            self.options.progress,
            writer.as_mut(),
            checkpoint.as_ref().map(|c| (c, self.periodic)),
        )
    }

    /// Restores the run committed in the checkpoint directory by an earlier [`FlowRun::fit`], if
    /// there is one, and cuts the metrics file back to what that checkpoint covers (when it is the
    /// file configured now), so no update is logged twice. `Ok(true)` if it resumed, `Ok(false)` if
    /// no directory is configured or nothing was committed there yet; a damaged checkpoint or a
    /// changed configuration is an error ([`SingleLoop::resume`]).
    pub fn resume(&mut self) -> Result<bool> {
        let Some(dir) = &self.options.checkpoint else {
            return Ok(false);
        };
        let resumed = match self.single_loop.resume(&Checkpoint::new(dir)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Absorbing;
    use crate::reward::FnReward;
    use crate::sample::SamplerConfig;
    use crate::schedule::LogLinear;
    use crate::score::ScoreModel;
    use crate::score::Tabular;
    use crate::train::MetricsWriter;
    use dfdx::prelude::Cpu;

    fn start(options: RunOptions) -> Result<FlowRun<Tabular<f64, Cpu>, Absorbing>> {
        let graph = Absorbing::with_tokens(3)?;
        let logits: Vec<f64> = (0..9).map(|i| (i as f64 * 0.37).sin()).collect();
        let model = Tabular::<f64, Cpu>::new(&graph, 2, logits, &Cpu::default())?;
        let reward = FnReward::new("zeros", |s: &[usize]| {
            s.iter().filter(|&&t| t == 0).count() as f64
        });
        let init = InitialParticles {
            sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
            count: 16,
            seq_len: 2,
        };
        let diffusion = Diffusion::new(graph, LogLinear::default());
        let config = SingleLoopConfig::default();
        FlowRun::start(model, diffusion, reward, config, init, options)
    }

    /// The parameters, AdamW moments and step, particles, rewards and log-ratios as bits.
    fn state(run: &FlowRun<Tabular<f64, Cpu>, Absorbing>) -> Vec<u64> {
        let sl = &run.single_loop;
        let floats = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut out: Vec<u64> = sl
            .model
            .params()
            .to_host()
            .into_iter()
            .flat_map(|(_, _, v)| v)
            .map(f64::to_bits)
            .collect();
        out.extend(sl.particles().iter().map(|&t| t as u64));
        out.extend(floats(sl.rewards()));
        out.extend(floats(sl.log_ratios()));
        out.extend(sl.anchor().iter().map(|&t| t as u64));
        out.extend([sl.updates(), sl.evaluations()]);
        out
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("seconds");
                v
            })
            .collect()
    }

    /// `fit` runs exactly the remaining updates and writes a header line then one metrics line
    /// each; a run stopped after 5 updates (checkpoints every 2 and at the end) and resumed in a
    /// fresh run (whose own initial particles the checkpoint replaces) finishes its 8 updates with
    /// the uninterrupted run's state, bit for bit, and the same metrics lines once each.
    #[test]
    fn fit_checkpoints_and_a_resumed_run_is_bit_identical() {
        let dir = std::env::temp_dir().join(format!("sepo-flow-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = |name: &str, rounds| RunOptions {
            rounds,
            progress: false,
            metrics: Some(dir.join(format!("{name}.jsonl"))),
            checkpoint: Some(dir.join(name)),
        };
        let mut whole = start(options("whole", 8)).unwrap();
        assert_eq!(whole.single_loop.particles().len(), 32);
        let history = whole.fit().unwrap();
        assert_eq!(history.len(), 8);
        assert!(history
            .windows(2)
            .all(|w| w[1].evaluations > w[0].evaluations));
        assert!(whole.fit().unwrap().is_empty(), "all 8 updates are done");
        let expected = lines(&dir.join("whole.jsonl"));
        assert_eq!(expected.len(), 9, "a header and 8 updates");
        assert!(expected[0].get("header").is_some());

        let mut first = start(options("split", 5)).unwrap();
        first.periodic.every = 2;
        first.fit().unwrap();
        // A crash after update 6 was logged but before its save: the resume rewinds the log.
        let mut lost = start(options("split", 6)).unwrap();
        assert!(lost.resume().unwrap());
        lost.single_loop.step().unwrap();
        let mut w = MetricsWriter::append(&dir.join("split.jsonl")).unwrap();
        w.write(&serde_json::json!({"update": 5})).unwrap();
        drop(w);
        let mut second = start(options("split", 8)).unwrap();
        assert!(second.resume().unwrap());
        assert_eq!(second.single_loop.updates(), 5);
        second.fit().unwrap();
        assert_eq!(state(&second), state(&whole));
        assert_eq!(lines(&dir.join("split.jsonl")), expected);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A resume with another seed is refused naming `seed`; with nothing committed it reports
    /// `Ok(false)`.
    #[test]
    fn a_resume_with_another_config_is_refused() {
        let dir = std::env::temp_dir().join(format!("sepo-flow-mismatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = RunOptions {
            rounds: 2,
            progress: false,
            metrics: None,
            checkpoint: Some(dir.clone()),
        };
        let mut fresh = start(options.clone()).unwrap();
        assert!(!fresh.resume().unwrap());
        fresh.fit().unwrap();
        let mut other = start(options).unwrap();
        let mut config = other.single_loop.config().clone();
        config.seed = 5;
        other.single_loop = SingleLoop::new(
            other.single_loop.model.clone(),
            Absorbing::with_tokens(3).unwrap(),
            FnReward::new("zeros", |s: &[usize]| s.len() as f64),
            config,
            other.single_loop.particles().to_vec(),
            16,
        )
        .unwrap();
        match other.resume() {
            Err(Error::ResumeMismatch { key, .. }) => assert_eq!(key, "seed"),
            e => panic!("expected a mismatch on `seed`, got {e:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
