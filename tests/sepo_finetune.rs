//! SEPO fine-tuning on the exact 4^4 space (issue "SEPO", must-shows 2, 3 and 5).

use rand::SeedableRng;
use sepo::graph::Absorbing;
use sepo::policy::{events_ppo_grads, trajectory_ppo_grads, ConcreteScore, NeighbourWeights};
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::sample::{first_hitting, SamplerConfig, Samples};
use sepo::train::{step_rng, FinetuneConfig, Finetuner, LogProb, SamplerKind};
use sepo::weight::{advantages, Baseline};

const L: usize = 4;

fn logits(seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..256)
        .map(|_| {
            1.2 * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng)
        })
        .collect()
}

/// Number of `2`s (tokens are 0..4): a reward with a clear direction.
fn count_twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

fn model(dev: &Cpu) -> Tabular<f64, Cpu> {
    Tabular::new(&Absorbing::with_tokens(4).unwrap(), L, logits(1), dev).unwrap()
}

fn config(log_prob: LogProb) -> FinetuneConfig {
    FinetuneConfig {
        groups: 4,
        group_size: 8,
        sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
        log_prob,
        epochs: 2,
        minibatch: 16,
        optimizer: AdamW::with_lr(0.05),
        ..FinetuneConfig::new(L)
    }
}

fn expected_reward(m: &Tabular<f64, Cpu>) -> f64 {
    m.probabilities()
        .iter()
        .enumerate()
        .map(|(i, p)| p * count_twos(&m.sequence_of(i)))
        .sum()
}

#[test]
fn constant_rewards_leave_the_model_unchanged() {
    let dev = Cpu::default();
    let m = model(&dev);
    let before = m.params().flat_f64();
    let reward = FnReward::new("const", |_: &[usize]| 1.5);
    let mut ft = Finetuner::new(
        m,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        reward,
        config(LogProb::default()),
    )
    .unwrap();
    let metrics = ft.round().unwrap();
    assert_eq!(metrics.zero_std_fraction, 1.0);
    assert_eq!(metrics.grad_norm, 0.0);
    assert_eq!(ft.model().params().flat_f64(), before);
}

#[test]
fn every_estimator_raises_the_expected_reward() {
    let dev = Cpu::default();
    let start = expected_reward(&model(&dev));
    for log_prob in [
        LogProb::ConcreteScore(ConcreteScore::default()),
        LogProb::ConcreteScore(ConcreteScore {
            weights: NeighbourWeights::Enumerate,
            ..ConcreteScore::default()
        }),
        LogProb::ConcreteScore(ConcreteScore {
            weights: NeighbourWeights::Snis { draws: 2 },
            ..ConcreteScore::default()
        }),
        LogProb::Trajectory,
    ] {
        let reward = FnReward::new("twos", count_twos);
        let cfg = FinetuneConfig {
            groups: 8,
            group_size: 16,
            minibatch: 64,
            ..config(log_prob)
        };
        let mut ft = Finetuner::new(
            model(&dev),
            Absorbing::with_tokens(4).unwrap(),
            LogLinear::default(),
            reward,
            cfg,
        )
        .unwrap();
        ft.fit(30, false, None).unwrap();
        let end = expected_reward(ft.model());
        // Exact expectations (no sampling noise in the measurement): a clear rise, well above zero.
        // Exact expectations, so the only noise is the training's own (128 samples a round). Measured
        // rises at this seed: Conditional +0.39, Enumerate +0.36, SNIS +1.74, Trajectory +2.97; the
        // neighbour-restricted estimators are slow on a tabular model (docs/sepo.md §6).
        assert!(
            end > start + 0.2,
            "{log_prob:?}: E[r] {start:.3} → {end:.3}"
        );
    }
}

#[test]
fn nan_reward_stops_the_round_cleanly_and_resume_is_bit_identical() {
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(4).unwrap();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    // Round 2 (the third) returns NaN for one sample.
    let reward = FnReward::new("flaky", move |s: &[usize]| {
        let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if i == 70 {
            f64::NAN
        } else {
            count_twos(s)
        }
    });
    let mut ft = Finetuner::new(
        model(&dev),
        graph,
        LogLinear::default(),
        reward,
        config(LogProb::default()),
    )
    .unwrap();
    ft.fit(2, false, None).unwrap();
    let dir = std::env::temp_dir().join(format!("sepo-ft-{}", std::process::id()));
    let ckpt = Checkpoint::new(&dir);
    ft.save(&ckpt).unwrap();
    let after_two = ft.model().params().flat_f64();
    let state_step = ft.optimizer_state().step;
    match ft.round() {
        Err(sepo::Error::NonFiniteReward { reward, sample, .. }) => {
            assert_eq!((reward.as_str(), sample), ("flaky", 70 - 64))
        }
        other => panic!("expected a NaN-reward error, got {other:?}"),
    }
    assert_eq!(
        ft.model().params().flat_f64(),
        after_two,
        "round k−1's parameters are intact"
    );
    assert_eq!((ft.completed(), ft.optimizer_state().step), (2, state_step));
    // The same round now succeeds (the flaky call is past), and equals a run resumed from the checkpoint.
    let continued = ft.round().unwrap();
    let mut resumed = Finetuner::new(
        model(&dev),
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        FnReward::new("twos", count_twos),
        config(LogProb::default()),
    )
    .unwrap();
    resumed.resume(&ckpt).unwrap();
    let again = resumed.round().unwrap();
    assert_eq!(continued.reward, again.reward);
    assert_eq!(
        ft.model().params().flat_f64(),
        resumed.model().params().flat_f64(),
        "bit-identical continuation"
    );
}

/// Checks an estimator of `∇ E_{π_θ}[r]` on the exact model: the mean of 40 batch estimates (400
/// first-hitting draws each, leave-one-out advantages, draws seeded from `seed`) agrees with the exact
/// gradient along three fixed directions (the exact gradient and two random ones) within `k` standard
/// errors, SE from the spread of the batch estimates. `loss_grad(model, samples, advantages, rng)`
/// returns the gradient of the estimator's loss `−J`, flat.
fn agrees_with_the_exact_gradient(
    seed: u64,
    k: f64,
    mut loss_grad: impl FnMut(&Tabular<f64, Cpu>, &Samples, &[f64], &mut rand::rngs::StdRng) -> Vec<f64>,
) {
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(4).unwrap();
    let m = model(&dev);
    let pi = m.probabilities();
    let mean_r: f64 = (0..256)
        .map(|i| pi[i] * count_twos(&m.sequence_of(i)))
        .sum();
    let exact: Vec<f64> = (0..256)
        .map(|i| pi[i] * (count_twos(&m.sequence_of(i)) - mean_r))
        .collect();
    let mut dir_rng = rand::rngs::StdRng::seed_from_u64(5);
    let directions: Vec<Vec<f64>> = std::iter::once(exact.clone())
        .chain((0..2).map(|_| {
            (0..256)
                .map(|_| {
                    rand_distr::Distribution::<f64>::sample(
                        &rand_distr::StandardNormal,
                        &mut dir_rng,
                    )
                })
                .collect()
        }))
        .collect();
    let cfg = SamplerConfig {
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let (batches, per) = (40, 400);
    let mut proj = vec![Vec::new(); 3];
    for b in 0..batches {
        let mut rng = step_rng(seed, b);
        let s = first_hitting(
            &Policy::current(&m),
            &Diffusion::new(graph, LogLinear::default()),
            &cfg,
            (per, L),
            None,
            &mut rng,
        )
        .unwrap();
        let r: Vec<f64> = s.sequences().map(count_twos).collect();
        let a = advantages(&r, per, Baseline::LeaveOneOut).unwrap();
        let g: Vec<f64> = loss_grad(&m, &s, &a, &mut rng).iter().map(|x| -x).collect();
        for (d, p) in directions.iter().zip(proj.iter_mut()) {
            p.push(g.iter().zip(d).map(|(x, y)| x * y).sum::<f64>());
        }
    }
    for (d, p) in directions.iter().zip(&proj) {
        let truth: f64 = exact.iter().zip(d).map(|(x, y)| x * y).sum();
        let mean = p.iter().sum::<f64>() / batches as f64;
        let se = (p.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
            / (batches as f64 - 1.0)
            / batches as f64)
            .sqrt();
        eprintln!("projection {mean:.5} vs exact {truth:.5} (se {se:.5})");
        assert!(
            (mean - truth).abs() < k * se,
            "projection {mean} vs exact {truth} (se {se})"
        );
    }
}

/// The trajectory estimator under the first-hitting sampler (exact for an exact model) is unbiased for
/// `∇ E_{π_θ}[r]`: within 3 standard errors along three fixed directions.
#[test]
fn trajectory_gradient_agrees_with_the_exact_gradient() {
    let graph = Absorbing::with_tokens(4).unwrap();
    agrees_with_the_exact_gradient(99, 3.0, |m, s, a, _| {
        let objective = sepo::loss::PpoObjective::single(a, Some(0.2));
        let t = s.trajectory.as_ref().unwrap();
        trajectory_ppo_grads(m, &graph, t, &objective)
            .unwrap()
            .0
            .flat_f64()
    });
}

/// The `Events` estimator reading `m = 1` of the 4 unmasking events of each first-hitting path (weight
/// 4) is unbiased for `∇ E_{π_θ}[r]`: within 4 standard errors along three fixed directions (the SE
/// includes the subsampling noise).
#[test]
fn subsampled_event_gradient_agrees_with_the_exact_gradient() {
    let graph = Absorbing::with_tokens(4).unwrap();
    agrees_with_the_exact_gradient(77, 4.0, |m, s, a, rng| {
        let old = m.params().snapshot();
        let objective = sepo::loss::PpoObjective::single(a, Some(0.2));
        let t = s.trajectory.as_ref().unwrap();
        events_ppo_grads(&Policy::new(m, &old), &graph, t, 1, &objective, rng)
            .unwrap()
            .0
            .flat_f64()
    });
}

#[test]
fn prompts_fix_each_groups_prefix_and_bad_prompts_are_refused() {
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(4).unwrap();
    let prompts = vec![vec![0, 1], vec![3], vec![2, 2, 2]];
    let ft = Finetuner::new(
        model(&dev),
        graph,
        LogLinear::default(),
        FnReward::new("twos", count_twos),
        config(LogProb::default()),
    )
    .unwrap()
    .with_prompts(&prompts)
    .unwrap();
    assert_eq!(ft.config().groups, 3);
    let mut rng = step_rng(1, 0);
    let s = ft
        .sample_with(ft.model().params(), ft.config().batch(), false, &mut rng)
        .unwrap();
    for (i, seq) in s.sequences().enumerate() {
        let prompt = &prompts[i / ft.config().group_size];
        assert_eq!(&seq[..prompt.len()], prompt.as_slice(), "sequence {i}");
    }
    let bad = Finetuner::new(
        model(&dev),
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        FnReward::new("twos", count_twos),
        config(LogProb::default()),
    )
    .unwrap()
    .with_prompts(&[vec![0, 7]]);
    assert!(matches!(
        bad,
        Err(sepo::Error::TokenOutOfVocab { token: 7, .. })
    ));
}

/// The reweighting components of `estimator!` (`snis`, `control_variate`) train: from the same start,
/// 20 rounds of 8 groups of 8 with the `Trajectory` log-probability raise the exact `E[r]` (number of
/// `2`s, 4 positions; start 0.915). Measured at seeds 0, 1, 2: snis(τ = 1) +0.75, +0.65, +0.74;
/// control variate (mean baseline) +0.98, +0.85, +0.93. The assertion asks for +0.5: the expectation
/// is exact, so the only noise is the training's, whose seed-to-seed spread is about 0.05. About 7 s.
#[test]
fn reweighting_components_raise_the_expected_reward() {
    let dev = Cpu::default();
    let start = expected_reward(&model(&dev));
    for estimator in [Mixture::snis(1.0), Mixture::control_variate(Baseline::Mean)] {
        let cfg = FinetuneConfig {
            groups: 8,
            group_size: 8,
            minibatch: 64,
            estimator: estimator.clone(),
            ..config(LogProb::Trajectory)
        };
        let mut ft = Finetuner::new(
            model(&dev),
            Absorbing::with_tokens(4).unwrap(),
            LogLinear::default(),
            FnReward::new("twos", count_twos),
            cfg,
        )
        .unwrap();
        let history = ft.fit(20, false, None).unwrap();
        assert!(history.iter().all(|m| m.grad_norm.is_finite()));
        let end = expected_reward(ft.model());
        eprintln!("{}: E[r] {start:.3} → {end:.3}", estimator.name());
        assert!(
            end > start + 0.5,
            "{estimator:?}: E[r] {start:.3} → {end:.3}"
        );
    }
}

/// `Events` needs an absorbing graph and at least one event per sample: both refused when the trainer is
/// built, before any sampling.
#[test]
fn events_configurations_are_checked_up_front() {
    let dev = Cpu::default();
    let uniform = sepo::graph::Uniform::new(4).unwrap();
    let tabular = Tabular::<f64, Cpu>::new(&uniform, L, logits(1), &dev).unwrap();
    let built = Finetuner::new(
        tabular,
        uniform,
        LogLinear::default(),
        FnReward::new("twos", count_twos),
        config(LogProb::Events { positions: 2 }),
    );
    assert!(matches!(
        built,
        Err(sepo::Error::InvalidParameter {
            name: "log_prob",
            ..
        })
    ));
    let zero = Finetuner::new(
        model(&dev),
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        FnReward::new("twos", count_twos),
        config(LogProb::Events { positions: 0 }),
    );
    assert!(matches!(
        zero,
        Err(sepo::Error::InvalidParameter {
            name: "positions",
            ..
        })
    ));
}
