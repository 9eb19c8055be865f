//! The DNA-like toy task the examples, the benchmarks and the README run on: a synthetic corpus of
//! length-32 sequences over A, C, G, T (tokens 0..4) with planted motifs, the absorbing graph with
//! SEDD's log-linear schedule, a tiny diffusion transformer, and its pretraining (or reloading, when
//! a checkpoint is already there).

use std::path::Path;

use sepo_core::data::DnaLike;
use sepo_core::dfdx::prelude::Cpu;
use sepo_core::graph::Absorbing;
use sepo_core::nn::AdamW;
use sepo_core::schedule::LogLinear;
use sepo_core::score::{ScoreHead, Transformer, TransformerConfig};
use sepo_core::train::{Checkpoint, Corpus, LrSchedule, MetricsWriter, PretrainConfig, Pretrainer};
use sepo_core::Result;

/// Sequence length.
pub const LEN: usize = 32;

/// Size of the reference corpus the pretraining and the k-mer correlation use.
pub const CORPUS: usize = 4_000;

/// `count` sequences of the DNA-like corpus (generator seed 1, draw seed 2).
pub fn corpus(count: usize) -> Vec<Vec<usize>> {
    DnaLike::new(1).corpus(count, LEN, 2)
}

/// The forward process: 4 nucleotides plus the mask, SEDD's log-linear schedule.
pub fn process() -> (Absorbing, LogLinear) {
    (
        Absorbing::with_tokens(4).expect("4 tokens"),
        LogLinear::default(),
    )
}

/// The tiny diffusion transformer over 4 nucleotides + mask: width 64, 4 heads, 2 layers.
pub fn tiny_transformer(seed: u64) -> Result<Transformer<f32, Cpu>> {
    let config = TransformerConfig {
        dim: 64,
        heads: 4,
        layers: 2,
        ..TransformerConfig::tiny(5, LEN, ScoreHead::Absorbing)
    };
    Transformer::new(config, &Cpu::default(), seed)
}

/// Pretrains the tiny transformer with DWDSE for `steps` steps (batch 64, AdamW lr 2e-3, 50 warm-up
/// steps then cosine to 0.1) on [`CORPUS`] sequences, logging to `dir/pretrain.jsonl` and committing
/// the checkpoint to `dir`; or loads it, if `dir` already holds one.
pub fn pretrained(dir: &Path, steps: u64, progress: bool) -> Result<Transformer<f32, Cpu>> {
    let ckpt = Checkpoint::new(dir);
    if ckpt.exists() {
        return Ok(ckpt.load_model::<Transformer<f32, Cpu>>(&Cpu::default())?.0);
    }
    let (graph, schedule) = process();
    let data = Corpus::new(&corpus(CORPUS), 4)?;
    let config = PretrainConfig {
        batch_size: 64,
        optimizer: AdamW::with_lr(2e-3),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 50,
            total: steps,
            min_ratio: 0.1,
        },
        ..PretrainConfig::default()
    };
    let mut trainer = Pretrainer::new(tiny_transformer(0)?, graph, schedule, config)?;
    let mut metrics = MetricsWriter::append(&dir.join("pretrain.jsonl"))?;
    trainer.fit(&data, steps, progress, Some(&mut metrics))?;
    trainer.save(&ckpt)?;
    Ok(trainer.model)
}

/// Pearson correlation of the 3-mer frequencies of `samples` with the corpus's (1 is perfect).
pub fn kmer_correlation(samples: &[Vec<usize>]) -> Result<f64> {
    sepo_core::text::kmer_correlation(samples, &corpus(CORPUS), 3, 4)
}
