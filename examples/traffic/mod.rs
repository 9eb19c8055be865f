//! `--traffic`: the samplers' host traffic per step at GPT-2's vocabulary (50,257 tokens + the mask),
//! for docs/PERFORMANCE.md ("Sampler host traffic").
//!
//! ```sh
//! cargo run --release --example bench -- --traffic                 # B = 2, L = 128, 64 grid steps
//! cargo run --release --example bench -- --traffic --batch=4 --len=64 --steps=32
//! ```
//!
//! An untrained tiny transformer (`TransformerConfig::tiny`, normalised absorbing head) is driven step
//! by step through the public chain (`start`, `propose`, then `take` or `take_full_rows`, `advance`)
//! from one seed, once per draw; `sample::traffic` counts the bytes each step copies device → host
//! (and the constants it uploads host → device). Both draws spend the same uniforms, so they walk the
//! same path and the figures compare step for step. Prints one markdown row per sampler and draw.

use rand::SeedableRng;
use sepo::dfdx::prelude::*;
use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::sample::{step_probs, take, take_full_rows, traffic, SamplerKind, Step};
use sepo::score::{Transformer, TransformerConfig};

/// GPT-2's 50,257 tokens and the mask.
const STATES: usize = 50_258;

/// Per-step traffic of one run: `(device → host, host → device)` bytes of every step, and the number
/// of positions that moved.
struct Run {
    to_host: Vec<u64>,
    to_device: Vec<u64>,
    moved: usize,
    tokens: Vec<usize>,
}

fn walk(
    model: &Transformer<f32, Cpu>,
    kind: SamplerKind,
    (batch, len): (usize, usize),
    full_rows: bool,
) -> Run {
    let diffusion = Diffusion::new(Absorbing::new(STATES).unwrap(), LogLinear::default());
    let policy = Policy::current(model);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let fixed = kind
        .check_entry(model, &diffusion, (batch, len), None)
        .unwrap();
    let mut particles = kind.start(&diffusion, &fixed, len, &mut rng);
    let mut run = Run {
        to_host: Vec::new(),
        to_device: Vec::new(),
        moved: 0,
        tokens: Vec::new(),
    };
    for k in 0..kind.num_steps(&fixed, len) {
        let mut step: Step = kind.propose(k, &mut particles, &diffusion, &mut rng);
        let start = traffic::read();
        if full_rows {
            take_full_rows(&policy, &diffusion.graph, &mut step, k, &mut rng).unwrap();
        } else {
            take(&policy, &diffusion.graph, &mut step, k, &mut rng).unwrap();
        }
        let used = traffic::read() - start;
        run.to_host.push(used.to_host);
        run.to_device.push(used.to_device);
        run.moved += step
            .before
            .iter()
            .zip(&step.after)
            .filter(|(a, b)| a != b)
            .count();
        particles.advance(&step, step.after.clone());
    }
    run.tokens = particles.tokens;
    run
}

/// How far the device's rows sum from 1 in f32 (the sequential sum in the kernel's normalisation), on
/// the first Tweedie step from all-mask: why the factorised draw divides `r_x` by a row sum.
fn row_sum_error(model: &Transformer<f32, Cpu>, (batch, len): (usize, usize)) -> String {
    let diffusion = Diffusion::new(Absorbing::new(STATES).unwrap(), LogLinear::default());
    let kind = SamplerKind::Grid(SamplerConfig::default());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let fixed = vec![None; batch * len];
    let mut particles = kind.start(&diffusion, &fixed, len, &mut rng);
    let step = kind.propose(0, &mut particles, &diffusion, &mut rng);
    let probs = step_probs(model, model.params(), &diffusion.graph, &step, NoneTape).unwrap();
    let worst = probs
        .as_vec()
        .chunks_exact(STATES)
        .map(|row| (row.iter().map(|&p| f64::from(p)).sum::<f64>() - 1.0).abs())
        .fold(0.0, f64::max);
    format!("f32 rows of the first Tweedie step sum to 1 within {worst:.1e} (f64 sum on the host).")
}

fn mib(bytes: f64) -> String {
    format!("{:.3} MiB", bytes / (1u64 << 20) as f64)
}

fn row(sampler: &str, draw: &str, run: &Run, shape: (usize, usize)) {
    let steps = run.to_host.len() as f64;
    let mean = run.to_host.iter().sum::<u64>() as f64 / steps;
    let max = *run.to_host.iter().max().unwrap() as f64;
    let up = run.to_device.iter().sum::<u64>() as f64 / steps;
    println!(
        "| {sampler} | {} × {} | {draw} | {} | {} | {} | {:.2} | {} |",
        shape.0,
        shape.1,
        steps,
        mib(mean),
        mib(max),
        run.moved as f64 / steps,
        mib(up),
    );
}

/// The `--traffic` benchmark (module docs).
pub fn main(flag: impl Fn(&str) -> Option<usize>) {
    let batch = flag("--batch=").unwrap_or(2);
    let len = flag("--len=").unwrap_or(128);
    let steps = flag("--steps=").unwrap_or(64);
    let config = TransformerConfig::tiny(STATES, len, ScoreHead::Absorbing);
    let model = Transformer::<f32, Cpu>::new(config, &Cpu::default(), 0).unwrap();
    println!(
        "| sampler | B × L | draw | steps | device → host per step (mean) | max | moved per step | \
         host → device per step |\n|---|---|---|---|---|---|---|---|"
    );
    let grid = SamplerConfig {
        steps,
        ..SamplerConfig::default()
    };
    let mut notes = Vec::new();
    for (name, kind) in [
        (
            format!("Tweedie, {steps} steps + denoise"),
            SamplerKind::Grid(grid),
        ),
        ("first-hitting".to_string(), SamplerKind::FirstHitting(grid)),
    ] {
        let full = walk(&model, kind, (batch, len), true);
        let factorised = walk(&model, kind, (batch, len), false);
        row(&name, "full rows", &full, (batch, len));
        row(&name, "factorised", &factorised, (batch, len));
        let differ = full
            .tokens
            .iter()
            .zip(&factorised.tokens)
            .filter(|(a, b)| a != b)
            .count();
        notes.push(format!(
            "{name}: {differ} of {} final tokens differ between the two draws (same seed).",
            full.tokens.len()
        ));
    }
    notes.push(row_sum_error(&model, (batch, len)));
    println!();
    for note in notes {
        println!("- {note}");
    }
}
