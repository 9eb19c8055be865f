//! Recorded trajectories: consistent, and their per-step log-probabilities recomputed by
//! [`step_log_prob`] equal the recorded ones, with gradients that match finite differences.

use crate::Diffusion;
use crate::Policy;
use dfdx::prelude::*;

use super::*;
use crate::graph::{Absorbing, Uniform};
use crate::nn::gradcheck::{check_gradient, Objective};
use crate::nn::ParamStore;
use crate::schedule::{Geometric, LogLinear};
use crate::Error;

type Model = Dedup<Tabular<f64, Cpu>>;

#[derive(Clone, Copy, Debug)]
enum Sampler {
    Grid(Predictor),
    FirstHitting,
}

fn record<G: Graph, S: NoiseSchedule>(
    model: &Model,
    graph: &G,
    schedule: &S,
    sampler: Sampler,
    batch: usize,
    max_batch: usize,
) -> Samples {
    let cfg = SamplerConfig {
        predictor: match sampler {
            Sampler::Grid(p) => p,
            Sampler::FirstHitting => Predictor::Tweedie,
        },
        steps: 12,
        max_batch,
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let f = match sampler {
        Sampler::Grid(_) => sample,
        Sampler::FirstHitting => first_hitting,
    };
    f(
        &Policy::current(model),
        &Diffusion::new(graph.clone(), schedule.clone()),
        &cfg,
        (batch, LEN),
        None,
        &mut rng,
    )
    .unwrap()
}

/// Sum over a trajectory of the recomputed per-sequence log-probabilities, on one tape.
struct PathLogProb<'a, G> {
    model: &'a Model,
    graph: &'a G,
    trajectory: &'a Trajectory,
}

impl<G: Graph> Objective for PathLogProb<'_, G> {
    fn eval<T: Tape<f64, Cpu>>(
        &self,
        store: &ParamStore<f64, Cpu>,
        tape: T,
    ) -> Tensor<Rank0, f64, Cpu, T> {
        let mut steps = self.trajectory.steps.iter();
        let first = steps.next().unwrap();
        let mut total = step_log_prob(self.model, store, self.graph, first, tape)
            .unwrap()
            .sum::<Rank0, _>();
        for step in steps {
            let (value, tape) = total.split_tape();
            total = step_log_prob(self.model, store, self.graph, step, tape)
                .unwrap()
                .sum::<Rank0, _>()
                + value;
        }
        total
    }
}

fn check<G: Graph, S: NoiseSchedule>(graph: &G, schedule: &S, sampler: Sampler) {
    let model = oracle(graph);
    let batch = 10;
    let whole = record(&model, graph, schedule, sampler, batch, batch);
    let trajectory = whole.trajectory.as_ref().unwrap();
    let expected_steps = match sampler {
        Sampler::Grid(_) => 13,
        Sampler::FirstHitting => LEN,
    };
    assert_eq!(trajectory.steps.len(), expected_steps);
    // The steps chain, start from the limit and end at the samples.
    let limit = graph.sample_limit(1, &mut rand::rngs::StdRng::seed_from_u64(0))[0];
    if graph.mask().is_some() {
        assert!(trajectory.steps[0].before.iter().all(|&x| x == limit));
    }
    for pair in trajectory.steps.windows(2) {
        assert_eq!(pair[0].after, pair[1].before);
        assert_eq!(pair[0].t_next, pair[1].t);
    }
    assert_eq!(trajectory.steps.last().unwrap().after, whole.tokens);

    // Recomputed without a tape: bit-identical to what the sampler recorded (same function, same batch).
    for step in &trajectory.steps {
        let again = step_log_prob(&model, model.params(), graph, step, NoneTape).unwrap();
        assert_eq!(again.as_vec(), step.log_prob, "{sampler:?} {:?}", step.kind);
        assert!(step.log_prob.iter().all(|lp| lp.is_finite() && *lp <= 0.0));
    }
    let path = trajectory.log_prob();
    assert_eq!(path.len(), batch);

    // Recorded in chunks of 3 (merged afterwards) with the same seed: the same samples and, recomputed on
    // the merged steps, the same log-probabilities up to rounding.
    let chunked = record(&model, graph, schedule, sampler, batch, 3);
    let merged = chunked.trajectory.as_ref().unwrap();
    assert_eq!(merged.steps.len(), expected_steps);
    for step in &merged.steps {
        assert_eq!(step.batch, batch);
        let again = step_log_prob(&model, model.params(), graph, step, NoneTape).unwrap();
        for (a, b) in again.as_vec().iter().zip(&step.log_prob) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    // With a tape: the same value, and gradients in the oracle's logits that match central differences
    // (finite everywhere, although many transition probabilities are exactly 0).
    let objective = PathLogProb {
        model: &model,
        graph,
        trajectory,
    };
    let taped = objective.eval(model.params(), OwnedTape::default()).array();
    let total: f64 = path.iter().sum();
    assert!((taped - total).abs() < 1e-12, "{taped} vs {total}");
    let mut store = model.params().clone();
    // h = 1e-3: the uniform Tweedie step's staggered score `e^{Δ}s_y + (1 − e^{Δ})/N·Σs` cancels ~5 digits
    // at the first step of a 12-step grid (Δσ̄ ≈ 13), so smaller h is dominated by rounding (error ∝ 1/h:
    // 1e-5 at h = 1e-4, 1e-3 at h = 1e-6), while the truncation error at h = 1e-3 is ~1e-6.
    let worst = check_gradient(&mut store, &objective, 1e-3);
    assert!(
        worst < 1e-5,
        "{sampler:?}: worst relative gradient error {worst}"
    );
}

#[test]
fn recorded_log_probs_are_recomputed_exactly_absorbing() {
    let graph = Absorbing::with_tokens(TOKENS).unwrap();
    for sampler in [
        Sampler::Grid(Predictor::Euler),
        Sampler::Grid(Predictor::Tweedie),
        Sampler::FirstHitting,
    ] {
        check(&graph, &LogLinear::default(), sampler);
    }
}

#[test]
fn recorded_log_probs_are_recomputed_exactly_uniform() {
    let graph = Uniform::new(TOKENS).unwrap();
    for predictor in [Predictor::Euler, Predictor::Tweedie] {
        check(&graph, &Geometric::default(), Sampler::Grid(predictor));
    }
}

#[test]
fn step_rows_recompute_to_the_same_rows_and_bad_steps_are_refused() {
    let graph = Absorbing::with_tokens(TOKENS).unwrap();
    let model = oracle(&graph);
    let out = record(
        &model,
        &graph,
        &LogLinear::default(),
        Sampler::Grid(Predictor::Tweedie),
        8,
        8,
    );
    let step = &out.trajectory.as_ref().unwrap().steps[6];
    let part = step.rows(2..5);
    assert_eq!(part.batch, 3);
    assert_eq!(part.log_prob, step.log_prob[2..5]);
    let again = step_log_prob(&model, model.params(), &graph, &part, NoneTape).unwrap();
    for (a, b) in again.as_vec().iter().zip(&part.log_prob) {
        assert!((a - b).abs() < 1e-12);
    }

    let mut bad = step.clone();
    bad.after[3] = 9;
    assert!(matches!(
        step_log_prob(&model, model.params(), &graph, &bad, NoneTape),
        Err(Error::TokenOutOfVocab { token: 9, .. })
    ));
    let mut bad = step.clone();
    bad.sigma_bar.pop();
    assert!(matches!(
        step_log_prob(&model, model.params(), &graph, &bad, NoneTape),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut bad = step.clone();
    bad.t[0] = f64::NAN;
    assert!(matches!(
        step_log_prob(&model, model.params(), &graph, &bad, NoneTape),
        Err(Error::NonFinite { .. })
    ));
}

/// Draws of separate calls with paths of different lengths (a 2-token prompt: 2 events; no prompt:
/// 4) stack into one batch whose shorter paths are padded with idle steps, and a reordered selection
/// of its rows recomputes to the recorded log-probabilities (to 1e-9: the same f64 arithmetic).
#[test]
fn stacked_first_hitting_paths_of_different_lengths_recompute_exactly() {
    let graph = Absorbing::new(TOKENS + 1).unwrap();
    let model = oracle(&graph);
    let cfg = SamplerConfig {
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let prompt = Condition::prefix(&[1, 2], LEN);
    let mut parts = Vec::new();
    for (cond, batch) in [(Some(&prompt), 3), (None, 2)] {
        let s = first_hitting(
            &Policy::current(&model),
            &Diffusion::new(graph, LogLinear::default()),
            &cfg,
            (batch, LEN),
            cond,
            &mut rng,
        )
        .unwrap();
        let held = match cond {
            Some(c) => c.resolve(&graph, batch, LEN).unwrap(),
            None => vec![None; batch * LEN],
        };
        parts.push((s, held.iter().map(Option::is_some).collect()));
    }
    assert_eq!(parts[0].0.trajectory.as_ref().unwrap().steps.len(), 2);
    assert_eq!(parts[1].0.trajectory.as_ref().unwrap().steps.len(), 4);
    let recorded: Vec<f64> = parts
        .iter()
        .flat_map(|p| p.0.trajectory.as_ref().unwrap().log_prob())
        .collect();
    let stacked = Samples::stack(parts).unwrap();
    let rows = [4, 0, 3, 1, 2];
    let picked = stacked.select(&rows);
    let t = picked.trajectory.as_ref().unwrap();
    assert_eq!(t.steps.len(), 4);
    assert_eq!(&picked.tokens[..LEN], &stacked.tokens[4 * LEN..5 * LEN]);
    let recomputed = crate::policy::path_log_prob(&model, model.params(), &graph, t).unwrap();
    for (k, &r) in rows.iter().enumerate() {
        assert!((recomputed[k] - recorded[r]).abs() < 1e-9, "row {r}");
        assert!((t.log_prob()[k] - recorded[r]).abs() < 1e-12, "row {r}");
    }
}
