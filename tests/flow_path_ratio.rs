//! The single loop's log-ratio `ℓ̂_b ≈ log(π_θ/p_ref)(x_b)` as a function of the state
//! (`RatioMode::Path`, docs/gradient_flow.md §3 "path log-ratio"), against the exact log-ratio of the
//! `Tabular` model's energy head and against the tracked ratio, which depends on the particle's history.
//!
//! Fixtures: `Tabular` on 3^3 and 4^4 with the absorbing graph; its clean scores are consistent
//! (`s(x)_{l,v} = π(x^{l←v})/π(x)`), read `Unmasked` or `Masked`; ĥ is `Conditional` (the
//! pseudo-likelihood gradient), the case where the tracked ratio drifts.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use sepo::flow::LocallyBalanced;
use sepo::graph::Absorbing;
use sepo::policy::{CleanScores, Ift, StateGradient};
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::sample::categorical;
use sepo::train::{LrSchedule, RatioMode, SingleLoop, SingleLoopConfig};

type Loop = SingleLoop<Tabular<f64, Cpu>, Absorbing>;

fn twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

fn decode(i: usize, tokens: usize, len: usize) -> Vec<usize> {
    (0..len)
        .rev()
        .map(|p| (i / tokens.pow(p as u32)) % tokens)
        .collect()
}

/// A single loop on `tokens^len` from random reference logits (seed 7), `batch` particles drawn from
/// p_ref, reward "number of 2s", heat bath k = 1, `Conditional` ĥ.
fn trainer(tokens: usize, len: usize, batch: usize, config: SingleLoopConfig) -> Loop {
    let graph = Absorbing::with_tokens(tokens).unwrap();
    let size = tokens.pow(len as u32);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let d = Normal::new(0.0, 1.0).unwrap();
    let logits: Vec<f64> = (0..size).map(|_| d.sample(&mut rng)).collect();
    let model = Tabular::<f64, Cpu>::new(&graph, len, logits, &Cpu::default()).unwrap();
    let p_ref = model.probabilities();
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let particles: Vec<usize> = (0..batch)
        .flat_map(|_| decode(categorical::draw(&p_ref, &mut rng), tokens, len))
        .collect();
    SingleLoop::new(
        model,
        graph,
        FnReward::new("twos", twos),
        config,
        particles,
        batch,
    )
    .unwrap()
}

/// The single loop's configuration for these tests: heat bath, k = 1, `Conditional` ĥ, clipped at 1.
fn config(
    ratio: RatioMode,
    clean: CleanScores,
    beta: f64,
    lr: f64,
    decay: LrSchedule,
    seed: u64,
) -> SingleLoopConfig {
    SingleLoopConfig {
        rates: LocallyBalanced::HeatBath,
        steps_per_update: 1,
        estimator: Ift {
            state_gradient: StateGradient::Conditional,
            sigma0: 1e-5,
            clean,
        },
        ratio,
        kl: beta,
        optimizer: AdamW::with_lr(lr),
        lr_schedule: decay,
        grad_clip: Some(1.0),
        max_batch: 4096,
        seed,
    }
}

/// Largest `|ℓ̂_b − ℓ̂_c|` over pairs of particles in the same state, and the number of such pairs.
fn same_state_gap(t: &Loop, len: usize) -> (f64, usize) {
    let x = t.particles();
    let ell = t.log_ratios();
    let (mut gap, mut pairs) = (0.0f64, 0);
    for b in 0..ell.len() {
        for c in b + 1..ell.len() {
            if x[b * len..(b + 1) * len] == x[c * len..(c + 1) * len] {
                gap = gap.max((ell[b] - ell[c]).abs());
                pairs += 1;
            }
        }
    }
    (gap, pairs)
}

/// Largest deviation of the centred `ℓ̂_b` from the centred exact `log π_θ(x_b) − log p_ref(x_b)`, with
/// `p = π_θ` at the weights the update read (before its AdamW step).
fn centred_error(t: &Loop, p: &[f64], tokens: usize, len: usize) -> f64 {
    let q = t.model.probabilities_with(&t.reference);
    let exact: Vec<f64> = t
        .particles()
        .chunks(len)
        .map(|x| {
            let i = x.iter().fold(0, |acc, &v| acc * tokens + v);
            p[i].ln() - q[i].ln()
        })
        .collect();
    let ell = t.log_ratios();
    let n = ell.len() as f64;
    let (me, ml) = (exact.iter().sum::<f64>() / n, ell.iter().sum::<f64>() / n);
    ell.iter()
        .zip(&exact)
        .map(|(a, b)| ((a - ml) - (b - me)).abs())
        .fold(0.0, f64::max)
}

fn tv(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

/// p* ∝ p_ref·exp(r/β) on `tokens^len`.
fn target(p_ref: &[f64], tokens: usize, len: usize, beta: f64) -> Vec<f64> {
    let w: Vec<f64> = p_ref
        .iter()
        .enumerate()
        .map(|(i, p)| p * (twos(&decode(i, tokens, len)) / beta).exp())
        .collect();
    let z: f64 = w.iter().sum();
    w.iter().map(|x| x / z).collect()
}

/// Two particles in the same state carry the same path log-ratio to 1e-9 after every one of 40 updates
/// (3^3, 48 particles, so that states coincide often), and the centred path log-ratios equal the
/// centred exact `log(π_θ/p_ref)` to 1e-9, for `Unmasked` and `Masked` clean scores; with a subset of
/// the path the first still holds. The tracked ratio, on the same run, breaks the first: its gap is
/// asserted to exceed 0.05 nats (about 1 nat is typical), so the check can fail.
#[test]
fn path_log_ratio_is_a_function_of_the_state() {
    let (tokens, len, batch, updates) = (3, 3, 48, 40);
    for (ratio, clean) in [
        (RatioMode::Path, CleanScores::Unmasked),
        (RatioMode::Path, CleanScores::Masked),
        (RatioMode::PathSubset { positions: 2 }, CleanScores::Masked),
        (RatioMode::Tracked, CleanScores::Unmasked),
    ] {
        let decay = LrSchedule::Constant;
        let mut t = trainer(tokens, len, batch, config(ratio, clean, 0.5, 0.1, decay, 3));
        let (mut worst, mut pairs, mut centred) = (0.0f64, 0, 0.0f64);
        for _ in 0..updates {
            let p = t.model.probabilities();
            t.step().unwrap();
            let (gap, n) = same_state_gap(&t, len);
            worst = worst.max(gap);
            pairs += n;
            centred = centred.max(centred_error(&t, &p, tokens, len));
        }
        eprintln!(
            "{ratio:?}, {clean:?}: largest same-state gap {worst:.3e} over {pairs} pairs; \
             largest centred error to the exact log-ratio {centred:.3e}"
        );
        assert!(pairs > 100, "{pairs}");
        match ratio {
            RatioMode::Tracked => assert!(worst > 0.05, "{worst}"),
            RatioMode::Path => {
                assert!(worst < 1e-9, "{worst}");
                assert!(centred < 1e-9, "{centred}");
            }
            _ => assert!(worst < 1e-9, "{worst}"),
        }
    }
}

/// One run on 4^4 (β = 0.5, B = 256, `Conditional` ĥ, `Unmasked` scores, constant AdamW lr 0.05, clip 1)
/// until `done`; returns the trainer and TV(π_θ, p*) at the end.
fn run_4x4(ratio: RatioMode, seed: u64, done: impl Fn(&Loop) -> bool) -> (Loop, f64) {
    run_4x4_with(ratio, CleanScores::Unmasked, seed, done)
}

/// [`run_4x4`] with the clean scores `clean`.
fn run_4x4_with(
    ratio: RatioMode,
    clean: CleanScores,
    seed: u64,
    done: impl Fn(&Loop) -> bool,
) -> (Loop, f64) {
    let mut t = trainer(
        4,
        4,
        256,
        config(ratio, clean, 0.5, 0.05, LrSchedule::Constant, seed),
    );
    let p_star = target(&t.model.probabilities_with(&t.reference), 4, 4, 0.5);
    let mut reported = false;
    while !done(&t) {
        t.step().unwrap();
        if !reported && t.evaluations() >= 300_000 {
            reported = true;
            eprintln!(
                "{ratio:?}, {clean:?}, seed {seed}: TV(π_θ, p*) = {:.4} after {} updates, {} evaluations",
                tv(&t.model.probabilities(), &p_star),
                t.updates(),
                t.evaluations()
            );
        }
    }
    let end = tv(&t.model.probabilities(), &p_star);
    eprintln!(
        "{ratio:?}, {clean:?}, seed {seed}: TV(π_θ, p*) = {end:.4} after {} updates, {} evaluations",
        t.updates(),
        t.evaluations()
    );
    (t, end)
}

/// With consistent scores the centred path log-ratios equal the exact ones (previous test), so the
/// path run takes the exact-ratio run's updates: after 300 updates on 4^4 (`Conditional` ĥ, seed 1)
/// the two models' laws agree to 1e-9 in TV, while the path run has spent its own evaluations (about
/// 1.1·10³ per update against 1.0·10³; printed). Both go well below TV(p_ref, p*) ≈ 0.7.
#[test]
fn path_log_ratio_takes_the_exact_ratio_updates() {
    let (path, a) = run_4x4(RatioMode::Path, 1, |t| t.updates() >= 300);
    let (exact, b) = run_4x4(RatioMode::Exact, 1, |t| t.updates() >= 300);
    let gap = tv(&path.model.probabilities(), &exact.model.probabilities());
    eprintln!(
        "TV between the two models {gap:.2e}; evaluations per update: path {:.0}, exact {:.0}",
        path.evaluations() as f64 / 300.0,
        exact.evaluations() as f64 / 300.0
    );
    assert!(gap < 1e-9, "{gap}");
    assert!(a < 0.05 && b < 0.05, "{a} {b}");
}

/// On 4^4 with `Conditional` ĥ, the single loop with the path log-ratio reaches TV(π_θ, p*) ≤ 0.01
/// within 10⁶ evaluations on three seeds, and its mean TV is within noise of the exact-ratio runs on the
/// same seeds: `|mean_path − mean_exact| ≤ 4·√(se_path² + se_exact²)`, each `se` the standard error of
/// its three seeds. Ignored (about 75 s at the test profile on the 2-core VM; run with
/// `cargo test --test flow_path_ratio -- --ignored --nocapture`); figures in docs/gradient_flow.md §4.
#[test]
#[ignore]
fn path_log_ratio_reaches_the_tilted_law_like_the_exact_ratio() {
    let seeds = [1, 2, 3];
    let budget = |t: &Loop| t.evaluations() >= 1_000_000;
    let path: Vec<f64> = seeds
        .iter()
        .map(|&s| run_4x4(RatioMode::Path, s, budget).1)
        .collect();
    let exact: Vec<f64> = seeds
        .iter()
        .map(|&s| run_4x4(RatioMode::Exact, s, budget).1)
        .collect();
    let mean_se = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, (var / n).sqrt())
    };
    let ((mp, sp), (me, se)) = (mean_se(&path), mean_se(&exact));
    eprintln!("path TV {mp:.4} ± {sp:.4}, exact TV {me:.4} ± {se:.4}");
    for tv in &path {
        assert!(*tv <= 0.01, "{path:?}");
    }
    assert!(
        (mp - me).abs() <= 4.0 * (sp * sp + se * se).sqrt(),
        "{path:?} vs {exact:?}"
    );
}

/// The tracked ratio on the same runs, and all three ratios when ĥ is read at 2 random masked positions
/// of 4 (`MaskedSubset`, as on the transformer), for the record (docs/gradient_flow.md §4): ignored,
/// since it only prints figures.
#[test]
#[ignore]
fn tracked_ratio_on_the_same_runs() {
    let subset = CleanScores::MaskedSubset { positions: 2 };
    for (ratio, clean) in [
        (RatioMode::Tracked, CleanScores::Unmasked),
        (RatioMode::Tracked, subset),
        (RatioMode::Path, subset),
        (RatioMode::Exact, subset),
    ] {
        for seed in [1, 2, 3] {
            run_4x4_with(ratio, clean, seed, |t| t.evaluations() >= 1_000_000);
        }
    }
}

/// A path subset of 0 positions, or of more positions than the sequence has, is a typed error.
#[test]
fn path_subset_sizes_are_checked() {
    let config = |positions| SingleLoopConfig {
        ratio: RatioMode::PathSubset { positions },
        ..SingleLoopConfig::default()
    };
    assert!(config(0).check(4).is_err());
    assert!(config(4).check(4).is_ok());
    let graph = Absorbing::with_tokens(3).unwrap();
    let model = Tabular::<f64, Cpu>::new(&graph, 2, vec![0.0; 9], &Cpu::default()).unwrap();
    let reward = FnReward::new("twos", twos);
    let err = SingleLoop::new(model, graph, reward, config(3), vec![0, 1, 2, 0], 2);
    assert!(
        matches!(
            err,
            Err(sepo::Error::InvalidParameter {
                name: "ratio positions",
                ..
            })
        ),
        "{:?}",
        err.err()
    );
}
