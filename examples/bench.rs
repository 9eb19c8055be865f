//! Speed benchmarks (release build): prints a markdown table for docs/PERFORMANCE.md.
//!
//! ```sh
//! cargo run --release --example bench              # everything (the mid config takes minutes)
//! cargo run --release --example bench -- --tiny    # tiny config only
//! ```
//!
//! Each row is the median of `reps` timed runs after one warm-up run. Timings are wall-clock on whatever
//! else the machine is doing: record the load with the figures.

use std::time::Instant;

use rand::SeedableRng;
use sepo::dfdx::prelude::*;
use sepo::graph::Absorbing;
use sepo::loss::{dwdse_loss, Dwdse};
use sepo::nn::Grads;
use sepo::policy::{CleanScores, ConcreteScore, NeighbourWeights};
use sepo::prelude::*;
use sepo::reward::MotifCount;
use sepo::sample::{sample, SamplerConfig};
use sepo::score::{Transformer, TransformerConfig};
use sepo::train::{FinetuneConfig, Finetuner, LogProb, SamplerKind};

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
        let _ = model.forward(&ids, &batch.sigma_bar, NoneTape).as_vec();
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
            &model,
            model.params(),
            &graph,
            &schedule,
            &cfg,
            b,
            l,
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

fn main() {
    let tiny_only = std::env::args().any(|a| a == "--tiny");
    let sepo_only = std::env::args().any(|a| a == "--sepo");
    println!("| what | config | median | notes |\n|---|---|---|---|");
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
        // SNIS costs B·L·N·(1+M) forwards per call (for θ and θ_old): 384,000 sequences at B = 64, so it is
        // timed on 2 samples; the optimisation phase is linear in B.
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
