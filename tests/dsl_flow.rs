//! `policy!` with `mode: SingleLoop`: the gradient-flow single loop (docs/gradient_flow.md §4) declared
//! in the DSL, built with `build_with` on a tiny pretrained `Mlp`, raises the mean reward of its
//! particles; its runtime mistakes are typed errors.

use rand::{Rng, SeedableRng};
use sepo::prelude::*;
use sepo::train::FlowRun;

const L: usize = 4;
/// Particles: the number the noise margin below is derived for.
const PARTICLES: usize = 64;

/// Number of 2s in the sequence (0..=4).
#[reward(range = 0.0..=4.0)]
fn twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

policy! {
    /// More 2s by the single loop: heat-bath Gibbs moves, one per update, from first-hitting draws.
    MoreTwos {
        mode: SingleLoop,
        sampler: Flow(rates = HeatBath, steps = 1, init = FirstHitting),
        reward: Twos,
        log_prob: Ift(h = Conditional, clean = Masked, ratio = Tracked),
        kl: 0.05,
        optimizer: Adam(lr = 1e-2),
        lr_schedule: InvSqrt(scale = 100),
        batch: 64,
        iterations: 40,
        seed: 1,
        progress: false,
    }

    /// The exact log-ratio needs an energy head, which an `Mlp` has not.
    Exact {
        mode: SingleLoop,
        reward: Twos,
        log_prob: Ift(ratio = Exact),
        kl: 0.1,
        batch: 8,
        iterations: 1,
        progress: false,
    }

    /// The path log-ratio (a function of the state) on 2 of the 4 positions.
    PathSubsetRatio {
        mode: SingleLoop,
        reward: Twos,
        log_prob: Ift(ratio = PathSubset(positions = 2)),
        kl: 0.1,
    }
    /// The path log-ratio on every position.
    PathRatio {
        mode: SingleLoop,
        reward: Twos,
        log_prob: Ift(h = Conditional, ratio = Path),
        kl: 0.1,
    }

    /// From a checkpoint.
    Loaded {
        mode: SingleLoop,
        model: Mlp(checkpoint = "/nonexistent/sepo-dsl-flow"),
        reward: Twos,
    }
}

/// The tiny model of tutorial 3, pretrained on 4-token sequences where 2 is rare (p = 0.1).
fn pretrained() -> Mlp<f32, Cpu> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let sequences: Vec<Vec<usize>> = (0..2_000)
        .map(|_| {
            (0..L)
                .map(|_| {
                    if rng.gen::<f64>() < 0.1 {
                        2
                    } else {
                        [0, 1, 3][rng.gen_range(0..3)]
                    }
                })
                .collect()
        })
        .collect();
    let corpus = Corpus::new(&sequences, 4).unwrap();
    let model = Mlp::<f32, Cpu>::new(
        MlpConfig::tiny(5, L, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap();
    let config = PretrainConfig {
        batch_size: 64,
        optimizer: AdamW::with_lr(3e-3),
        lr_schedule: LrSchedule::Warmup { warmup: 20 },
        ..PretrainConfig::default()
    };
    let graph = Absorbing::with_tokens(4).unwrap();
    let mut trainer = Pretrainer::new(model, graph, LogLinear::default(), config).unwrap();
    trainer.fit(&corpus, 300, false, None).unwrap();
    trainer.model
}

/// The rewards of the run's particles, and their mean and variance.
fn rewards(run: &FlowRun<Mlp<f32, Cpu>, Absorbing>) -> (f64, f64) {
    let r: Vec<f64> = run.single_loop.particles().chunks(L).map(twos).collect();
    let mean = r.iter().sum::<f64>() / r.len() as f64;
    let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (r.len() - 1) as f64;
    (mean, var)
}

/// The mean reward of the 64 particles rises by more than 4 standard errors of the difference of two
/// independent means over 64 particles, `4·√((s²_before + s²_after)/64)` with `s²` the spread of the
/// particles' rewards: at p(2) ≈ 0.1 the rewards are about Binomial(4, 0.1), `s ≈ 0.6`, so the margin
/// is at most about 0.43 when the spread stays the same, against a starting mean of about 0.4. (The
/// particles are one population moved by the chain, not independent draws; the margin treats them as
/// such. Observed: 0.30 → 4.00 in 40 updates, margin 0.26, under a second.)
#[test]
fn a_single_loop_policy_raises_the_reward_of_its_particles() {
    let mut run = MoreTwos::build_with(pretrained()).unwrap();
    assert_eq!(run.single_loop.particles().len(), PARTICLES * L);
    let (before, var_before) = rewards(&run);
    let history = run.fit().unwrap();
    assert_eq!(history.len(), 40);
    assert!(history
        .iter()
        .all(|m| m.reward.is_finite() && m.learning_rate > 0.0));
    // `lr_schedule: InvSqrt(scale = 100)` at update 39.
    let lr = 1e-2 / (1.0 + 39.0 / 100.0f64).sqrt();
    assert!(
        (history[39].learning_rate - lr).abs() < 1e-12,
        "{}",
        history[39].learning_rate
    );
    let (after, var_after) = rewards(&run);
    assert!((after - history[39].reward).abs() < 1e-12);
    let margin = 4.0 * ((var_before + var_after) / PARTICLES as f64).sqrt();
    println!("mean reward {before:.3} → {after:.3} (margin {margin:.3})");
    assert!(
        after > before + margin,
        "{before} → {after}, margin {margin}"
    );
    // `iterations` is the total: a second `fit` has nothing left to do.
    assert!(run.fit().unwrap().is_empty());
}

#[test]
fn runtime_mistakes_are_typed_errors() {
    let model = Mlp::<f32, Cpu>::new(
        MlpConfig::tiny(5, L, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap();
    let mut run = Exact::build_with(model).unwrap();
    assert!(matches!(
        run.fit(),
        Err(sepo::Error::InvalidParameter { name: "ratio", .. })
    ));
    assert!(matches!(
        Loaded::build(&Cpu::default()),
        Err(sepo::Error::NoCheckpoint { .. })
    ));
}

/// `ratio = Path` and `ratio = PathSubset(positions = m)` reach the configuration.
#[test]
fn path_ratios_are_read() {
    use sepo::train::RatioMode;
    assert_eq!(
        PathSubsetRatio::config(L).unwrap().ratio,
        RatioMode::PathSubset { positions: 2 }
    );
    assert_eq!(PathRatio::config(L).unwrap().ratio, RatioMode::Path);
}
