//! Exactness of the concrete-score policy gradient on enumerable spaces (issue "SEPO", must-show 1).

use crate::Diffusion;
use crate::Policy;
use crate::Sequences;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::*;
use crate::graph::{Absorbing, Graph, Uniform};
use crate::nn::Grads;
use crate::schedule::LogLinear;
use crate::score::{ScoreModel, Tabular};

fn logits(count: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    (0..count).map(|_| normal.sample(&mut rng)).collect()
}

fn reward(index: usize) -> f64 {
    ((index as f64) * 0.7).sin() + 0.1 * index as f64
}

/// `∇_θ E_{π_θ}[r] = π ⊙ (r − E r)` for logits θ.
fn exact_gradient(pi: &[f64]) -> Vec<f64> {
    let mean: f64 = pi.iter().enumerate().map(|(i, p)| p * reward(i)).sum();
    pi.iter()
        .enumerate()
        .map(|(i, p)| p * (reward(i) - mean))
        .collect()
}

/// The estimator's gradient of `J` at `θ = θ_old` over the whole space, each sequence weighted by its
/// probability: advantages `A_x = B·π(x)·(r(x) − E r)` make `(1/B) Σ_x A_x ĝ(x)` the exact expectation.
fn estimator_gradient<G: Graph>(
    graph: &G,
    model: &Tabular<f64, Cpu>,
    estimator: ConcreteScore,
) -> Vec<f64> {
    let pi = model.probabilities();
    let count = pi.len();
    let mean: f64 = pi.iter().enumerate().map(|(i, p)| p * reward(i)).sum();
    let x: Vec<usize> = (0..count).flat_map(|i| model.sequence_of(i)).collect();
    let adv: Vec<f64> = (0..count)
        .map(|i| count as f64 * pi[i] * (reward(i) - mean))
        .collect();
    let old = model.params().snapshot();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let schedule = LogLinear::new(1e-3).unwrap();
    let (loss, stats) = estimator
        .loss(
            &Policy::new(model, &old),
            &Diffusion::new(graph.clone(), schedule),
            Sequences::new(&x, count).unwrap(),
            &crate::loss::PpoObjective::single(&adv, Some(0.2)),
            &mut rng,
        )
        .unwrap();
    assert!(
        (stats.ratio_mean - 1.0).abs() < 1e-9,
        "ratios at θ = θ_old: {}",
        stats.ratio_mean
    );
    assert_eq!(stats.clip_ratio, 0.0);
    // The loss is −J.
    Grads::collect(model.params(), &mut loss.backward())
        .unwrap()
        .flat_f64()
        .into_iter()
        .map(|g| -g)
        .collect()
}

fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    num / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
        * b.iter().map(|y| y * y).sum::<f64>().sqrt())
}

#[test]
fn one_position_space_gives_the_exact_policy_gradient() {
    let dev = Cpu::default();
    let t0 = 1e-10; // uniform graph: the score at t₀ is a noised ratio, off by O(σ̄(t₀)).
    for clean in [CleanScores::Masked, CleanScores::Unmasked] {
        let graph = Absorbing::with_tokens(16).unwrap();
        let model = Tabular::<f64, Cpu>::new(&graph, 1, logits(16, 3), &dev).unwrap();
        for weights in [NeighbourWeights::Enumerate, NeighbourWeights::Conditional] {
            let est = ConcreteScore {
                t0: 0.3,
                weights,
                clean,
            };
            let g = estimator_gradient(&graph, &model, est);
            let err = relative_error(&g, &exact_gradient(&model.probabilities()));
            assert!(
                err < 1e-6,
                "absorbing {clean:?} {weights:?}: relative error {err}"
            );
        }
    }
    let graph = Uniform::new(16).unwrap();
    let model = Tabular::<f64, Cpu>::new(&graph, 1, logits(16, 4), &dev).unwrap();
    for weights in [NeighbourWeights::Enumerate, NeighbourWeights::Conditional] {
        let est = ConcreteScore {
            t0,
            weights,
            clean: CleanScores::Unmasked,
        };
        let g = estimator_gradient(&graph, &model, est);
        let err = relative_error(&g, &exact_gradient(&model.probabilities()));
        assert!(err < 1e-6, "uniform {weights:?}: relative error {err}");
    }
}

/// On 4^4 sequences the neighbour restriction is an approximation; this measures it (numbers reported in
/// docs/sepo.md §6) and pins that each estimator still points uphill.
#[test]
fn neighbour_restriction_bias_on_the_4_pow_4_space() {
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(4).unwrap();
    let model = Tabular::<f64, Cpu>::new(&graph, 4, logits(256, 9), &dev).unwrap();
    let exact = exact_gradient(&model.probabilities());
    let mut report = String::new();
    for weights in [
        NeighbourWeights::Enumerate,
        NeighbourWeights::Conditional,
        NeighbourWeights::Snis { draws: 2 },
    ] {
        let est = ConcreteScore {
            t0: 0.01,
            weights,
            clean: CleanScores::Masked,
        };
        let g = estimator_gradient(&graph, &model, est);
        let (cos, rel) = (cosine(&g, &exact), relative_error(&g, &exact));
        report.push_str(&format!(
            "{weights:?}: cosine {cos:.4}, relative error {rel:.4}\n"
        ));
        assert!(cos > 0.5, "{weights:?} does not point uphill: cosine {cos}");
    }
    eprintln!("{report}");
}

/// `ConcreteScore::grads` splits the batch so that each taped forward stays under `GRAD_TOKENS`: with
/// `Masked` clean scores at `L = 128` every sample is its own chunk (128 masked copies × 128 tokens), and
/// the accumulated gradient must equal the one-shot gradient of `loss` (deterministic: `Masked` and
/// `Conditional` draw nothing), to rounding.
#[test]
fn chunked_gradient_equals_the_one_shot_gradient() {
    use crate::score::mlp::{Activation, Mlp, MlpConfig};
    use crate::score::ScoreHead;
    let dev = Cpu::default();
    let (l, batch) = (128, 3);
    let config = MlpConfig {
        vocab: 5,
        len: l,
        hidden: 8,
        depth: 1,
        sigma_freqs: 2,
        activation: Activation::Gelu,
        head: ScoreHead::Absorbing,
    };
    assert_eq!(GRAD_TOKENS / (l * l), 1, "the test must exercise chunking");
    let mut model = Mlp::<f64, Cpu>::new(config, &dev, 5).unwrap();
    let old = model.params().snapshot();
    let flat: Vec<f64> = model
        .params()
        .flat_f64()
        .iter()
        .zip(logits(old.flat_f64().len(), 6))
        .map(|(w, z)| w + 0.05 * z)
        .collect();
    model.params_mut().set_flat_f64(&flat).unwrap();
    let graph = Absorbing::with_tokens(4).unwrap();
    let schedule = LogLinear::new(1e-3).unwrap();
    let x: Vec<usize> = (0..batch * l).map(|i| (i * 7 + i / 5) % 4).collect();
    let adv = [1.0, -0.5, 0.25];
    let objectives = crate::loss::PpoObjective::single(&adv, Some(0.2));
    let estimator = ConcreteScore::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (loss, one_shot) = estimator
        .loss(
            &Policy::new(&model, &old),
            &Diffusion::new(graph, schedule),
            Sequences::new(&x, batch).unwrap(),
            &objectives,
            &mut rng,
        )
        .unwrap();
    let want = Grads::collect(model.params(), &mut loss.backward())
        .unwrap()
        .flat_f64();
    let (grads, chunked) = estimator
        .grads(
            &Policy::new(&model, &old),
            &Diffusion::new(graph, schedule),
            Sequences::new(&x, batch).unwrap(),
            &objectives,
            &mut rng,
        )
        .unwrap();
    assert!(relative_error(&grads.flat_f64(), &want) < 1e-10);
    assert!((chunked.loss - one_shot.loss).abs() < 1e-10 * one_shot.loss.abs().max(1.0));
    assert!((chunked.clip_ratio - one_shot.clip_ratio).abs() < 1e-12);
    assert!((chunked.ratio_mean - one_shot.ratio_mean).abs() < 1e-10);
    assert!((chunked.weight - one_shot.weight).abs() < 1e-9 * one_shot.weight);
    assert!(
        want.iter().any(|g| g.abs() > 1e-6),
        "a zero gradient tests nothing"
    );
}

/// `log_conditionals` (the SNIS proposal's and the entropy's read) gives the exact clean conditionals
/// `π(v | x_{−l})` of an enumerable model on both graphs: masked reads under the absorbing graph (exact at
/// any `σ̄`), one unmasked forward under the uniform graph (exact as `σ̄ → 0`; `σ̄ = 1e-9` here).
#[test]
fn log_conditionals_are_the_exact_clean_conditionals_on_both_graphs() {
    fn check<G: Graph>(graph: &G, sigma: f64) {
        let (v, l) = (3, 3);
        let n = graph.num_states();
        let model = Tabular::<f64, Cpu>::new(graph, l, logits(27, 8), &Cpu::default()).unwrap();
        let pi = model.probabilities();
        let x = vec![0, 2, 1, 2, 2, 0];
        let reads = all_positions(2, l);
        let lc = log_conditionals(&model, model.params(), graph, &x, 2, &reads, sigma).unwrap();
        let index = |s: &[usize]| s.iter().fold(0, |a, &t| a * v + t);
        let mut entropy = 0.0;
        for (i, &(b, p)) in reads.iter().enumerate() {
            let row = &x[b * l..(b + 1) * l];
            let joint: Vec<f64> = (0..v)
                .map(|t| {
                    let mut y = row.to_vec();
                    y[p] = t;
                    pi[index(&y)]
                })
                .collect();
            let z: f64 = joint.iter().sum();
            for t in 0..v {
                let exact = joint[t] / z;
                approx::assert_relative_eq!(lc[i * n + t].exp(), exact, max_relative = 1e-6);
                entropy -= exact * exact.ln();
            }
            if let Some(m) = graph.mask() {
                assert_eq!(lc[i * n + m], f64::NEG_INFINITY);
            }
        }
        let h = clean_entropy(&model, model.params(), graph, &x, 2, sigma).unwrap();
        approx::assert_relative_eq!(h, entropy / reads.len() as f64, max_relative = 1e-6);
        // Reads outside the batch are typed errors.
        for bad in [(2, 0), (0, l)] {
            assert!(log_conditionals(&model, model.params(), graph, &x, 2, &[bad], sigma).is_err());
        }
    }
    check(&Absorbing::with_tokens(3).unwrap(), 0.3);
    check(&Uniform::new(3).unwrap(), 1e-9);
}
