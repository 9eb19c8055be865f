//! Fixtures of the 4^4-space tests (`small_space.rs`, `small_space_seeds.rs`): the data law, the
//! DWDSE-pretrained MLP, its exact first-hitting law, fine-tuning runs and TV helpers. Each test crate
//! declares `first_hitting_law` at its root and includes this file as `fixtures`.
#![allow(dead_code)]

use std::sync::OnceLock;

use rand::SeedableRng;
use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::sample::{categorical, first_hitting, SamplerConfig};
use sepo::score::{Mlp, MlpConfig};

use crate::first_hitting_law;

pub const L: usize = 4;
pub const SAMPLES: usize = 50_000;

pub fn data_law() -> Vec<f64> {
    let dev = Cpu::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let logits: Vec<f64> = (0..256)
        .map(|_| {
            1.5 * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng)
        })
        .collect();
    Tabular::<f64, Cpu>::new(&Absorbing::with_tokens(4).unwrap(), L, logits, &dev)
        .unwrap()
        .probabilities()
}

pub fn decode(i: usize) -> Vec<usize> {
    (0..L)
        .rev()
        .map(|p| (i / 4usize.pow(p as u32)) % 4)
        .collect()
}

pub fn encode(seq: &[usize]) -> usize {
    seq.iter().fold(0, |a, &t| a * 4 + t)
}

pub fn corpus(p: &[f64], n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| decode(categorical::draw(p, &mut rng)))
        .collect()
}

pub fn tv(samples: &[usize], seq_len: usize, p: &[f64]) -> f64 {
    let mut counts = vec![0.0; p.len()];
    for s in samples.chunks(seq_len) {
        counts[encode(s)] += 1.0;
    }
    let n = (samples.len() / seq_len) as f64;
    0.5 * counts
        .iter()
        .zip(p)
        .map(|(c, q)| (c / n - q).abs())
        .sum::<f64>()
}

pub fn pretrain<M: sepo::score::ScoreModel<Elem = f32, Device = Cpu>>(
    model: M,
    steps: u64,
    lr: f64,
) -> M {
    let p = data_law();
    let corpus = Corpus::new(&corpus(&p, 100_000, 1), 4).unwrap();
    let config = PretrainConfig {
        batch_size: 256,
        optimizer: AdamW::with_lr(lr),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 100,
            total: steps,
            min_ratio: 0.1,
        },
        ..PretrainConfig::default()
    };
    let mut trainer = Pretrainer::new(
        model,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        config,
    )
    .unwrap();
    trainer.fit(&corpus, steps, false, None).unwrap();
    trainer.model
}

pub fn sample_tv<M: sepo::score::ScoreModel<Elem = f32, Device = Cpu>>(
    model: &M,
    seed: u64,
) -> f64 {
    let cfg = SamplerConfig {
        max_batch: 10_000,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = first_hitting(
        &Policy::current(model),
        &Diffusion::new(Absorbing::with_tokens(4).unwrap(), LogLinear::default()),
        &cfg,
        (SAMPLES, L),
        None,
        &mut rng,
    )
    .unwrap();
    tv(&s.tokens, L, &data_law())
}

/// The pretrained MLP, shared by the tests of a test crate (pretrained once per process).
pub fn pretrained_mlp() -> &'static Mlp<f32, Cpu> {
    static MODEL: OnceLock<Mlp<f32, Cpu>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let model = Mlp::new(
            MlpConfig::tiny(5, L, ScoreHead::Absorbing),
            &Cpu::default(),
            3,
        )
        .unwrap();
        // 100,000 training sequences, 3,000 steps of batch 256.
        pretrain(model, 3_000, 3e-3)
    })
}

pub fn twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

pub fn finetune_config(log_prob: sepo::train::LogProb, kl: f64) -> sepo::train::FinetuneConfig {
    sepo::train::FinetuneConfig {
        groups: 8,
        group_size: 16,
        sampler: sepo::train::SamplerKind::FirstHitting(SamplerConfig::default()),
        log_prob,
        estimator: sepo::policy::Mixture::reinforce(sepo::weight::Baseline::LeaveOneOut),
        epochs: 2,
        minibatch: 64,
        optimizer: AdamW::with_lr(1e-3),
        kl,
        ..sepo::train::FinetuneConfig::new(L)
    }
}

pub fn sample_tuned(model: &Mlp<f32, Cpu>, seed: u64) -> Vec<usize> {
    try_sample_tuned(model, seed).unwrap()
}

/// 50,000 first-hitting samples of `model` at sampler seed `seed` (an error if the model's outputs are
/// not finite).
pub fn try_sample_tuned(model: &Mlp<f32, Cpu>, seed: u64) -> Result<Vec<usize>, sepo::Error> {
    let cfg = SamplerConfig {
        max_batch: 10_000,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    first_hitting(
        &Policy::current(model),
        &Diffusion::new(Absorbing::with_tokens(4).unwrap(), LogLinear::default()),
        &cfg,
        (SAMPLES, L),
        None,
        &mut rng,
    )
    .map(|s| s.tokens)
}

/// Gauss–Laguerre nodes per event for the pretrained MLP's first-hitting law in the default suite
/// (`Q + 16Q² + 96Q³ + 256Q⁴` forward rows; the ignored convergence test measures its error).
pub const LAW_NODES: usize = 4;

/// The pretrained MLP's own first-hitting law over the 256 sequences (the `p_ref` of fine-tuning),
/// by quadrature over the event times ([`first_hitting_law`]).
pub fn pretrained_law() -> &'static Vec<f64> {
    static LAW: OnceLock<Vec<f64>> = OnceLock::new();
    LAW.get_or_init(|| {
        first_hitting_law::first_hitting_law(
            pretrained_mlp(),
            &LogLinear::default(),
            4,
            L,
            LAW_NODES,
        )
    })
}

/// `p*(x) ∝ p_ref(x)·exp(r(x)/β)` for the reward "number of 2s".
pub fn tilted_law(p_ref: &[f64], beta: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..256)
        .map(|i| p_ref[i] * (twos(&decode(i)) / beta).exp())
        .collect();
    let z: f64 = w.iter().sum();
    w.iter().map(|v| v / z).collect()
}

pub fn tv_laws(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
    )
}

/// Fine-tunes the pretrained MLP for `rounds` rounds at fine-tuning seed `seed`; returns 50,000 fresh
/// samples (sampler seed `21 + seed`).
pub fn finetune_run(
    log_prob: sepo::train::LogProb,
    kl: f64,
    kl_mode: sepo::train::KlMode,
    rounds: u64,
    seed: u64,
) -> Result<Vec<usize>, sepo::Error> {
    use sepo::reward::FnReward;
    use sepo::train::Finetuner;
    let config = sepo::train::FinetuneConfig {
        seed,
        kl_mode,
        ..finetune_config(log_prob, kl)
    };
    let mut ft = Finetuner::new(
        pretrained_mlp().clone(),
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        FnReward::new("twos", twos),
        config,
    )
    .unwrap();
    ft.fit(rounds, false, None)?;
    try_sample_tuned(ft.model(), 21 + seed)
}

/// The four estimators whose no-KL rewards docs/sepo.md §6 pins: `Trajectory` (the default) and
/// `ConcreteScore` with masked, unmasked and unmasked-SNIS (2 draws) clean-end reads.
pub fn no_kl_estimators() -> [sepo::train::LogProb; 4] {
    use sepo::policy::{CleanScores, ConcreteScore, NeighbourWeights};
    use sepo::train::LogProb;
    [
        LogProb::default(),
        LogProb::ConcreteScore(ConcreteScore::default()),
        LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::Unmasked,
            ..ConcreteScore::default()
        }),
        LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::Unmasked,
            weights: NeighbourWeights::Snis { draws: 2 },
            ..ConcreteScore::default()
        }),
    ]
}
