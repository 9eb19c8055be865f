//! The sepo side of the side-by-side benchmark against the PyTorch reference (`benches/reference/`,
//! driven by `benches/run_side_by_side.py`, issue "speed").
//!
//! ```sh
//! cargo run --release --example bench -- --config=dna                      # all four workloads
//! cargo run --release --example bench -- --config=mid --workloads=forward,train --reps=3
//! cargo run --release --example bench -- --config=dna --small             # toy sizes (a smoke check)
//! cargo run --release --example bench -- --config=dna --export=DIR        # weights + cases for parity.py
//! ```
//!
//! Prints one JSON line per workload on stdout (progress on stderr). Every workload is defined here and in
//! `benches/reference/sepo_reference.py` the same way, and the two must change together:
//!
//! - `forward`: one tape-free forward of a DWDSE-corrupted batch `[B, L]` (absorbing graph, log-linear
//!   schedule, stratified times), one warm-up, median of `reps` (default 5);
//! - `train`: one DWDSE step on that fixed batch: forward, backward, global-norm clip 1.0, AdamW
//!   (lr 1e-4, no weight decay), one warm-up, median of `reps` (default 5);
//! - `sample`: `steps` Tweedie steps (default 128) then the denoising step, `B` sequences of length `L`;
//! - `round`: one SEPO round: `groups × group_size` samples (4 × 16) from θ_old with the same sampler,
//!   reward = count of the motif `TATA` (`[3, 0, 3, 0]`), GRPO advantages (ε = 0.2), `K = 5` epochs over
//!   minibatches of 16 of the concrete-score surrogate with `Conditional` weights on `Unmasked` clean
//!   scores at `t₀ = 1e-5`, clip 1.0, AdamW lr 1e-4, then the round's entropy metric (4 samples, `L`
//!   masked forwards each).
//!
//! `sample` and `round` take minutes at `L = 200`: they run `reps` times (default 1) after one untimed
//! forward and training step (a warm process, not a repeated workload). Peak resident memory per workload
//! is `VmHWM` from `/proc/self/status`, reset through `/proc/self/clear_refs` when the workload starts.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use sepo::dfdx::prelude::*;
use sepo::graph::Absorbing;
use sepo::loss::{dwdse_loss, Dwdse, DwdseBatch, PpoObjective};
use sepo::nn::io::{to_safetensors, write_atomic};
use sepo::nn::Grads;
use sepo::prelude::*;
use sepo::reward::MotifCount;
use sepo::sample::{step_probs, Step, StepKind};
use sepo::score::{Transformer, TransformerConfig};
use sepo::train::{FinetuneConfig, Finetuner, LogProb, SamplerKind};

/// Sizes of one side-by-side configuration (`--config=NAME`).
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The network.
    pub model: TransformerConfig,
    /// Sequences per forward, training step and sampler call.
    pub batch: usize,
    /// Sequence length.
    pub len: usize,
    /// Tweedie steps of the sampler (a denoising step follows).
    pub steps: usize,
    /// SEPO round: groups, samples per group, minibatch, epochs.
    pub round: (usize, usize, usize, usize),
    /// Timed repetitions of forward/train and of sample/round.
    pub reps: (usize, usize),
}

/// `tiny` (sepo's preset, L = 128), `dna` (2 × 128, 4 heads, cond 64, 256 σ̄ features, L = 200: 0.53 M
/// parameters), `mid` (6 × 384, 6 heads, cond 128: 12.6 M), `sedd-small` (12 × 768, 12 heads, GPT-2's
/// vocabulary + mask, L = 128, B = 8); `small` shrinks the workloads (not the network) to toy sizes.
pub fn shape(name: &str, small: bool) -> Option<Shape> {
    let dna = |dim, heads, layers, cond_dim| TransformerConfig {
        dim,
        heads,
        layers,
        cond_dim,
        freq_dim: 256,
        ..TransformerConfig::tiny(5, 200, ScoreHead::Absorbing)
    };
    let (model, batch, len) = match name {
        "tiny" => (
            TransformerConfig::tiny(5, 128, ScoreHead::Absorbing),
            64,
            128,
        ),
        "dna" => (dna(128, 4, 2, 64), 64, 200),
        "mid" => (dna(384, 6, 6, 128), 64, 200),
        "sedd-small" => (TransformerConfig::sedd_small(), 8, 128),
        _ => return None,
    };
    let full = Shape {
        model,
        batch,
        len,
        steps: 128,
        round: (4, 16, 16, 5),
        reps: (5, 1),
    };
    Some(if small {
        Shape {
            batch: batch.min(8),
            len: len.min(32),
            steps: 8,
            round: (2, 4, 4, 2),
            reps: (1, 1),
            ..full
        }
    } else {
        full
    })
}

/// `VmHWM` or `VmRSS` of this process in MiB.
fn rss_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Times `reps` runs of `f` after `warmup` untimed ones.
fn timed(warmup: usize, reps: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..reps)
        .map(|_| {
            let clock = Instant::now();
            f();
            clock.elapsed().as_secs_f64()
        })
        .collect()
}

fn median(t: &[f64]) -> f64 {
    let mut t = t.to_vec();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// A DWDSE batch of the bench's fixed clean sequences `x0[i] = (7i + ⌊i/13⌋) mod 4`.
fn dwdse_batch(graph: &Absorbing, b: usize, l: usize) -> DwdseBatch {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x0: Vec<usize> = (0..b * l).map(|i| (i * 7 + i / 13) % 4).collect();
    Dwdse::default()
        .corrupt(graph, &LogLinear::default(), &x0, b, l, &mut rng)
        .expect("valid batch")
}

type Model = Transformer<f32, Cpu>;

/// One DWDSE step: forward, backward, clip 1.0, AdamW.
fn train_step(
    model: &mut Model,
    graph: &Absorbing,
    batch: &DwdseBatch,
    opt: &AdamW,
    state: &mut sepo::nn::AdamWState<f32, Cpu>,
) {
    let loss = dwdse_loss(model, graph, batch).expect("loss");
    let mut g = Grads::collect(model.params(), &mut loss.backward()).expect("grads");
    g.clip_norm(1.0);
    opt.step(opt.lr, model.params_mut(), state, &g)
        .expect("step");
}

/// Entry point for `bench --config=NAME`: reads `--workloads=a,b` (default: all four, `forward,train`
/// for `sedd-small`), `--reps=N`, `--small` and `--export=DIR` from the command line.
pub fn main(name: &str) {
    let arg =
        |prefix: &str| std::env::args().find_map(|a| a.strip_prefix(prefix).map(String::from));
    if let Some(dir) = arg("--export=") {
        if let Err(e) = export(name, Path::new(&dir)) {
            eprintln!("export failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let default = if name == "sedd-small" {
        "forward,train"
    } else {
        "forward,train,sample,round"
    };
    let which: Vec<String> = arg("--workloads=")
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(String::from)
        .collect();
    let reps = arg("--reps=").and_then(|r| r.parse().ok());
    run(name, &which, std::env::args().any(|a| a == "--small"), reps);
}

/// Runs the workloads `which` (`forward`, `train`, `sample`, `round`) of configuration `name`,
/// printing one JSON line each.
pub fn run(name: &str, which: &[String], small: bool, reps: Option<usize>) {
    let Some(s) = shape(name, small) else {
        eprintln!("unknown --config={name} (tiny, dna, mid, sedd-small)");
        std::process::exit(2);
    };
    let dev = Cpu::default();
    let graph = Absorbing::new(s.model.vocab).expect("vocab ≥ 2");
    let (b, l) = (s.batch, s.len);
    let mut model = Model::new(s.model, &dev, 0).expect("config");
    let batch = dwdse_batch(&graph, b, l);
    let ids = dev.tensor_from_vec(batch.x_t.clone(), (b, l));
    let opt = AdamW::with_lr(1e-4);
    let mut state = opt.init(model.params());
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into());
    for w in which {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let rss_start = rss_mib("VmRSS:");
        let (fast, slow) = (reps.unwrap_or(s.reps.0), reps.unwrap_or(s.reps.1));
        let mut extra = serde_json::Map::new();
        let times = match w.as_str() {
            "forward" => timed(1, fast, || {
                model
                    .forward(&ids, &batch.sigma_bar, NoneTape)
                    .expect("forward");
            }),
            "train" => timed(1, fast, || {
                train_step(&mut model, &graph, &batch, &opt, &mut state)
            }),
            "sample" | "round" => {
                // A warm process: one forward and one training step, untimed.
                model
                    .forward(&ids, &batch.sigma_bar, NoneTape)
                    .expect("forward");
                train_step(&mut model, &graph, &batch, &opt, &mut state);
                if w == "sample" {
                    let cfg = SamplerConfig {
                        steps: s.steps,
                        ..SamplerConfig::default()
                    };
                    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
                    let schedule = LogLinear::default();
                    timed(0, slow, || {
                        sample(
                            &Policy::current(&model),
                            &Diffusion::new(graph, schedule),
                            &cfg,
                            (b, l),
                            None,
                            &mut rng,
                        )
                        .expect("sample");
                    })
                } else {
                    let (times, parts) = rounds(&model, graph, &s, slow);
                    extra.insert("parts_s".into(), serde_json::json!(parts));
                    times
                }
            }
            other => {
                eprintln!("unknown workload {other} (forward, train, sample, round)");
                std::process::exit(2);
            }
        };
        let mut line = serde_json::json!({
            "impl": "sepo",
            "config": name,
            "small": small,
            "workload": w,
            "median_s": median(&times),
            "times_s": times,
            "peak_rss_mib": rss_mib("VmHWM:"),
            "rss_start_mib": rss_start,
            "params": s.model.num_params(),
            "batch": if w == "round" { s.round.0 * s.round.1 } else { b },
            "len": l,
            "steps": s.steps,
            "rayon_num_threads": threads,
        });
        line.as_object_mut().expect("object").extend(extra);
        println!("{line}");
    }
}

/// Times `reps` SEPO rounds (module docs); returns the wall times and the last round's parts
/// (sample, reward, optimisation, the rest: the entropy metric).
fn rounds(model: &Model, graph: Absorbing, s: &Shape, reps: usize) -> (Vec<f64>, [f64; 4]) {
    let (groups, group_size, minibatch, epochs) = s.round;
    let cfg = FinetuneConfig {
        groups,
        group_size,
        sampler: SamplerKind::Grid(SamplerConfig {
            steps: s.steps,
            ..SamplerConfig::default()
        }),
        log_prob: LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::Unmasked,
            ..ConcreteScore::default()
        }),
        epochs,
        minibatch,
        ..FinetuneConfig::new(s.len)
    };
    let reward = MotifCount::new(vec![3, 0, 3, 0]);
    let mut ft =
        Finetuner::new(model.clone(), graph, LogLinear::default(), reward, cfg).expect("finetuner");
    let mut parts = [0.0; 4];
    let times = timed(0, reps, || {
        let clock = Instant::now();
        let m = ft.round().expect("round");
        let wall = clock.elapsed().as_secs_f64();
        let rest = wall - m.time_sample - m.time_score - m.time_backward;
        parts = [m.time_sample, m.time_score, m.time_backward, rest];
    });
    (times, parts)
}

/// Writes `weights.safetensors` (every parameter, randomised so that no block is the identity) and
/// `cases.safetensors` (inputs and sepo's outputs: forward log-scores, DWDSE loss and gradients, a
/// Tweedie and a denoising step's probabilities, the SEPO surrogate's gradient) for
/// `benches/reference/parity.py`.
pub fn export(name: &str, dir: &Path) -> sepo::Result<()> {
    let s = shape(name, false).ok_or(Error::invalid("config", name, "unknown"))?;
    let dev = Cpu::default();
    let graph = Absorbing::new(s.model.vocab)?;
    let mask = graph.mask_token();
    let mut model = Model::new(s.model, &dev, 0)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let n = model.params().num_elements();
    let theta: Vec<f64> = (0..n).map(|_| rng.gen_range(-0.15..0.15)).collect();
    model.params_mut().set_flat_f64(&theta)?;
    let (b, l) = (4, s.len.min(24));
    let host = |v: Vec<f32>| v.into_iter().map(f64::from).collect::<Vec<f64>>();
    let usz = |v: &[usize]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let named = |store: &sepo::nn::ParamStore<f32, Cpu>, prefix: &str| {
        store
            .to_host()
            .into_iter()
            .map(|(k, shape, v)| (format!("{prefix}{k}"), shape, host(v)))
            .collect::<Vec<_>>()
    };
    let grads_named = |g: &Grads<f32, Cpu>, prefix: &str| {
        model
            .params()
            .params()
            .iter()
            .zip(&g.tensors)
            .map(|(p, t)| {
                (
                    format!("{prefix}{}", p.name),
                    p.shape.clone(),
                    host(t.as_vec()),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut cases = Vec::new();

    // Forward: ~40 % masked positions, one σ̄ per row.
    let tokens: Vec<usize> = (0..b * l)
        .map(|_| {
            if rng.gen_bool(0.4) {
                mask
            } else {
                rng.gen_range(0..mask)
            }
        })
        .collect();
    let sigma_bar = vec![0.05, 0.5, 1.5, 4.0];
    let ids = dev.tensor_from_vec(tokens.clone(), (b, l));
    let out = model.forward(&ids, &sigma_bar, NoneTape).expect("forward");
    cases.push(("forward.tokens".into(), vec![b, l], usz(&tokens)));
    cases.push(("forward.sigma_bar".into(), vec![b], sigma_bar.clone()));
    cases.push((
        "forward.log_scores".into(),
        vec![b, l, s.model.vocab],
        host(out.as_vec()),
    ));

    // DWDSE loss and gradient.
    let x0: Vec<usize> = (0..b * l).map(|_| rng.gen_range(0..mask)).collect();
    let batch = Dwdse::default().corrupt(&graph, &LogLinear::default(), &x0, b, l, &mut rng)?;
    let loss = dwdse_loss(&model, &graph, &batch)?;
    let value = f64::from(loss.as_vec()[0]);
    let g = Grads::collect(model.params(), &mut loss.backward())?;
    cases.push(("dwdse.x0".into(), vec![b, l], usz(&batch.x0)));
    cases.push(("dwdse.x_t".into(), vec![b, l], usz(&batch.x_t)));
    cases.push(("dwdse.sigma_bar".into(), vec![b], batch.sigma_bar.clone()));
    cases.push(("dwdse.sigma_rate".into(), vec![b], batch.sigma_rate.clone()));
    cases.push(("dwdse.loss".into(), vec![1], vec![value]));
    cases.extend(grads_named(&g, "dwdse.grad."));

    // One Tweedie step and the denoising step from `tokens`.
    for (kind, key, next) in [
        (StepKind::Tweedie, "tweedie", vec![0.4, 1.2, 0.9, 3.0]),
        (StepKind::Denoise, "denoise", vec![0.0; b]),
    ] {
        let step = Step {
            kind,
            batch: b,
            seq_len: l,
            t: vec![0.5; b],
            t_next: vec![0.4; b],
            sigma_bar: sigma_bar.clone(),
            sigma_bar_next: next.clone(),
            rate: vec![1.0; b],
            before: tokens.clone(),
            after: Vec::new(),
            fixed: vec![false; b * l],
            position: Vec::new(),
            log_prob: Vec::new(),
        };
        let p = step_probs(&model, model.params(), &graph, &step, NoneTape)?;
        cases.push((format!("{key}.sigma_bar_next"), vec![b], next));
        cases.push((
            format!("{key}.probs"),
            vec![b, l, s.model.vocab],
            host(p.as_vec()),
        ));
    }

    // The SEPO surrogate (Conditional weights, Unmasked clean scores) against a perturbed θ_old.
    let mut old = model.params().snapshot();
    let shifted: Vec<f64> = theta
        .iter()
        .map(|t| t + rng.gen_range(-0.15..0.15))
        .collect();
    old.set_flat_f64(&shifted)?;
    let x: Vec<usize> = (0..b * l).map(|_| rng.gen_range(0..mask)).collect();
    let adv = [1.0, -0.5, 0.3, -1.2];
    let est = ConcreteScore {
        clean: CleanScores::Unmasked,
        ..ConcreteScore::default()
    };
    let objectives = PpoObjective::single(&adv, Some(0.2));
    let schedule = LogLinear::default();
    let (g, stats) = est.grads(
        &Policy::new(&model, &old),
        &Diffusion::new(graph, schedule),
        Sequences::new(&x, b).unwrap(),
        &objectives,
        &mut rng,
    )?;
    cases.push(("sepo.x".into(), vec![b, l], usz(&x)));
    cases.push(("sepo.advantage".into(), vec![b], adv.to_vec()));
    cases.push(("sepo.loss".into(), vec![1], vec![stats.loss]));
    cases.push(("sepo.clip_ratio".into(), vec![1], vec![stats.clip_ratio]));
    cases.extend(grads_named(&g, "sepo.grad."));

    let meta = BTreeMap::from([("config".to_string(), name.to_string())]);
    write_atomic(
        &dir.join("weights.safetensors"),
        &to_safetensors(&named(model.params(), ""), true, &meta)?,
    )?;
    let mut all = named(&old, "sepo.old.");
    all.extend(cases);
    write_atomic(
        &dir.join("cases.safetensors"),
        &to_safetensors(&all, false, &meta)?,
    )?;
    eprintln!("wrote {}/{{weights,cases}}.safetensors", dir.display());
    Ok(())
}
