//! Learning on the exact 4^4 space: DWDSE pretraining reaches the data law (issue "core", must-show 5),
//! and SEPO fine-tuning from the pretrained model moves it towards p*(x) ∝ p_ref(x)·exp(r(x)/β)
//! (issue "SEPO", must-show 4), with p_ref the pretrained MLP's own first-hitting law, exact up to
//! quadrature (`support/first_hitting_law.rs`). The fine-tuning figures of docs/sepo.md §6 are pinned
//! here, each within 4 standard deviations over fine-tuning seeds (issue #14 §5).
//!
//! TV tolerances against sampling noise: with n samples over 256 cells, the empirical law's expected TV
//! to the truth is about ½ Σ_x sqrt(2 p(x)/(π n)) ≤ ½ sqrt(2·256/(π n)); at n = 50,000 that is ≤ 0.029
//! for a uniform law and less for a peaked one (about 0.02 here), well under the 0.08 budget.

use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::score::{Transformer, TransformerConfig};

#[path = "support/first_hitting_law.rs"]
mod first_hitting_law;
#[path = "support/small_space.rs"]
mod fixtures;

use fixtures::*;

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
    use sepo::reward::FnReward;
    use sepo::train::Finetuner;
    let p = data_law();
    let mean_before: f64 = p
        .iter()
        .enumerate()
        .map(|(i, q)| q * twos(&decode(i)))
        .sum();
    for (log_prob, (pinned, sd)) in no_kl_estimators().into_iter().zip(NO_KL_REWARD) {
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
            sample_tuned(ft.model(), 5).chunks(L).map(twos).sum::<f64>() / SAMPLES as f64;
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
    use sepo::train::{FinetuneConfig, LogProb};
    let beta = 1.0;
    // The default KL mode (finetune_config leaves it as FinetuneConfig::new sets it).
    let kl_mode = FinetuneConfig::new(L).kl_mode;
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
            let tokens = finetune_run(log_prob, beta, kl_mode, 60, seed).unwrap();
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
