//! A small fine-tuning run for the resume tests: a tiny MLP on the absorbing graph over 4 tokens,
//! length 3, every piece of state a checkpoint must carry in use (AdamW moments and step, a
//! warm-up/cosine learning rate read from the step, a KL to a reference refreshed every 3 rounds).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::sample::SamplerConfig;
use sepo::train::{
    FinetuneConfig, Finetuner, FlowRun, InitialParticles, RatioMode, RunOptions, SamplerKind,
    SingleLoopConfig,
};

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
                "seconds",
            ] {
                obj.remove(k);
            }
            v
        })
        .collect()
}

/// A single-loop run on the same tiny MLP: 6 particles, tracked log-ratios with a KL (so each
/// particle's `ℓ̂_b` carries its history), AdamW under warm-up/cosine, seed 13.
pub type TinyFlow = FlowRun<Mlp<f32, Cpu>, Absorbing>;

/// [`TinyFlow`] with `options`, its MLP initialised from `init`, its initial particles drawn from it
/// (a resume must overwrite them all).
pub fn tiny_flow(init: u64, options: RunOptions) -> TinyFlow {
    let model = Mlp::new(
        MlpConfig::tiny(5, 3, ScoreHead::Absorbing),
        &Cpu::default(),
        init,
    )
    .unwrap();
    let mut config = SingleLoopConfig {
        ratio: RatioMode::Tracked,
        steps_per_update: 2,
        optimizer: AdamW::with_lr(3e-2),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 3,
            total: 200,
            min_ratio: 0.1,
        },
        seed: 13,
        ..SingleLoopConfig::default()
    };
    config.kl = 0.1;
    let init = InitialParticles {
        sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
        count: 6,
        seq_len: 3,
    };
    let diffusion = Diffusion::new(Absorbing::with_tokens(4).unwrap(), LogLinear::default());
    FlowRun::start(model, diffusion, twos(), config, init, options).unwrap()
}

/// Everything a single-loop update depends on, as bits: policy, reference, AdamW moments and step,
/// particles, cached rewards, log-ratios, anchor, update and evaluation counters.
pub fn flow_bits(run: &TinyFlow) -> Vec<u64> {
    let sl = &run.single_loop;
    let state = sl.optimizer_state();
    let f32s = |v: Vec<u32>| v.into_iter().map(u64::from);
    let mut out: Vec<u64> = f32s(bits(sl.model.params())).collect();
    out.extend(f32s(bits(&sl.reference)));
    out.extend(
        state
            .m
            .iter()
            .chain(&state.v)
            .flat_map(|t| t.as_vec())
            .map(|x| u64::from(x.to_bits())),
    );
    out.push(state.step);
    out.extend(sl.particles().iter().map(|&t| t as u64));
    out.extend(sl.rewards().iter().map(|x| x.to_bits()));
    out.extend(sl.log_ratios().iter().map(|x| x.to_bits()));
    out.extend(sl.anchor().iter().map(|&t| t as u64));
    out.extend([sl.updates(), sl.evaluations()]);
    out
}

/// The state a published single-loop checkpoint holds, as [`flow_bits`] lays it out, and its
/// update counter; read straight from the files (a resume would clean the directory first).
pub fn flow_bits_published(
    committed: &sepo::train::commit::Committed,
    checkpoint: &Checkpoint,
) -> (Vec<u64>, u64) {
    let file: serde_json::Value =
        serde_json::from_slice(&committed.read("single_loop.json").unwrap()).unwrap();
    let (model, _) = checkpoint
        .load_model::<Mlp<f32, Cpu>>(&Cpu::default())
        .unwrap();
    let mut reference_store = model.params().clone();
    reference_store
        .load_bytes(
            &committed.read("reference.safetensors").unwrap(),
            &committed.path("reference.safetensors"),
        )
        .unwrap();
    let state = checkpoint.load_optimizer(model.params()).unwrap();
    let mut out: Vec<u64> = bits(model.params()).into_iter().map(u64::from).collect();
    out.extend(bits(&reference_store).into_iter().map(u64::from));
    out.extend(
        state
            .m
            .iter()
            .chain(&state.v)
            .flat_map(|t| t.as_vec())
            .map(|x| u64::from(x.to_bits())),
    );
    out.push(state.step);
    let numbers = |key: &str| -> Vec<u64> {
        file[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    for key in ["particles", "rewards", "log_ratio", "anchor"] {
        out.extend(numbers(key));
    }
    let update = file["update"].as_u64().unwrap();
    out.extend([update, file["evaluations"].as_u64().unwrap()]);
    (out, update)
}

/// A fresh directory under the system's temporary one.
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sepo-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
