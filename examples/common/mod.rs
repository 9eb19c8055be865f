//! Shared set-up of the DNA-like examples: the corpus, the tiny transformer and its pretraining.
#![allow(dead_code)]

pub mod assess;

use std::path::Path;

use sepo::data::{kmer_frequencies, pearson, DnaLike};
use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::score::{Transformer, TransformerConfig};
use sepo::train::MetricsWriter;

/// Sequence length of the examples.
pub const LEN: usize = 32;

/// The synthetic DNA-like corpus (tokens 0..4 = A, C, G, T).
pub fn corpus(count: usize) -> Vec<Vec<usize>> {
    DnaLike::new(1).corpus(count, LEN, 2)
}

/// The forward process: 4 nucleotides plus the mask, SEDD's log-linear schedule.
pub fn process() -> (Absorbing, LogLinear) {
    (
        Absorbing::with_tokens(4).expect("valid"),
        LogLinear::default(),
    )
}

/// A tiny diffusion transformer over 4 nucleotides + mask.
pub fn tiny_transformer(seed: u64) -> sepo::Result<Transformer<f32, Cpu>> {
    let config = TransformerConfig {
        dim: 64,
        heads: 4,
        layers: 2,
        ..TransformerConfig::tiny(5, LEN, ScoreHead::Absorbing)
    };
    Transformer::new(config, &Cpu::default(), seed)
}

/// Pretrains (or loads, if `dir` already holds a checkpoint) the tiny transformer with DWDSE.
pub fn pretrained(dir: &Path, steps: u64, progress: bool) -> sepo::Result<Transformer<f32, Cpu>> {
    let ckpt = Checkpoint::new(dir);
    if ckpt.exists() {
        let (model, _) = ckpt.load_model::<Transformer<f32, Cpu>>(&Cpu::default())?;
        return Ok(model);
    }
    let (graph, schedule) = process();
    let data = Corpus::new(&corpus(4_000), 4)?;
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

/// Pearson correlation of 3-mer frequencies between `samples` and the corpus (the field's naturalness
/// check; 1 is perfect).
pub fn kmer_correlation(samples: &[Vec<usize>]) -> sepo::Result<f64> {
    let reference = kmer_frequencies(&corpus(4_000), 3, 4)?;
    Ok(pearson(&reference, &kmer_frequencies(samples, 3, 4)?))
}
