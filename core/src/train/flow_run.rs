//! A configured single-loop (gradient-flow) run: what `policy!` builds for `mode: SingleLoop`.
//!
//! [`FlowRun::start`] draws the initial particles with the pretrained model's own sampler (the law the
//! chain starts from, `p_ref`), hands them to a [`SingleLoop`], and [`FlowRun::fit`] runs its updates
//! with a progress bar and a JSON-lines metrics file, like [`Run::fit`](crate::train::Run::fit) does for
//! the two-loop trainer. Each update costs `B·k` tape-free forwards (the chain) plus the estimator's
//! forward and backward on `B` particles, against a fresh sampling of every sample per round for the
//! two-loop trainer (docs/gradient_flow.md §4).

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
    /// Updates in total, progress and metrics (`checkpoint` must be `None`: single-loop runs keep
    /// their particles in memory only).
    pub options: RunOptions,
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
    /// Invalid configuration or sizes, a checkpoint directory in `options`, a failing reward on the
    /// initial particles.
    pub fn start<S: NoiseSchedule>(
        model: M,
        diffusion: Diffusion<G, S>,
        reward: Box<dyn Reward>,
        config: SingleLoopConfig,
        init: InitialParticles,
        options: RunOptions,
    ) -> Result<Self> {
        if let Some(dir) = &options.checkpoint {
            return Err(Error::invalid(
                "checkpoint",
                dir.display(),
                "single-loop runs are not checkpointed: their particles live in memory",
            ));
        }
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
        })
    }

    /// The policy being fine-tuned.
    pub fn model(&self) -> &M {
        &self.single_loop.model
    }

    /// Runs the remaining updates (up to `options.rounds` in total) with the configured progress bar
    /// and metrics file; returns the metrics of the updates run by this call. On error the metrics of
    /// the completed updates are already in the metrics file.
    pub fn fit(&mut self) -> Result<Vec<UpdateMetrics>> {
        let mut writer = match &self.options.metrics {
            Some(path) => Some(MetricsWriter::append(path)?),
            None => None,
        };
        let remaining = self
            .options
            .rounds
            .saturating_sub(self.single_loop.updates());
        let progress = self.options.progress;
        crate::train::fit(
            &mut self.single_loop,
            remaining,
            progress,
            writer.as_mut(),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Absorbing;
    use crate::reward::FnReward;
    use crate::sample::SamplerConfig;
    use crate::schedule::LogLinear;
    use crate::score::Tabular;
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
        FlowRun::start(model, diffusion, Box::new(reward), config, init, options)
    }

    /// `fit` runs exactly the remaining updates, writes one metrics line each, and spends `B·k` chain
    /// forwards plus the estimator's per update; a checkpoint directory is refused up front.
    #[test]
    fn fit_runs_the_remaining_updates_and_writes_metrics() {
        let dir = std::env::temp_dir().join(format!("sepo-flow-run-{}", std::process::id()));
        let metrics = dir.join("metrics.jsonl");
        let _ = std::fs::remove_dir_all(&dir);
        let mut run = start(RunOptions {
            rounds: 5,
            progress: false,
            metrics: Some(metrics.clone()),
            checkpoint: None,
        })
        .unwrap();
        assert_eq!(run.single_loop.particles().len(), 32);
        let history = run.fit().unwrap();
        assert_eq!(history.len(), 5);
        assert!(history
            .windows(2)
            .all(|w| w[1].evaluations > w[0].evaluations));
        assert!(run.fit().unwrap().is_empty(), "all 5 updates are done");
        let lines = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(lines.lines().count(), 5);
        let _ = std::fs::remove_dir_all(&dir);

        let err = start(RunOptions {
            checkpoint: Some(dir),
            ..RunOptions::default()
        });
        assert!(
            matches!(
                err,
                Err(Error::InvalidParameter {
                    name: "checkpoint",
                    ..
                })
            ),
            "{:?}",
            err.err()
        );
    }
}
