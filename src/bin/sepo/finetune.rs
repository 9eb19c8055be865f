//! `sepo finetune`: a SEPO run as a TOML file describes it ([`sepo::config`]: `policy!`'s keys and
//! defaults), over the built-in rewards by name; resumable, with metrics and an optional plot.

use std::path::PathBuf;

use sepo::config::{AnySchedule, RewardRegistry, RunConfig};
use sepo::dfdx::prelude::Cpu;
use sepo::graph::{Absorbing, Graph, Uniform};
use sepo::score::{EnergyModel, ModelKind, ScoreModel};
use sepo::train::FromStates;
use sepo::{Error, Result};

use super::common::{self, WithModel};

/// Options of `sepo finetune`.
#[derive(clap::Args)]
pub struct Args {
    /// The run file (TOML, `policy!`'s keys: `reward = "gc_content"`, `sampler = "Tweedie(steps =
    /// 64)"`, `kl = 0.05`, ..).
    #[arg(long)]
    config: PathBuf,
    /// Checkpoint directory of the model to fine-tune (instead of the file's `model`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Total rounds (instead of the file's `iterations`).
    #[arg(long)]
    rounds: Option<u64>,
    /// Metrics file, one JSON line per round after a header (instead of the file's `metrics`).
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Checkpoint directory of the run (instead of the file's `checkpoint_dir`).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Continue the run committed in the checkpoint directory, if there is one.
    #[arg(long)]
    resume: bool,
    /// Checkpoint every this many rounds (default 10).
    #[arg(long)]
    save_every: Option<u64>,
    /// Log the first completion of each group every this many rounds.
    #[arg(long)]
    log_completions: Option<u64>,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Draw reward, eval reward and KL against rounds into this SVG file (needs a metrics file).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the resolved fine-tuning configuration (JSON) and stop.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args) -> Result<()> {
    let config = RunConfig::load(&args.config)?;
    let dir = match (&args.model, &config.model) {
        (Some(dir), _) => dir.clone(),
        (None, Some((_, dir))) => dir.clone(),
        (None, None) => {
            return Err(Error::Config {
                key: "model".into(),
                reason: "no model: set `model = 'Transformer(checkpoint = \"dir\")'` in the file \
                         or pass --model DIR"
                    .into(),
            })
        }
    };
    if let Some((kind, _)) = &config.model {
        let found = common::kind(&dir)?;
        if !kind.eq_ignore_ascii_case(&found) {
            return Err(Error::CheckpointMismatch {
                path: dir,
                what: "model kind".into(),
                expected: kind.clone(),
                found,
            });
        }
    }
    let schedule = config.any_schedule()?;
    common::with_model(
        &dir,
        Job {
            args,
            config,
            schedule,
        },
    )
}

struct Job {
    args: Args,
    config: RunConfig,
    schedule: AnySchedule,
}

impl WithModel for Job {
    type Out = ();
    fn run<M>(self, model: M) -> Result<()>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + ModelKind + Clone + 'static,
    {
        match self.config.graph.as_str() {
            "Uniform" => self.go::<M, Uniform>(model),
            _ => self.go::<M, Absorbing>(model),
        }
    }
}

impl Job {
    fn go<M, G>(self, model: M) -> Result<()>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + 'static,
        G: Graph + FromStates,
    {
        if self.config.is_single_loop() {
            return self.flow::<M, G>(model);
        }
        let Job {
            args,
            config,
            schedule,
        } = self;
        if args.dry_run {
            let seq_len = sepo::train::seq_len_of(&model, config.seq_len)?;
            let resolved = config.finetune_config(seq_len)?;
            let json = serde_json::to_string_pretty(&resolved).expect("configs serialise");
            println!("{json}");
            return Ok(());
        }
        let mut run =
            config.build_with::<M, G, AnySchedule>(model, schedule, &RewardRegistry::default())?;
        if let Some(r) = args.rounds {
            run.options.rounds = r;
        }
        if let Some(m) = args.metrics {
            run.options.metrics = Some(m);
        }
        if let Some(c) = args.checkpoint_dir {
            run.options.checkpoint = Some(c);
        }
        if args.no_progress {
            run.options.progress = false;
        }
        if let Some(every) = args.save_every {
            run.periodic.every = every;
        }
        run.finetuner = run.finetuner.with_log_completions(args.log_completions);
        if args.resume {
            if run.resume()? {
                println!("resumed at round {}", run.finetuner.completed());
            }
        } else if let Some(dir) = &run.options.checkpoint {
            if sepo::train::Checkpoint::new(dir).open().is_ok() {
                return Err(Error::invalid(
                    "checkpoint_dir",
                    dir.display(),
                    "holds a committed run: pass --resume to continue it, or choose another directory",
                ));
            }
        }
        let history = run.fit()?;
        if let (Some(first), Some(last)) = (history.first(), history.last()) {
            let eval = |m: &sepo::train::RoundMetrics| {
                m.eval_reward
                    .map_or(String::new(), |e| format!(", eval_reward {e:.4}"))
            };
            println!(
                "round {}: reward {:.4}{} → round {}: reward {:.4}{}",
                first.round,
                first.reward,
                eval(first),
                last.round,
                last.reward,
                eval(last)
            );
        }
        if let Some(dir) = &run.options.checkpoint {
            println!("checkpoint: {}", dir.display());
        }
        if let Some(out) = &args.plot {
            let metrics = run.options.metrics.as_ref().ok_or_else(|| {
                Error::invalid(
                    "--plot",
                    out.display(),
                    "needs a metrics file (`metrics` or --metrics)",
                )
            })?;
            sepo::plot::plot_metrics(metrics, out)?;
            println!("plot: {}", out.display());
        }
        Ok(())
    }

    /// `mode = "SingleLoop"`: the gradient-flow single loop (updates instead of rounds), checkpointed
    /// and resumed like a two-loop run.
    fn flow<M, G>(self, model: M) -> Result<()>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + 'static,
        G: Graph + FromStates,
    {
        let Job {
            args,
            config,
            schedule,
        } = self;
        if args.dry_run {
            let resolved = config.single_loop_config(&schedule)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&resolved).expect("configs serialise")
            );
            return Ok(());
        }
        let mut run = config.build_flow_with::<M, G, AnySchedule>(
            model,
            schedule,
            &RewardRegistry::default(),
        )?;
        if let Some(r) = args.rounds {
            run.options.rounds = r;
        }
        if let Some(m) = args.metrics {
            run.options.metrics = Some(m);
        }
        if let Some(c) = args.checkpoint_dir {
            run.options.checkpoint = Some(c);
        }
        if args.no_progress {
            run.options.progress = false;
        }
        if let Some(every) = args.save_every {
            run.periodic.every = every;
        }
        if args.resume {
            if run.resume()? {
                println!("resumed at update {}", run.single_loop.updates());
            }
        } else if let Some(dir) = &run.options.checkpoint {
            if sepo::train::Checkpoint::new(dir).open().is_ok() {
                return Err(Error::invalid(
                    "checkpoint_dir",
                    dir.display(),
                    "holds a committed run: pass --resume to continue it, or choose another directory",
                ));
            }
        }
        let history = run.fit()?;
        if let (Some(first), Some(last)) = (history.first(), history.last()) {
            println!(
                "update {}: reward {:.4} → update {}: reward {:.4}",
                first.update, first.reward, last.update, last.reward
            );
        }
        if let Some(out) = &args.plot {
            let metrics = run.options.metrics.as_ref().ok_or_else(|| {
                Error::invalid(
                    "--plot",
                    out.display(),
                    "needs a metrics file (`metrics` or --metrics)",
                )
            })?;
            sepo::plot::plot_metrics(metrics, out)?;
            println!("plot: {}", out.display());
        }
        Ok(())
    }
}
