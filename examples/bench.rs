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
    let mut model = Transformer::<f32, Cpu>::new(config.clone(), &dev, 0).unwrap();
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

fn sepo_round(log_prob: LogProb, label: &str, steps: usize) {
    let dev = Cpu::default();
    let l = 200;
    let config = TransformerConfig::tiny(5, l, ScoreHead::Absorbing);
    let model = Transformer::<f32, Cpu>::new(config, &dev, 0).unwrap();
    let cfg = FinetuneConfig {
        groups: 8,
        group_size: 8,
        sampler: SamplerKind::Grid(SamplerConfig {
            steps,
            ..SamplerConfig::default()
        }),
        log_prob,
        epochs: 1,
        minibatch: 64,
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
    println!(
        "| SEPO round, {label} | tiny, L={l}, B=64, {steps} Tweedie steps | {:.0} ms | sample {:.0} ms, score {:.0} ms, loss+backward {:.0} ms |",
        (m.time_sample + m.time_score + m.time_backward) * 1e3,
        m.time_sample * 1e3,
        m.time_score * 1e3,
        m.time_backward * 1e3
    );
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
        sepo_round(
            LogProb::ConcreteScore(ConcreteScore {
                clean: CleanScores::Unmasked,
                ..ConcreteScore::default()
            }),
            "Conditional, unmasked",
            steps,
        );
        sepo_round(
            LogProb::ConcreteScore(ConcreteScore {
                clean: CleanScores::MaskedSubset { positions: 8 },
                ..ConcreteScore::default()
            }),
            "Conditional, 8 masked positions",
            steps,
        );
        sepo_round(
            LogProb::ConcreteScore(ConcreteScore {
                clean: CleanScores::Unmasked,
                weights: NeighbourWeights::Snis { draws: 2 },
                t0: 1e-5,
            }),
            "SNIS M=2, unmasked",
            steps,
        );
        sepo_round(LogProb::Trajectory, "Trajectory", steps);
    }
}
