//! The path KL as the trainer runs it (`KlMode::Path`): `RoundMetrics::kl` is the mean path KL of the
//! round's samples. On the exact [`Tabular`] model with the first-hitting sampler the path KL equals
//! `KL(π_θ ‖ π_ref)` on clean sequences (the unmasking order does not depend on θ), so the metric's mean
//! over rounds must match it within 4 standard errors of the rounds' spread. (The estimator itself is
//! checked against exact enumeration in `sepo_core::loss::kl`'s tests.)

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::sample::SamplerConfig;
use sepo::train::{FinetuneConfig, Finetuner, KlMode, LogProb, SamplerKind};

fn logits(seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    (0..9).map(|_| normal.sample(&mut rng)).collect()
}

#[test]
fn path_mode_reports_the_mean_path_kl() {
    let graph = Absorbing::with_tokens(3).unwrap();
    let dev = Cpu::default();
    let model = Tabular::<f64, Cpu>::new(&graph, 2, logits(1), &dev).unwrap();
    let reference = Tabular::<f64, Cpu>::new(&graph, 2, logits(2), &dev).unwrap();
    let config = FinetuneConfig {
        groups: 4,
        group_size: 16,
        sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
        log_prob: LogProb::Trajectory,
        estimator: Mixture::reinforce(Baseline::LeaveOneOut),
        epochs: 1,
        minibatch: 64,
        // A negligible step: the rounds all sample (nearly) the same θ.
        optimizer: AdamW::with_lr(1e-12),
        kl: 0.5,
        kl_mode: KlMode::Path,
        ..FinetuneConfig::new(2)
    };
    let zero: fn(&[usize]) -> f64 = |_| 0.0;
    let mut tuner = Finetuner::new(
        model,
        graph,
        LogLinear::default(),
        FnReward::new("zero", zero),
        config,
    )
    .unwrap()
    .with_reference(reference.params())
    .unwrap();
    let pi = tuner.model().probabilities();
    let pi_ref = reference.probabilities();
    let exact: f64 = pi.iter().zip(&pi_ref).map(|(p, q)| p * (p / q).ln()).sum();
    let rounds = 40;
    let kl: Vec<f64> = (0..rounds)
        .map(|_| tuner.round().unwrap().kl.expect("KL on"))
        .collect();
    let n = rounds as f64;
    let mean = kl.iter().sum::<f64>() / n;
    let se = (kl.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt();
    eprintln!("metric {mean:.4} ± {se:.4}, exact KL(π_θ ‖ π_ref) {exact:.4}");
    assert!(
        se > 0.0 && (mean - exact).abs() <= 4.0 * se,
        "{mean} ± {se} vs {exact}"
    );
    let drift: f64 = tuner
        .model()
        .probabilities()
        .iter()
        .zip(&pi)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(drift < 1e-6, "θ moved: {drift}");
}
