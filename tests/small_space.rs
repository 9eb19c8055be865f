//! Learning on the exact 4^4 space: DWDSE pretraining reaches the data law (issue "core", must-show 5),
//! and SEPO fine-tuning from the pretrained model moves it towards p*(x) ∝ p_ref(x)·exp(r(x)/β)
//! (issue "SEPO", must-show 4), with p_ref the pretrained MLP's own first-hitting law, exact up to
//! quadrature (`support/first_hitting_law.rs`). The fine-tuning figures of docs/sepo.md §6 are pinned
//! here, each within 4 standard deviations over fine-tuning seeds (issue #14 §5).
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

#[path = "support/first_hitting_law.rs"]
mod first_hitting_law;

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
    try_sample_tuned(model, seed).unwrap()
}

/// 50,000 first-hitting samples of `model` at sampler seed `seed` (an error if the model's outputs are
/// not finite).
fn try_sample_tuned(model: &Mlp<f32, Cpu>, seed: u64) -> Result<Vec<usize>, sepo::Error> {
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
    .map(|s| s.tokens)
}

/// SEPO with a KL pull (β = 1, raw rewards with a leave-one-out baseline so that β keeps its meaning)
/// from the pretrained MLP towards p*(x) ∝ p_ref(x)·exp(r(x)/β), with p_ref the pretrained MLP's own
/// first-hitting law (exact up to quadrature, [`pretrained_law`]): the default log-probability estimator
/// (`Trajectory`) with each KL mode, at fine-tuning seed 0. Each TV(samples, p*) is pinned to its figure
/// in docs/sepo.md §6 within 4 seed standard deviations (the sd over fine-tuning seeds 0–4, which
/// includes the TV's sampling noise, ≈ 0.002 at 50,000 samples), and must be at most ½·TV(p_ref, p*);
/// the mean reward must rise by ≥ 0.5 (of a 0..4 range). The five-seed comparison is
/// `kl_modes_against_the_pretrained_models_own_tilted_law`.
#[test]
fn sepo_with_kl_moves_the_pretrained_mlp_towards_the_tilted_law() {
    use sepo::train::{KlMode, LogProb};
    let beta = 1.0;
    let p_ref = pretrained_law();
    let target = tilted_law(p_ref, beta);
    let tv_ref = tv_laws(p_ref, &target);
    // The empirical TV's own floor at exactly p*: E|p̂ − p| ≈ sqrt(2p(1 − p)/(π n)) per cell.
    let floor: f64 = 0.5
        * target
            .iter()
            .map(|p| (2.0 * p * (1.0 - p) / (std::f64::consts::PI * SAMPLES as f64)).sqrt())
            .sum::<f64>();
    eprintln!("TV floor of 50,000 exact samples of p*: {floor:.4}");
    let mean_before: f64 = p_ref
        .iter()
        .enumerate()
        .map(|(i, q)| q * twos(&decode(i)))
        .sum();
    // (mode, TV at seed 0, sd over seeds 0–4), measured in release.
    for (mode, pinned, sd) in [
        (KlMode::InReward, TV_IN_REWARD_SEED0, TV_IN_REWARD_SD),
        (KlMode::Path, TV_PATH_SEED0, TV_PATH_SD),
    ] {
        let tokens = finetune_run(LogProb::default(), beta, mode, 60, 0).unwrap();
        let tv_tuned = tv(&tokens, L, &target);
        let mean_after = tokens.chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
        eprintln!("{mode:?}: TV(p_ref, p*) = {tv_ref:.4}, TV(tuned, p*) = {tv_tuned:.4}; mean reward {mean_before:.3} → {mean_after:.3}");
        assert!(
            (tv_tuned - pinned).abs() <= 4.0 * sd,
            "{mode:?}: TV {tv_tuned} vs pinned {pinned} ± 4·{sd}"
        );
        assert!(
            tv_tuned <= 0.5 * tv_ref,
            "{mode:?}: TV {tv_tuned} vs half of {tv_ref}"
        );
        assert!(
            mean_after >= mean_before + 0.5,
            "{mode:?}: {mean_before} → {mean_after}"
        );
    }
}

/// Without KL, every estimator raises the mean reward of the pretrained MLP in 20 rounds, by ≥ 0.3 and to
/// its figure of docs/sepo.md §6 (fine-tuning seed 0) within 4 seed standard deviations (sd over seeds
/// 0–4, `no_kl_reward_over_seeds`; it includes the sampling noise of the measured mean, sd ≈ 0.004 at
/// 50,000 samples).
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
    for (log_prob, (pinned, sd)) in [
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
    .into_iter()
    .zip(NO_KL_REWARD)
    {
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
        assert!(
            (mean_after - pinned).abs() <= 4.0 * sd,
            "{log_prob:?}: reward {mean_after} vs pinned {pinned} ± 4·{sd}"
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

/// Gauss–Laguerre nodes per event for the pretrained MLP's first-hitting law in the default suite
/// (`Q + 16Q² + 96Q³ + 256Q⁴` forward rows; the ignored convergence test measures its error).
/// Pinned figures of docs/sepo.md §6 (release measurements; sd over fine-tuning seeds 0–4).
const TV_IN_REWARD_SEED0: f64 = 0.0412;
const TV_IN_REWARD_SD: f64 = 0.0060;
const TV_PATH_SEED0: f64 = 0.0648;
const TV_PATH_SD: f64 = 0.0095;
/// "No KL, 20 rounds" mean reward at seed 0 and its sd over seeds 0–4, per estimator of
/// `every_estimator_raises_the_mean_reward_of_the_pretrained_mlp`.
const NO_KL_REWARD: [(f64, f64); 4] = [
    (3.880, 0.040),
    (2.585, 0.166),
    (1.575, 0.039),
    (1.572, 0.031),
];

const LAW_NODES: usize = 4;

/// The pretrained MLP's own first-hitting law over the 256 sequences (the `p_ref` of fine-tuning),
/// by quadrature over the event times ([`first_hitting_law`]).
fn pretrained_law() -> &'static Vec<f64> {
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
fn tilted_law(p_ref: &[f64], beta: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..256)
        .map(|i| p_ref[i] * (twos(&decode(i)) / beta).exp())
        .collect();
    let z: f64 = w.iter().sum();
    w.iter().map(|v| v / z).collect()
}

fn tv_laws(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
    )
}

/// Fine-tunes the pretrained MLP for `rounds` rounds at fine-tuning seed `seed`; returns 50,000 fresh
/// samples (sampler seed `21 + seed`).
fn finetune_run(
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
    try_sample_tuned(&ft.model, 21 + seed)
}

#[test]
fn gauss_laguerre_integrates_polynomials_exactly() {
    for q in [1, 4, 6, 10] {
        let (x, w) = first_hitting_law::gauss_laguerre(q);
        let mut factorial = 1.0;
        for k in 0..2 * q {
            if k > 0 {
                factorial *= k as f64;
            }
            let moment: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(k as i32)).sum();
            assert!(
                (moment / factorial - 1.0).abs() < 1e-9,
                "q = {q}, k = {k}: {moment} vs {factorial}"
            );
        }
    }
}

/// The quadrature law of the pretrained MLP converges in the number of nodes per event and matches a
/// 10^6-sample Monte Carlo histogram of the sampler itself (Pearson χ² over the 256 cells, 255 degrees
/// of freedom: mean 255, sd 22.6; asserted below 255 + 5·22.6). Run in release:
/// `cargo test --release --test small_space -- --ignored --nocapture first_hitting_law_`.
#[test]
#[ignore]
fn first_hitting_law_of_the_pretrained_mlp_is_exact() {
    let model = pretrained_mlp();
    let mut laws = Vec::new();
    for q in [4, 6, 8, 10] {
        let clock = std::time::Instant::now();
        let law = first_hitting_law::first_hitting_law(model, &LogLinear::default(), 4, L, q);
        eprintln!(
            "Q = {q}: Σ p = {:.12}, {:.1} s",
            law.iter().sum::<f64>(),
            clock.elapsed().as_secs_f64()
        );
        assert!((law.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        laws.push((q, law));
    }
    for pair in laws.windows(2) {
        let d = tv_laws(&pair[0].1, &pair[1].1);
        let max = pair[0]
            .1
            .iter()
            .zip(&pair[1].1)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "TV(Q = {}, Q = {}) = {d:.2e}, max |Δp| = {max:.2e}",
            pair[0].0, pair[1].0
        );
    }
    let best = &laws.last().unwrap().1;
    // The default suite's LAW_NODES: its error must stay well under the TVs' sampling sd (≈ 0.002).
    let used = &laws.iter().find(|(q, _)| *q == LAW_NODES).unwrap().1;
    eprintln!("TV(Q = {LAW_NODES}, Q = 10) = {:.2e}", tv_laws(used, best));
    assert!(
        tv_laws(used, best) < 1e-3,
        "Q = {LAW_NODES} is off by {}",
        tv_laws(used, best)
    );
    let n = 1_000_000;
    let cfg = SamplerConfig {
        max_batch: 20_000,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let s = first_hitting(
        model,
        model.params(),
        &Absorbing::with_tokens(4).unwrap(),
        &LogLinear::default(),
        &cfg,
        n,
        L,
        None,
        &mut rng,
    )
    .unwrap();
    let mut counts = vec![0.0; 256];
    for seq in s.tokens.chunks(L) {
        counts[encode(seq)] += 1.0;
    }
    let chi2: f64 = counts
        .iter()
        .zip(best)
        .map(|(c, p)| (c - n as f64 * p).powi(2) / (n as f64 * p))
        .sum();
    let emp: Vec<f64> = counts.iter().map(|c| c / n as f64).collect();
    eprintln!(
        "Monte Carlo 10^6: χ² = {chi2:.1} (255 dof), TV = {:.4}; TV(law, data law) = {:.4}",
        tv_laws(&emp, best),
        tv_laws(best, &data_law())
    );
    assert!(chi2 < 255.0 + 5.0 * 22.6, "χ² {chi2}");
}

/// Issue #14 §5: `KlMode::InReward` against `KlMode::Path`, measured against `p*` built from the
/// pretrained MLP's own first-hitting law (β = 1, 60 rounds, fine-tuning seeds 0–4), for `Trajectory`
/// and the concrete score (`Conditional`, masked clean scores); runs that fail (non-finite scores) are
/// reported and left out. Asserts the five-seed means of docs/sepo.md §6 within 4 standard errors
/// and that `InReward` beats `Path` with `Trajectory` (95% interval of the difference below 0). About
/// 4 minutes in release (pretraining included). Run:
/// `cargo test --release --test small_space -- --ignored --nocapture kl_modes_`.
#[test]
#[ignore]
fn kl_modes_against_the_pretrained_models_own_tilted_law() {
    use sepo::policy::ConcreteScore;
    use sepo::train::{KlMode, LogProb};
    let beta = 1.0;
    let p_ref = pretrained_law();
    let target = tilted_law(p_ref, beta);
    eprintln!("TV(p_ref, p*) = {:.4}", tv_laws(p_ref, &target));
    let mut summary = Vec::new();
    for log_prob in [
        LogProb::Trajectory,
        LogProb::ConcreteScore(ConcreteScore::default()),
    ] {
        for mode in [KlMode::InReward, KlMode::Path] {
            let mut tvs = Vec::new();
            for seed in 0..5 {
                let clock = std::time::Instant::now();
                let tokens = match finetune_run(log_prob, beta, mode, 60, seed) {
                    Ok(tokens) => tokens,
                    Err(e) => {
                        eprintln!("{log_prob:?} {mode:?} seed {seed}: failed: {e}");
                        continue;
                    }
                };
                let t = tv(&tokens, L, &target);
                let reward = tokens.chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
                eprintln!(
                    "{log_prob:?} {mode:?} seed {seed}: TV(tuned, p*) = {t:.4}, reward {reward:.3} ({:.0} s)",
                    clock.elapsed().as_secs_f64()
                );
                tvs.push(t);
            }
            let (m, sd) = mean_sd(&tvs);
            eprintln!(
                "{log_prob:?} {mode:?}: TV mean {m:.4}, sd {sd:.4} over {} runs",
                tvs.len()
            );
            summary.push((log_prob, mode, tvs));
        }
    }
    for pair in summary.chunks(2) {
        let (a, b) = (&pair[0].2, &pair[1].2);
        if a.len() < 5 || b.len() < 5 {
            continue;
        }
        let (ma, sa) = mean_sd(a);
        let (mb, sb) = mean_sd(b);
        let se = ((sa * sa + sb * sb) / 5.0).sqrt();
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let (md, sdd) = mean_sd(&d);
        // t quantile 0.975 at 8 (unpaired) and 4 (paired) degrees of freedom.
        eprintln!(
            "{:?}: InReward − Path = {:.4} ± {:.4} (95%, unpaired), paired by seed {md:.4} ± {:.4}",
            pair[0].0,
            ma - mb,
            2.306 * se,
            2.776 * sdd / 5f64.sqrt()
        );
    }
    // The §6 figures (five-seed means), each within 4 standard errors of its own seed spread; and the
    // Trajectory comparison: the 95% interval of InReward − Path lies below 0.
    let pinned = [(0, 0.0353), (1, 0.0695), (2, 0.292)];
    for (k, figure) in pinned {
        let (log_prob, mode, tvs) = &summary[k];
        let (m, sd) = mean_sd(tvs);
        assert!(
            tvs.len() == 5 && (m - figure).abs() <= 4.0 * sd / 5f64.sqrt(),
            "{log_prob:?} {mode:?}: TV {m} over {} runs vs §6's {figure}",
            tvs.len()
        );
    }
    let ((ma, sa), (mb, sb)) = (mean_sd(&summary[0].2), mean_sd(&summary[1].2));
    let half_width = 2.306 * ((sa * sa + sb * sb) / 5.0).sqrt();
    assert!(
        ma - mb + half_width < 0.0,
        "InReward − Path = {} ± {half_width}",
        ma - mb
    );
}

/// Seed spread of the "no KL, 20 rounds" column of docs/sepo.md §6 (fine-tuning seeds 0–4). Run in
/// release: `cargo test --release --test small_space -- --ignored --nocapture no_kl_`.
#[test]
#[ignore]
fn no_kl_reward_over_seeds() {
    use sepo::policy::{CleanScores, ConcreteScore, NeighbourWeights};
    use sepo::train::{KlMode, LogProb};
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
        let rewards: Vec<f64> = (0..5)
            .map(|seed| {
                let tokens = finetune_run(log_prob, 0.0, KlMode::InReward, 20, seed).unwrap();
                let r = tokens.chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
                eprintln!("{log_prob:?} seed {seed}: reward {r:.3}");
                r
            })
            .collect();
        let (m, sd) = mean_sd(&rewards);
        eprintln!("{log_prob:?}: reward mean {m:.3}, sd {sd:.3}");
    }
}
