//! Learning on the exact 4^4 space: DWDSE pretraining reaches the data law (issue "core", must-show 5),
//! and SEPO fine-tuning from the pretrained model moves it towards p*(x) ∝ p_ref(x)·exp(r(x)/β)
//! (issue "SEPO", must-show 4).
//!
//! TV tolerances against sampling noise: with n samples over 256 cells, the empirical law's expected TV
//! to the truth is about ½ Σ_x sqrt(2 p(x)/(π n)) ≤ ½ sqrt(2·256/(π n)); at n = 50,000 that is ≤ 0.029
//! for a uniform law and less for a peaked one (about 0.02 here), well under the 0.08 budget.

use std::sync::OnceLock;

use rand::SeedableRng;
use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::sample::{categorical, first_hitting, SamplerConfig};
use sepo::score::{Mlp, MlpConfig, Transformer, TransformerConfig};

const L: usize = 4;
const SAMPLES: usize = 50_000;

fn data_law() -> Vec<f64> {
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

fn decode(i: usize) -> Vec<usize> {
    (0..L)
        .rev()
        .map(|p| (i / 4usize.pow(p as u32)) % 4)
        .collect()
}

fn encode(seq: &[usize]) -> usize {
    seq.iter().fold(0, |a, &t| a * 4 + t)
}

fn corpus(p: &[f64], n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| decode(categorical::draw(p, &mut rng)))
        .collect()
}

fn tv(samples: &[usize], seq_len: usize, p: &[f64]) -> f64 {
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

fn pretrain<M: sepo::score::ScoreModel<f32, Cpu>>(model: M, steps: u64, lr: f64) -> M {
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

fn sample_tv<M: sepo::score::ScoreModel<f32, Cpu>>(model: &M, seed: u64) -> f64 {
    let cfg = SamplerConfig {
        max_batch: 10_000,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = first_hitting(
        model,
        model.params(),
        &Absorbing::with_tokens(4).unwrap(),
        &LogLinear::default(),
        &cfg,
        SAMPLES,
        L,
        None,
        &mut rng,
    )
    .unwrap();
    tv(&s.tokens, L, &data_law())
}

/// The pretrained MLP, shared by the tests of this file.
fn pretrained_mlp() -> &'static Mlp<f32, Cpu> {
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

#[test]
fn mlp_pretrained_with_dwdse_reaches_the_data_law() {
    let t = sample_tv(pretrained_mlp(), 11);
    eprintln!("MLP: TV = {t:.4}");
    assert!(t <= 0.08, "TV {t}");
}

#[test]
fn transformer_pretrained_with_dwdse_reaches_the_data_law() {
    // The tiny transformer with a learned absolute position table: with RoPE alone it needs about twice
    // the steps on these 4-token sequences, whose positions have very different marginals.
    let config = TransformerConfig {
        learned_positions: true,
        ..TransformerConfig::tiny(5, L, ScoreHead::Absorbing)
    };
    let model = Transformer::new(config, &Cpu::default(), 3).unwrap();
    // 100,000 training sequences, 3,000 steps of batch 256.
    let model = pretrain(model, 3_000, 2e-3);
    let t = sample_tv(&model, 12);
    eprintln!("transformer: TV = {t:.4}");
    assert!(t <= 0.08, "TV {t}");
}

fn twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

fn finetune_config(log_prob: sepo::train::LogProb, kl: f64) -> sepo::train::FinetuneConfig {
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

fn sample_tuned(model: &Mlp<f32, Cpu>, seed: u64) -> Vec<usize> {
    let cfg = SamplerConfig {
        max_batch: 10_000,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    first_hitting(
        model,
        model.params(),
        &Absorbing::with_tokens(4).unwrap(),
        &LogLinear::default(),
        &cfg,
        SAMPLES,
        L,
        None,
        &mut rng,
    )
    .unwrap()
    .tokens
}

/// SEPO with a KL pull (β = 1, raw rewards with a leave-one-out baseline so that β keeps its meaning)
/// from the pretrained MLP towards p*(x) ∝ p_ref(x)·exp(r(x)/β), exact by enumeration with p_ref the data
/// law. The default log-probability estimator (`Trajectory`, unbiased for the sampler's law) with the
/// default KL mode (`InReward`) reaches TV(samples, p*) ≤ ½·TV(p_ref, p*) and raises the mean reward by
/// ≥ 0.5 (of a 0..4 range); measured at this seed: TV 0.433 → 0.086, reward 0.845 → 1.951. The bound has room
/// against sampling noise: at 50,000 samples over 256 cells the empirical TV's own bias is about 0.02.
/// (The concrete-score estimator with `Conditional` weights optimises the pseudo-likelihood surrogate,
/// whose KL-regularised fixed point is not p*: docs/sepo.md §6 reports its numbers.)
#[test]
fn sepo_with_kl_moves_the_pretrained_mlp_towards_the_tilted_law() {
    use sepo::reward::FnReward;
    use sepo::train::{Finetuner, LogProb};
    let beta = 1.0;
    let p = data_law();
    let tilted: Vec<f64> = (0..256)
        .map(|i| p[i] * (twos(&decode(i)) / beta).exp())
        .collect();
    let z: f64 = tilted.iter().sum();
    let target: Vec<f64> = tilted.iter().map(|w| w / z).collect();
    let tv_ref = 0.5
        * p.iter()
            .zip(&target)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>();
    let model = pretrained_mlp().clone();
    let graph = Absorbing::with_tokens(4).unwrap();
    let mut ft = Finetuner::new(
        model,
        graph,
        LogLinear::default(),
        FnReward::new("twos", twos),
        finetune_config(LogProb::default(), beta),
    )
    .unwrap();
    ft.fit(60, false, None).unwrap();
    let tokens = sample_tuned(&ft.model, 21);
    let tv_tuned = tv(&tokens, L, &target);
    let mean_before: f64 = p
        .iter()
        .enumerate()
        .map(|(i, q)| q * twos(&decode(i)))
        .sum();
    let mean_after = tokens.chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
    eprintln!("TV(p_ref, p*) = {tv_ref:.4}, TV(tuned, p*) = {tv_tuned:.4}; mean reward {mean_before:.3} → {mean_after:.3}");
    assert!(
        tv_tuned <= 0.5 * tv_ref,
        "TV {tv_tuned} vs half of {tv_ref}"
    );
    assert!(
        mean_after >= mean_before + 0.5,
        "{mean_before} → {mean_after}"
    );
}

/// Without KL, every estimator raises the mean reward of the pretrained MLP in 20 rounds (exact sampling
/// noise of the measured mean at 50,000 samples: sd ≈ 0.004).
#[test]
fn every_estimator_raises_the_mean_reward_of_the_pretrained_mlp() {
    use sepo::policy::{CleanScores, ConcreteScore, NeighbourWeights};
    use sepo::reward::FnReward;
    use sepo::train::{Finetuner, LogProb};
    let p = data_law();
    let mean_before: f64 = p
        .iter()
        .enumerate()
        .map(|(i, q)| q * twos(&decode(i)))
        .sum();
    for log_prob in [
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
    ] {
        let mut ft = Finetuner::new(
            pretrained_mlp().clone(),
            Absorbing::with_tokens(4).unwrap(),
            LogLinear::default(),
            FnReward::new("twos", twos),
            finetune_config(log_prob, 0.0),
        )
        .unwrap();
        ft.fit(20, false, None).unwrap();
        let mean_after =
            sample_tuned(&ft.model, 5).chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
        eprintln!("{log_prob:?}: mean reward {mean_before:.3} → {mean_after:.3}");
        assert!(
            mean_after >= mean_before + 0.3,
            "{log_prob:?}: {mean_before} → {mean_after}"
        );
    }
}

/// Issue #14 §4: fine-tuning the pretrained MLP with `Events` (first-hitting, `m` of the 4 unmasking
/// events per path, per-event PPO ratios) reaches the same TV to `p*` as the full `Trajectory`
/// estimator, at the settings of `sepo_with_kl_moves_the_pretrained_mlp_towards_the_tilted_law`
/// (β = 1 in the reward, 60 rounds of 8 × 16, 2 epochs), over fine-tuning seeds 0, 1, 2. Prints each
/// run and each estimator's mean and sample standard deviation; asserts that every mean is at most half
/// of TV(p_ref, p*) and that each `Events` mean is within 4 standard errors of `Trajectory`'s (SE of the
/// difference from the two seed spreads, which include the sampling noise of the measured TV; its bias,
/// about 0.02 at 50,000 samples, is common to all runs). `m = 4` reads every event: it separates the
/// effect of subsampling from that of the per-event PPO ratios. About 3 minutes in release (the
/// pretraining included), more at the test profile: run with
/// `cargo test --release --test small_space -- --ignored --nocapture events_`.
///
/// Measured (release, seeds 0–2), TV(tuned, p*) mean ± sd: `Trajectory` 0.0813 ± 0.0041,
/// `Events { positions: 1 }` 0.0887 ± 0.0035, `Events { positions: 2 }` 0.0908 ± 0.0042,
/// `Events { positions: 4 }` 0.0805 ± 0.0051 (TV(p_ref, p*) = 0.4328). The per-event ratios alone
/// (m = 4) match `Trajectory`; subsampling leaves the end point about 0.008 further (2.4 and 2.8 SE).
#[test]
#[ignore]
fn events_reach_the_tilted_law_as_closely_as_trajectory() {
    use sepo::reward::FnReward;
    use sepo::train::{Finetuner, LogProb};
    let beta = 1.0;
    let p = data_law();
    let tilted: Vec<f64> = (0..256)
        .map(|i| p[i] * (twos(&decode(i)) / beta).exp())
        .collect();
    let z: f64 = tilted.iter().sum();
    let target: Vec<f64> = tilted.iter().map(|w| w / z).collect();
    let tv_ref = 0.5
        * p.iter()
            .zip(&target)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>();
    let mut summary = Vec::new();
    for log_prob in [
        LogProb::Trajectory,
        LogProb::Events { positions: 1 },
        LogProb::Events { positions: 2 },
        LogProb::Events { positions: 4 },
    ] {
        let mut tvs = Vec::new();
        for seed in 0..3 {
            let clock = std::time::Instant::now();
            let config = sepo::train::FinetuneConfig {
                seed,
                ..finetune_config(log_prob, beta)
            };
            let mut ft = Finetuner::new(
                pretrained_mlp().clone(),
                Absorbing::with_tokens(4).unwrap(),
                LogLinear::default(),
                FnReward::new("twos", twos),
                config,
            )
            .unwrap();
            ft.fit(60, false, None).unwrap();
            let tokens = sample_tuned(&ft.model, 21 + seed);
            let t = tv(&tokens, L, &target);
            let reward = tokens.chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
            eprintln!(
                "{log_prob:?} seed {seed}: TV(tuned, p*) = {t:.4}, mean reward {reward:.3} ({:.0} s)",
                clock.elapsed().as_secs_f64()
            );
            tvs.push(t);
        }
        let mean = tvs.iter().sum::<f64>() / 3.0;
        let sd = (tvs.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        eprintln!(
            "{log_prob:?}: TV(tuned, p*) mean {mean:.4}, sd {sd:.4} (TV(p_ref, p*) = {tv_ref:.4})"
        );
        summary.push((log_prob, mean, sd));
    }
    let (_, t_mean, t_sd) = summary[0];
    for &(log_prob, mean, sd) in &summary {
        assert!(
            mean <= 0.5 * tv_ref,
            "{log_prob:?}: TV {mean} vs half of {tv_ref}"
        );
        let se = ((sd * sd + t_sd * t_sd) / 3.0).sqrt();
        assert!(
            (mean - t_mean).abs() <= 4.0 * se,
            "{log_prob:?}: TV {mean} vs Trajectory's {t_mean} (se {se})"
        );
    }
}
