//! Speed benchmarks (release build): prints a markdown table for docs/PERFORMANCE.md.
//!
//! ```sh
//! cargo run --release --example bench              # everything (the mid config takes minutes)
//! cargo run --release --example bench -- --tiny    # tiny config only
//! cargo run --release --example bench -- --sepo --snis   # SEPO rounds, SNIS included (over an hour at L = 200)
//! cargo run --release --example bench -- --flow    # gradient flow against plain SEPO only (about 1 h)
//! cargo run --release --example bench -- --flow --small   # the same at toy sizes (a smoke check)
//! cargo run --release --example bench -- --events  # Events{m} against MaskedSubset{m}, optimisation only
//! cargo run --release --example bench -- --config=dna      # side by side with PyTorch: JSON lines
//! cargo run --release --example bench -- --traffic  # sampler host traffic per step at N = 50,258
//! ```
//!
//! Each row is the median of `reps` timed runs after one warm-up run. Timings are wall-clock on whatever
//! else the machine is doing: record the load with the figures.

mod side_by_side;
mod traffic;

use std::time::Instant;

use rand::{Rng, SeedableRng};
use sepo::dfdx::prelude::*;
use sepo::flow::LocallyBalanced;
use sepo::graph::Absorbing;
use sepo::loss::{dwdse_loss, Dwdse};
use sepo::nn::Grads;
use sepo::policy::{CleanScores, ConcreteScore, Ift, NeighbourWeights, StateGradient};
use sepo::prelude::*;
use sepo::reward::MotifCount;
use sepo::sample::{sample, SamplerConfig};
use sepo::score::{Counting, Transformer, TransformerConfig};
use sepo::train::{
    FinetuneConfig, Finetuner, LogProb, LrSchedule, RatioMode, SamplerKind, SingleLoop,
    SingleLoopConfig,
};

/// The value of the command-line flag `name` (`--name=value`), if given and parsable.
fn flag<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args().find_map(|a| a.strip_prefix(name).and_then(|v| v.parse().ok()))
}

/// One line of the race's progress on stderr.
fn progress(what: &str, i: impl std::fmt::Display, evaluations: u64, reward: f64, clock: Instant) {
    let secs = clock.elapsed().as_secs_f64();
    eprintln!("{what} {i}: evaluations {evaluations} reward {reward:.3} ({secs:.1} s)");
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn row(what: &str, config: &str, secs: f64, note: &str) {
    println!("| {what} | {config} | {:.1} ms | {note} |", secs * 1e3);
}

fn core_benches(name: &str, config: TransformerConfig, reps: usize, sample_steps: usize) {
    let dev = Cpu::default();
    let (b, l) = (64, 128);
    let graph = Absorbing::with_tokens(4).unwrap();
    let schedule = LogLinear::default();
    let mut model = Transformer::<f32, Cpu>::new(config, &dev, 0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x0: Vec<usize> = (0..b * l).map(|i| (i * 7 + i / 13) % 4).collect();
    let batch = Dwdse::default()
        .corrupt(&graph, &schedule, &x0, b, l, &mut rng)
        .unwrap();
    let ids = dev.tensor_from_vec(batch.x_t.clone(), (b, l));
    let params = format!("{name} ({} params)", config.num_params());
    let fwd = median_secs(reps, || {
        let _ = model
            .forward(&ids, &batch.sigma_bar, NoneTape)
            .expect("forward")
            .as_vec();
    });
    row(
        "transformer forward",
        &params,
        fwd,
        &format!("B={b}, L={l}: {:.0} tokens/s", (b * l) as f64 / fwd),
    );
    let opt = AdamW::with_lr(1e-4);
    let mut state = opt.init(model.params());
    let train = median_secs(reps, || {
        let loss = dwdse_loss(&model, &graph, &batch).unwrap();
        let g = Grads::collect(model.params(), &mut loss.backward()).unwrap();
        opt.step(1e-4, model.params_mut(), &mut state, &g).unwrap();
    });
    row(
        "DWDSE training step",
        &params,
        train,
        "forward + backward + AdamW",
    );
    let cfg = SamplerConfig {
        steps: sample_steps,
        ..SamplerConfig::default()
    };
    let full = median_secs(1, || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        sample(
            &Policy::current(&model),
            &Diffusion::new(graph, schedule),
            &cfg,
            (b, l),
            None,
            &mut rng,
        )
        .unwrap();
    });
    row(
        "full sampling (Tweedie)",
        &params,
        full,
        &format!("{sample_steps} steps + denoise, B={b}, L={l}"),
    );
}

/// One SEPO round on the DNA-like config; returns the per-sample time of the optimisation phase (the
/// estimator's extra forwards, the loss and the backward pass).
fn sepo_round(
    log_prob: LogProb,
    label: &str,
    steps: usize,
    groups: usize,
    group_size: usize,
) -> f64 {
    let dev = Cpu::default();
    let l = 200;
    let config = TransformerConfig::tiny(5, l, ScoreHead::Absorbing);
    let model = Transformer::<f32, Cpu>::new(config, &dev, 0).unwrap();
    let batch = groups * group_size;
    let cfg = FinetuneConfig {
        groups,
        group_size,
        sampler: SamplerKind::Grid(SamplerConfig {
            steps,
            ..SamplerConfig::default()
        }),
        log_prob,
        epochs: 1,
        minibatch: batch,
        ..FinetuneConfig::new(l)
    };
    let mut ft = Finetuner::new(
        model,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        MotifCount::new(vec![3, 0, 3, 0]),
        cfg,
    )
    .unwrap();
    let m = ft.round().unwrap();
    let per_sample = m.time_backward / batch as f64;
    println!(
        "| SEPO round, {label} | tiny, L={l}, B={batch}, {steps} Tweedie steps | {:.0} ms | sample {:.0} ms, reward {:.1} ms, estimator+loss+backward {:.0} ms ({:.1} ms per sample) |",
        (m.time_sample + m.time_score + m.time_backward) * 1e3,
        m.time_sample * 1e3,
        m.time_score * 1e3,
        m.time_backward * 1e3,
        per_sample * 1e3,
    );
    per_sample
}

/// The optimisation phase of `LogProb::Events { positions: m }` against `ConcreteScore` (`Conditional`)
/// with `MaskedSubset { positions: m }` on the DNA-like config (tiny transformer, L = 200, B = 64, one
/// minibatch of 64): one recorded 128-step Tweedie sample, then the two gradient computations
/// alternated `reps` times (`--reps=N`, default 3) after a warm-up of each, for m in `--positions=M`
/// (default: 8 and 32). Both read `m` contexts per sample with a tape and `m` more without (θ_old), so
/// the ratio should be near 1; the issue asks for at most 2.
fn events_benches() {
    let dev = Cpu::default();
    let (l, b, steps) = (200, 64, 128);
    let reps: usize = flag("--reps=").unwrap_or(3);
    let graph = Absorbing::with_tokens(4).unwrap();
    let schedule = LogLinear::default();
    let config = TransformerConfig::tiny(5, l, ScoreHead::Absorbing);
    let model = Transformer::<f32, Cpu>::new(config, &dev, 0).unwrap();
    let old = model.params().snapshot();
    let cfg = SamplerConfig {
        steps,
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let clock = Instant::now();
    let s = sample(
        &Policy::current(&model),
        &Diffusion::new(graph, schedule),
        &cfg,
        (b, l),
        None,
        &mut rng,
    )
    .unwrap();
    eprintln!(
        "sampled B={b}, L={l}, {steps} Tweedie steps in {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    let trajectory = s.trajectory.as_ref().unwrap();
    let adv: Vec<f64> = (0..b).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
    let objectives = sepo::loss::PpoObjective::single(&adv, Some(0.2));
    let sizes: Vec<usize> = flag::<usize>("--positions=").map_or(vec![8, 32], |m| vec![m]);
    for m in sizes {
        let concrete = ConcreteScore {
            clean: CleanScores::MaskedSubset { positions: m },
            ..ConcreteScore::default()
        };
        let (mut tc, mut te) = (Vec::new(), Vec::new());
        for rep in 0..=reps {
            let clock = Instant::now();
            concrete
                .grads(
                    &Policy::new(&model, &old),
                    &Diffusion::new(graph, schedule),
                    Sequences::new(&s.tokens, b).unwrap(),
                    &objectives,
                    &mut rng,
                )
                .unwrap();
            let c = clock.elapsed().as_secs_f64();
            let clock = Instant::now();
            sepo::policy::events_ppo_grads(
                &Policy::new(&model, &old),
                &graph,
                trajectory,
                m,
                &objectives,
                &mut rng,
            )
            .unwrap();
            let e = clock.elapsed().as_secs_f64();
            eprintln!("m = {m}, rep {rep}: MaskedSubset {c:.2} s, Events {e:.2} s");
            if rep > 0 {
                tc.push(c);
                te.push(e);
            }
        }
        tc.sort_by(f64::total_cmp);
        te.sort_by(f64::total_cmp);
        let (c, e) = (tc[tc.len() / 2], te[te.len() / 2]);
        let config = format!("tiny, L={l}, B={b}, m={m}");
        row(
            "optimisation phase, `ConcreteScore` `MaskedSubset`",
            &config,
            c,
            &format!("median of {reps}"),
        );
        row(
            "optimisation phase, `Events`",
            &config,
            e,
            &format!("median of {reps}; {:.2}× MaskedSubset", e / c),
        );
    }
}

/// The single loop's configuration in the flow benchmarks: heat bath, k = 1, `Conditional` ĥ on 8 masked
/// positions, tracked ρ̂ with coefficient `beta`, AdamW lr 3e-4.
fn flow_config(beta: f64, positions: usize) -> SingleLoopConfig {
    SingleLoopConfig {
        rates: LocallyBalanced::HeatBath,
        steps_per_update: 1,
        estimator: Ift {
            state_gradient: StateGradient::Conditional,
            clean: CleanScores::MaskedSubset { positions },
            ..Ift::default()
        },
        ratio: RatioMode::Tracked,
        kl: beta,
        optimizer: AdamW::with_lr(3e-4),
        lr_schedule: LrSchedule::Constant,
        grad_clip: Some(1.0),
        max_batch: 4096,
        seed: 0,
    }
}

/// Gradient-flow SEPO against plain SEPO (issue "Gradient-flow SEPO", Speed) on the DNA-like config
/// (`small`: toy sizes, to check that it runs). Times one flow step (every particle one heat-bath step:
/// B forwards), one single-loop update and one plain SEPO round (the concrete score with `Conditional`
/// weights on the same masked positions as the single loop's `ĥ`, so the two differ in their loops only), then
/// races both from the same untrained transformer, without KL and at the same learning rate (plain SEPO
/// with its default K = 5 epochs in minibatches of 16), until their own samples' mean `TATA` count
/// reaches `1.5×` plain SEPO's first round (at least 0.1 above it), and reports the model evaluations
/// ([`Counting`]: one forward on one sequence; back-propagated ones in brackets) and the wall time each
/// needed. Flags: `--race-only` skips the timed rows, `--lr=X` (default 1e-3), `--flow-steps=K` (the
/// single loop's k, default 1), `--target=X` (race the single loop alone to `X`), `--seed=S` (model and
/// trainers, default 0), `--cap=N` (evaluations of each), `--reps=N`; progress goes to stderr.
fn flow_benches(small: bool) {
    let (l, b, steps, reps, cap) = if small {
        (32, 16, 8, 1, 200_000u64)
    } else {
        (200, 64, 128, 3, 300_000u64)
    };
    // `--cap=N` overrides the race's evaluation cap.
    let cap = flag("--cap=").unwrap_or(cap);
    // `--reps=N` overrides the timed repetitions (a full-size SEPO round takes minutes).
    let reps = flag("--reps=").unwrap_or(reps);
    // `--lr=X`: both trainers' AdamW learning rate in the race (default 1e-3, as recorded).
    let lr = flag("--lr=").unwrap_or(1e-3);
    // `--flow-steps=K`: the single loop's chain steps per update in the race (default 1).
    let flow_steps = flag("--flow-steps=").unwrap_or(1);
    // `--seed=S`: the race's model initialisation and trainer seeds (default 0).
    let seed: u64 = flag("--seed=").unwrap_or(0);
    let positions = 8.min(l);
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(4).unwrap();
    let model = Transformer::<f32, Cpu>::new(
        TransformerConfig::tiny(5, l, ScoreHead::Absorbing),
        &dev,
        seed,
    )
    .unwrap();
    let reward = MotifCount::new(vec![3, 0, 3, 0]);
    let config = format!("tiny, L={l}, B={b}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x: Vec<usize> = (0..b * l).map(|_| rng.gen_range(0..4)).collect();
    let mut sl = SingleLoop::new(
        Counting::new(model.clone()),
        graph,
        reward.clone(),
        flow_config(0.05, positions),
        x.clone(),
        b,
    )
    .unwrap();
    // `--race-only`: skip the timed rows (measured once, recorded in docs/PERFORMANCE.md).
    let race_only = std::env::args().any(|a| a == "--race-only");
    if !race_only {
        row(
            "flow step (heat bath)",
            &config,
            median_secs(reps, || {
                sl.advance(1, &mut rng).unwrap();
            }),
            &format!("one position per particle: {b} no-grad forwards"),
        );
        let rows = b * positions;
        row(
            "single-loop update",
            &config,
            median_secs(reps, || {
                sl.step().unwrap();
            }),
            &format!(
                "flow step + Conditional ĥ on {positions} masked positions ({rows} forward/backward) \
                 + tracked ρ̂ (β = 0.05)"
            ),
        );
    }
    let sepo_config = FinetuneConfig {
        groups: b / 8,
        group_size: 8,
        sampler: SamplerKind::Grid(SamplerConfig {
            steps,
            ..SamplerConfig::default()
        }),
        // Like for like with the single loop's ĥ: Conditional weights on the same masked positions.
        log_prob: LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::MaskedSubset { positions },
            ..ConcreteScore::default()
        }),
        epochs: 1,
        minibatch: b,
        optimizer: AdamW::with_lr(lr),
        ..FinetuneConfig::new(l)
    };
    let finetuner = |config: FinetuneConfig| {
        Finetuner::new(
            Counting::new(model.clone()),
            graph,
            LogLinear::default(),
            reward.clone(),
            config,
        )
        .unwrap()
    };
    if !race_only {
        let mut ft = finetuner(sepo_config.clone());
        row(
            "plain SEPO round (Conditional, masked subset)",
            &config,
            median_secs(reps, || {
                ft.round().unwrap();
            }),
            &format!(
                "{steps} Tweedie steps, Conditional on {positions} masked positions, one epoch, \
                 no KL"
            ),
        );
    }

    // The race: both from the same model, no KL, until their own samples reach the target. Plain SEPO
    // reuses each round's samples as it is meant to: its default K = 5 epochs in minibatches of 16.
    let mut ft = finetuner(FinetuneConfig {
        epochs: 5,
        minibatch: 16,
        seed,
        ..sepo_config
    });
    let clock = Instant::now();
    let mut first = None;
    // `--target=X`: race the single loop alone to a given mean (e.g. from an earlier run's SEPO row).
    let given: Option<f64> = flag("--target=");
    let (mut sepo_at, mut target) = (None, given.unwrap_or(f64::INFINITY));
    while given.is_none() && ft.model().evaluations() < cap {
        let m = ft.round().unwrap();
        progress(
            "sepo round",
            ft.completed(),
            ft.model().evaluations(),
            m.reward,
            clock,
        );
        let start = *first.get_or_insert(m.reward);
        // 1.5× the start, and at least 0.1 motifs above it (a start of 0 would be reached at once).
        target = start + (0.5 * start).max(0.1);
        if m.reward >= target {
            sepo_at = Some((ft.model().evaluations(), ft.model().taped(), ft.completed()));
            break;
        }
    }
    let sepo_secs = clock.elapsed().as_secs_f64();
    // The single loop starts from B samples of the same sampler (counted).
    let counted = Counting::new(model);
    let clock = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1 + seed);
    let start = sample(
        &Policy::current(&counted),
        &Diffusion::new(graph, LogLinear::default()),
        &SamplerConfig {
            steps,
            ..SamplerConfig::default()
        },
        (b, l),
        None,
        &mut rng,
    )
    .unwrap();
    let mut sl = SingleLoop::new(
        counted,
        graph,
        reward,
        SingleLoopConfig {
            optimizer: AdamW::with_lr(lr),
            steps_per_update: flow_steps,
            seed,
            ..flow_config(0.0, positions)
        },
        start.tokens,
        b,
    )
    .unwrap();
    let mut flow_at = None;
    while sl.model.evaluations() < cap {
        let m = sl.step().unwrap();
        if m.update % 10 == 0 {
            progress(
                "flow update",
                m.update,
                sl.model.evaluations(),
                m.reward,
                clock,
            );
        }
        if m.reward >= target {
            flow_at = Some((sl.model.evaluations(), sl.model.taped(), m.update + 1));
            break;
        }
    }
    let flow_secs = clock.elapsed().as_secs_f64();
    println!(
        "\nTo reach a mean TATA count of {target:.3} ({}) on its own samples ({config}, seed {seed}, lr {lr}, k = {flow_steps}, no KL, cap {cap} evaluations):\n",
        if given.is_some() {
            "given by --target"
        } else {
            "1.5× plain SEPO's first round, at least +0.1"
        }
    );
    println!("| method | evaluations (back-propagated) | wall | iterations |\n|---|---|---|---|");
    for (name, at, secs, unit) in [
        ("plain SEPO", sepo_at, sepo_secs, "rounds"),
        ("single loop", flow_at, flow_secs, "updates"),
    ] {
        if given.is_some() && name == "plain SEPO" {
            continue;
        }
        match at {
            Some((e, t, i)) => println!("| {name} | {e} ({t}) | {secs:.1} s | {i} {unit} |"),
            None => println!("| {name} | not reached within {cap} | {secs:.1} s | |"),
        }
    }
}

fn main() {
    // `--config=NAME`: the side-by-side workloads as JSON lines (examples/side_by_side/mod.rs).
    if let Some(config) = flag::<String>("--config=") {
        side_by_side::main(&config);
        return;
    }
    if std::env::args().any(|a| a == "--traffic") {
        traffic::main(flag::<usize>);
        return;
    }
    let tiny_only = std::env::args().any(|a| a == "--tiny");
    let sepo_only = std::env::args().any(|a| a == "--sepo");
    println!("| what | config | median | notes |\n|---|---|---|---|");
    if std::env::args().any(|a| a == "--events") {
        events_benches();
        return;
    }
    if std::env::args().any(|a| a == "--flow") {
        flow_benches(std::env::args().any(|a| a == "--small"));
        return;
    }
    if !sepo_only {
        core_benches(
            "tiny",
            TransformerConfig::tiny(5, 128, ScoreHead::Absorbing),
            5,
            128,
        );
        if !tiny_only {
            core_benches(
                "mid",
                TransformerConfig::mid(5, 128, ScoreHead::Absorbing),
                2,
                16,
            );
        }
    }
    if sepo_only || !tiny_only {
        let steps = 128;
        let unmasked = sepo_round(
            LogProb::ConcreteScore(ConcreteScore {
                clean: CleanScores::Unmasked,
                ..ConcreteScore::default()
            }),
            "Conditional, unmasked",
            steps,
            8,
            8,
        );
        sepo_round(
            LogProb::ConcreteScore(ConcreteScore {
                clean: CleanScores::MaskedSubset { positions: 8 },
                ..ConcreteScore::default()
            }),
            "Conditional, 8 masked positions",
            steps,
            8,
            8,
        );
        sepo_round(
            LogProb::ConcreteScore(ConcreteScore::default()),
            "Conditional, all 200 positions masked",
            steps,
            8,
            8,
        );
        sepo_round(LogProb::Trajectory, "Trajectory (default)", steps, 8, 8);
        sepo_round(
            LogProb::Events { positions: 8 },
            "Events, 8 of the 200 unmasking events",
            steps,
            8,
            8,
        );
        // SNIS costs B·L·(N−1)·(L+M) forwards per call under the absorbing graph (masked proposal
        // reads; for θ and θ_old): 121,200 sequences per sample and model at L = 200, so it is timed on
        // 2 samples and only with `--snis`; the optimisation phase is linear in B.
        if !std::env::args().any(|a| a == "--snis") {
            return;
        }
        let snis = sepo_round(
            LogProb::ConcreteScore(ConcreteScore {
                clean: CleanScores::Unmasked,
                weights: NeighbourWeights::Snis { draws: 2 },
                t0: 1e-5,
            }),
            "SNIS M=2, unmasked",
            steps,
            1,
            2,
        );
        println!(
            "\nSNIS (M = 2) / Conditional (unmasked), optimisation phase per sample: {:.0}x",
            snis / unmasked
        );
    }
}
