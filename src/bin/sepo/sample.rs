//! `sepo sample`: samples from a checkpoint, unconditional or conditioned on prompts (a prefix, or a
//! prefix and a suffix to infill between), detokenised, one per line.

use std::io::Write;
use std::path::PathBuf;

use rand::SeedableRng;

use sepo::config::{AnySchedule, Value};
use sepo::dfdx::prelude::Cpu;
use sepo::graph::{Absorbing, Graph, Uniform};
use sepo::sample::{Condition, Predictor, SamplerConfig, SamplerKind};
use sepo::score::{EnergyModel, ModelKind, ScoreModel};
use sepo::text::{condition_from_template, Infill};
use sepo::train::FromStates;
use sepo::{Diffusion, Error, Policy, Result};

use super::common::{self, WithModel};

/// Options of `sepo sample`.
#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint directory of the model (pretrained or fine-tuned).
    #[arg(long)]
    model: PathBuf,
    /// Samples per prompt (or in all, without prompts).
    #[arg(long, default_value_t = 16)]
    num: usize,
    /// Sampler: first-hitting (absorbing graphs; their default), tweedie (uniform graphs' default)
    /// or euler.
    #[arg(long)]
    sampler: Option<String>,
    /// Steps of the tweedie and euler samplers.
    #[arg(long, default_value_t = 128)]
    steps: usize,
    /// The model's forward process: absorbing or uniform (default: the one its score head was
    /// built for).
    #[arg(long)]
    graph: Option<String>,
    /// Its noise schedule, as in a run file.
    #[arg(long, default_value = "LogLinear")]
    schedule: String,
    /// Tokenizer: nucleotide, chars:ALPHABET, bpe:PATH/tokenizer.json, or ids (whitespace-separated).
    #[arg(long, default_value = "nucleotide")]
    tokenizer: String,
    /// Text every sample starts with.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Text every sample ends with (infilling between prefix and suffix).
    #[arg(long, default_value = "")]
    suffix: String,
    /// A file of prompts, one per line: `prefix` or `prefix<TAB>suffix`; `--num` samples each.
    #[arg(long, conflicts_with_all = ["prefix", "suffix"])]
    prompts: Option<PathBuf>,
    /// Write the samples here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.model.clone();
    common::with_model(&dir, Job(args))
}

struct Job(Args);

impl WithModel for Job {
    type Out = ();
    fn run<M>(self, model: M) -> Result<()>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + ModelKind + Clone + 'static,
    {
        let graph = match &self.0.graph {
            Some(g) => g.clone(),
            None => common::graph_of(&self.0.model)?,
        };
        match graph.as_str() {
            "absorbing" => draw::<M, Absorbing>(&self.0, model),
            "uniform" => draw::<M, Uniform>(&self.0, model),
            other => Err(Error::invalid(
                "--graph",
                other,
                "expected absorbing or uniform",
            )),
        }
    }
}

fn draw<M, G>(args: &Args, model: M) -> Result<()>
where
    M: ScoreModel<Elem = f32, Device = Cpu>,
    G: Graph + FromStates,
{
    let tokenizer = common::tokenizer(&args.tokenizer)?;
    let tok = tokenizer.as_deref();
    let graph = G::from_states(model.num_states())?;
    let schedule = match sepo::config::parse_value("--schedule", &args.schedule)? {
        Value::Call(call) => AnySchedule::from_call(&call)?,
        other => {
            return Err(Error::invalid(
                "--schedule",
                &args.schedule,
                format!(
                    "expected a schedule such as `LogLinear(eps = 1e-3)`, found {}",
                    other.describe()
                ),
            ))
        }
    };
    let diffusion = Diffusion::new(graph, schedule);
    let seq_len = sepo::train::seq_len_of(&model, None)?;
    let name = match &args.sampler {
        Some(name) => name.as_str(),
        None if diffusion.graph.mask().is_some() => "first-hitting",
        None => "tweedie",
    };
    let sampler = match name {
        "first-hitting" => SamplerKind::FirstHitting(SamplerConfig::default()),
        "tweedie" | "euler" => SamplerKind::Grid(SamplerConfig {
            predictor: if name == "euler" {
                Predictor::Euler
            } else {
                Predictor::Tweedie
            },
            steps: args.steps,
            ..SamplerConfig::default()
        }),
        other => {
            return Err(Error::invalid(
                "--sampler",
                other,
                "expected first-hitting, tweedie or euler",
            ))
        }
    };
    let prompts: Vec<(String, String)> = match &args.prompts {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.split_once('\t') {
                Some((p, s)) => (p.to_string(), s.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect(),
        None => vec![(args.prefix.clone(), args.suffix.clone())],
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut lines = Vec::new();
    for (prefix, suffix) in &prompts {
        let condition = condition(tok, prefix, suffix, seq_len, &diffusion.graph)?;
        let samples = sampler.draw(
            &Policy::current(&model),
            &diffusion,
            (args.num, seq_len),
            condition.as_ref(),
            false,
            &mut rng,
        )?;
        for s in samples.sequences() {
            lines.push(common::decode(tok, s)?);
        }
    }
    let text = lines.join("\n") + "\n";
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?,
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|source| Error::Io {
                path: "<stdout>".into(),
                source,
            })?,
    }
    Ok(())
}

/// The sampler's condition for `prefix … suffix` (none for empty ones): with a tokenizer, as SEDD
/// infills ([`Infill`]); with ids, the prefix's and suffix's ids at the two ends.
fn condition<G: Graph>(
    tokenizer: Option<&dyn sepo::text::Tokenizer>,
    prefix: &str,
    suffix: &str,
    seq_len: usize,
    graph: &G,
) -> Result<Option<Condition>> {
    if prefix.is_empty() && suffix.is_empty() {
        return Ok(None);
    }
    match tokenizer {
        Some(t) => Infill::new(t, prefix, suffix, seq_len)?
            .condition()
            .map(Some),
        None => {
            let (p, s) = (common::encode(None, prefix)?, common::encode(None, suffix)?);
            if p.len() + s.len() > seq_len {
                return Err(Error::invalid(
                    "--prefix",
                    prefix,
                    format!("prefix and suffix need more than the {seq_len} positions"),
                ));
            }
            let mask = graph.mask().unwrap_or(graph.num_states());
            let mut template = p;
            template.resize(seq_len - s.len(), mask);
            template.extend(s);
            condition_from_template(&template, mask).map(Some)
        }
    }
}
