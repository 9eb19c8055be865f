//! A small fine-tuning run for the resume tests: a tiny MLP on the absorbing graph over 4 tokens,
//! length 3, every piece of state a checkpoint must carry in use (AdamW moments and step, a
//! warm-up/cosine learning rate read from the step, a KL to a reference refreshed every 3 rounds).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::sample::SamplerConfig;
use sepo::train::{FinetuneConfig, Finetuner, SamplerKind};

/// The run's reward: the number of `2`s.
pub type Twos = FnReward<fn(&[usize]) -> f64>;
/// The run's trainer.
pub type Tiny = Finetuner<Mlp<f32, Cpu>, Absorbing, LogLinear, Twos>;

fn count_twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

/// The reward.
pub fn twos() -> Twos {
    FnReward::new("twos", count_twos as fn(&[usize]) -> f64)
}

/// The configuration (seed 11).
pub fn config() -> FinetuneConfig {
    FinetuneConfig {
        groups: 2,
        group_size: 4,
        sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
        epochs: 2,
        minibatch: 4,
        optimizer: AdamW::with_lr(3e-2),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 3,
            total: 200,
            min_ratio: 0.1,
        },
        kl: 0.05,
        reference_refresh: Some(3),
        seed: 11,
        ..FinetuneConfig::new(3)
    }
}

/// A trainer with `config`, its MLP initialised from `init` (a resume must overwrite it all).
pub fn tiny_with(init: u64, config: FinetuneConfig) -> Tiny {
    let model = Mlp::new(
        MlpConfig::tiny(5, 3, ScoreHead::Absorbing),
        &Cpu::default(),
        init,
    )
    .unwrap();
    Finetuner::new(
        model,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        twos(),
        config,
    )
    .unwrap()
}

/// [`tiny_with`] the default [`config`].
pub fn tiny(init: u64) -> Tiny {
    tiny_with(init, config())
}

/// The bits of every float of a store.
pub fn bits(store: &ParamStore<f32, Cpu>) -> Vec<u32> {
    store
        .to_host()
        .into_iter()
        .flat_map(|(_, _, v)| v)
        .map(f32::to_bits)
        .collect()
}

/// Policy, reference and AdamW moments as bits, the AdamW step and the round.
pub type StateBits = (Vec<u32>, Vec<u32>, Vec<u32>, u64, u64);

/// Everything a round depends on, as bits: policy, reference, AdamW step and moments, round.
pub fn state_bits(ft: &Tiny) -> StateBits {
    let moments = ft
        .optimizer_state()
        .m
        .iter()
        .chain(&ft.optimizer_state().v)
        .flat_map(|t| t.as_vec())
        .map(f32::to_bits)
        .collect();
    (
        bits(ft.model().params()),
        bits(ft.reference()),
        moments,
        ft.optimizer_state().step,
        ft.completed(),
    )
}

/// The metrics lines of a file with the wall-clock fields removed (everything else must match
/// bit for bit: floats are written in their shortest round-trip form).
pub fn metric_lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .enumerate()
        .filter(|(i, l)| {
            // `Run::fit`'s header line (resolved config, run id): once, first; not a round.
            let header = l.starts_with("{\"run_id\"") && l.contains("\"header\":");
            assert!(!header || *i == 0, "a header line after the first: {l}");
            !header
        })
        .map(|(_, l)| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("whole JSON lines");
            let obj = v.as_object_mut().unwrap();
            for k in [
                "run_id",
                "samples_per_s",
                "time_sample",
                "time_score",
                "time_backward",
            ] {
                obj.remove(k);
            }
            v
        })
        .collect()
}

/// A fresh directory under the system's temporary one.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sepo-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
