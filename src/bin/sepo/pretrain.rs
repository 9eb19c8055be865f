//! `sepo pretrain`: DWDSE pretraining of a transformer or an MLP on a corpus file (or the built-in
//! DNA-like corpus), committed to a checkpoint directory that `sepo finetune`, `sepo sample` and
//! `Checkpoint::load_model` read.

use std::path::PathBuf;

use sepo::dfdx::prelude::Cpu;
use sepo::graph::{Absorbing, Graph, Uniform};
use sepo::nn::AdamW;
use sepo::schedule::LogLinear;
use sepo::score::{Mlp, MlpConfig, ScoreHead, ScoreModel, Transformer, TransformerConfig};
use sepo::text::{load_corpus, Format, Packing};
use sepo::train::{Checkpoint, Corpus, LrSchedule, MetricsWriter, PretrainConfig, Pretrainer};
use sepo::{Error, Result};

use super::common;

/// Options of `sepo pretrain`.
#[derive(clap::Args)]
pub struct Args {
    /// Corpus file: FASTA/FASTQ (`.fa`, `.fasta`, `.fq`, `.fastq`, gzipped or not) or text, one
    /// record per line.
    #[arg(long, required_unless_present = "demo")]
    corpus: Option<PathBuf>,
    /// Use the built-in DNA-like corpus (4,000 sequences of 32 nucleotides) instead of a file.
    #[arg(long, conflicts_with = "corpus")]
    demo: bool,
    /// Tokenizer: nucleotide, chars:ALPHABET or bpe:PATH/tokenizer.json.
    #[arg(long, default_value = "nucleotide")]
    tokenizer: String,
    /// Sequence length (records are concatenated and cut into chunks of this many tokens).
    #[arg(long, default_value_t = 32)]
    len: usize,
    /// Architecture: transformer or mlp.
    #[arg(long, default_value = "transformer")]
    arch: String,
    /// Forward process: absorbing (masking) or uniform.
    #[arg(long, default_value = "absorbing")]
    graph: String,
    /// Transformer width (MLP: hidden units).
    #[arg(long, default_value_t = 64)]
    dim: usize,
    /// Transformer attention heads.
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Transformer blocks (MLP: hidden layers).
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = 600)]
    steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Peak learning rate (AdamW), reached after `--warmup` steps, then cosine to a tenth.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 50)]
    warmup: u64,
    /// Seed of the initialisation and the batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint directory to commit the model to (its metrics go to `pretrain.jsonl` there).
    #[arg(long)]
    out: PathBuf,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (sequences, tokens) = match &args.corpus {
        None => (sepo::demo::corpus(sepo::demo::CORPUS), 4),
        Some(path) => {
            let tokenizer = common::tokenizer(&args.tokenizer)?
                .ok_or_else(|| Error::invalid("--tokenizer", "ids", "pretraining reads text"))?;
            let name = path.to_string_lossy().to_lowercase();
            let fastx = [
                ".fa",
                ".fasta",
                ".fq",
                ".fastq",
                ".fa.gz",
                ".fasta.gz",
                ".fq.gz",
                ".fastq.gz",
            ]
            .iter()
            .any(|e| name.ends_with(e));
            let format = if fastx { Format::Fastx } else { Format::Lines };
            let packing = Packing::Concatenate {
                separator: tokenizer.eos_id(),
            };
            let seqs = load_corpus(path, format, tokenizer.as_ref(), args.len, packing)?;
            (seqs, tokenizer.vocab_size())
        }
    };
    let len = sequences.first().map_or(args.len, Vec::len);
    let corpus = Corpus::new(&sequences, tokens)?;
    println!(
        "{} sequences of {len} tokens over {tokens} tokens; {} steps of {}",
        corpus.len(),
        args.steps,
        args.batch
    );
    let dev = Cpu::default();
    match (args.arch.as_str(), args.graph.as_str()) {
        ("transformer", "absorbing") => {
            let c = transformer(&args, tokens + 1, len, ScoreHead::Absorbing);
            fit(
                &args,
                Transformer::new(c, &dev, args.seed)?,
                Absorbing::with_tokens(tokens)?,
                &corpus,
            )
        }
        ("transformer", "uniform") => {
            let c = transformer(&args, tokens, len, ScoreHead::Uniform);
            fit(
                &args,
                Transformer::new(c, &dev, args.seed)?,
                Uniform::new(tokens)?,
                &corpus,
            )
        }
        ("mlp", "absorbing") => {
            let c = mlp(&args, tokens + 1, len, ScoreHead::Absorbing);
            fit(
                &args,
                Mlp::new(c, &dev, args.seed)?,
                Absorbing::with_tokens(tokens)?,
                &corpus,
            )
        }
        ("mlp", "uniform") => {
            let c = mlp(&args, tokens, len, ScoreHead::Uniform);
            fit(
                &args,
                Mlp::new(c, &dev, args.seed)?,
                Uniform::new(tokens)?,
                &corpus,
            )
        }
        ("transformer" | "mlp", other) => Err(Error::invalid(
            "--graph",
            other,
            "expected absorbing or uniform",
        )),
        (other, _) => Err(Error::invalid(
            "--arch",
            other,
            "expected transformer or mlp",
        )),
    }
}

fn transformer(args: &Args, states: usize, len: usize, head: ScoreHead) -> TransformerConfig {
    TransformerConfig {
        dim: args.dim,
        heads: args.heads,
        layers: args.layers,
        ..TransformerConfig::tiny(states, len, head)
    }
}

fn mlp(args: &Args, states: usize, len: usize, head: ScoreHead) -> MlpConfig {
    MlpConfig {
        hidden: args.dim,
        depth: args.layers,
        ..MlpConfig::tiny(states, len, head)
    }
}

fn fit<M, G>(args: &Args, model: M, graph: G, corpus: &Corpus) -> Result<()>
where
    M: ScoreModel<Elem = f32, Device = Cpu> + sepo::score::ModelKind,
    G: Graph + serde::Serialize,
{
    let config = PretrainConfig {
        batch_size: args.batch,
        optimizer: AdamW::with_lr(args.lr),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: args.warmup,
            total: args.steps.max(args.warmup + 1),
            min_ratio: 0.1,
        },
        seed: args.seed,
        ..PretrainConfig::default()
    };
    let mut trainer = Pretrainer::new(model, graph, LogLinear::default(), config)?;
    let mut metrics = MetricsWriter::append(&args.out.join("pretrain.jsonl"))?;
    let history = trainer.fit(corpus, args.steps, !args.no_progress, Some(&mut metrics))?;
    trainer.save(&Checkpoint::new(&args.out))?;
    if let (Some(first), Some(last)) = (history.first(), history.last()) {
        println!("loss {:.4} → {:.4}", first.loss, last.loss);
    }
    println!("checkpoint: {}", args.out.display());
    Ok(())
}
