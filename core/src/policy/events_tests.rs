//! The `Events` estimator against the path log-probability it replaces: the identity
//! `log P_θ(path) − Σ_events log c_θ = const(θ)` per sampler, the gradient it implies, the per-event PPO
//! surrogate's gradient against finite differences of its value, and the typed errors.

use crate::Diffusion;
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::*;
use crate::graph::{Absorbing, Uniform};
use crate::loss::PpoObjective;
use crate::policy::{path_log_prob, trajectory_ppo_grads};
use crate::sample::{first_hitting, sample, Condition, Predictor, SamplerConfig};
use crate::schedule::LogLinear;
use crate::score::{Mlp, MlpConfig, ScoreHead};

const L: usize = 6;
const B: usize = 6;

fn mlp(head: ScoreHead, seed: u64) -> Mlp<f64, Cpu> {
    let config = MlpConfig {
        hidden: 32,
        ..MlpConfig::tiny(5, L, head)
    };
    Mlp::new(config, &Cpu::default(), seed).unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Euler,
    Tweedie,
    FirstHitting,
}

const KINDS: [Kind; 3] = [Kind::Euler, Kind::Tweedie, Kind::FirstHitting];

fn path<G: crate::graph::Graph>(
    model: &Mlp<f64, Cpu>,
    graph: &G,
    kind: Kind,
    condition: Option<&Condition>,
    seed: u64,
) -> Trajectory {
    let cfg = SamplerConfig {
        steps: 8,
        record_trajectory: true,
        predictor: match kind {
            Kind::Euler => Predictor::Euler,
            _ => Predictor::Tweedie,
        },
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = LogLinear::default();
    let (m, p) = (model, model.params());
    let out = match kind {
        Kind::FirstHitting => first_hitting(
            &Policy::new(m, p),
            &Diffusion::new(graph.clone(), s),
            &cfg,
            (B, L),
            condition,
            &mut rng,
        ),
        _ => sample(
            &Policy::new(m, p),
            &Diffusion::new(graph.clone(), s),
            &cfg,
            (B, L),
            condition,
            &mut rng,
        ),
    };
    out.unwrap().trajectory.unwrap()
}

fn advantages() -> Vec<f64> {
    (0..B).map(|b| (b as f64 * 1.3).sin() + 0.2).collect()
}

/// The claim the estimator rests on, checked on values: with a normalised head, the part of the path
/// log-probability that is not an unmasking event's conditional (stay-masked probabilities, the
/// first-hitting position choice) is the same under two unrelated parameter sets, for every sampler and
/// with a prompt held fixed, while the path log-probabilities themselves differ.
#[test]
fn path_minus_event_log_probability_does_not_depend_on_the_parameters() {
    let graph = Absorbing::with_tokens(4).unwrap();
    let model = mlp(ScoreHead::Absorbing, 1);
    let other = perturbed(&model, 0.5, 2);
    let prompt = Condition::prefix(&[2, 1], L);
    for kind in KINDS {
        for condition in [None, Some(&prompt)] {
            let t = path(&model, &graph, kind, condition, 7);
            let mut rest = Vec::new();
            let mut paths = Vec::new();
            for params in [model.params(), other.params()] {
                let p = path_log_prob(&model, params, &graph, &t).unwrap();
                let e = events_log_prob(&model, params, &graph, &t).unwrap();
                rest.push(p.iter().zip(&e).map(|(a, b)| a - b).collect::<Vec<_>>());
                paths.push(p);
            }
            for (b, (r0, r1)) in rest[0].iter().zip(&rest[1]).enumerate() {
                assert!(
                    (r0 - r1).abs() < 1e-9,
                    "{kind:?} {condition:?} row {b}: {r0} vs {r1}"
                );
            }
            let moved = (0..B)
                .map(|b| (paths[0][b] - paths[1][b]).abs())
                .fold(0.0, f64::max);
            assert!(
                moved > 0.1,
                "{kind:?}: the parameters barely differ ({moved})"
            );
        }
    }
}

/// `model` with every weight moved by `scale·N(0, 1)`.
fn perturbed(model: &Mlp<f64, Cpu>, scale: f64, seed: u64) -> Mlp<f64, Cpu> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let moved: Vec<f64> = model
        .params()
        .flat_f64()
        .iter()
        .map(|w| {
            let z: f64 = StandardNormal.sample(&mut rng);
            w + scale * z
        })
        .collect();
    let mut out = model.clone();
    out.params_mut().set_flat_f64(&moved).unwrap();
    out
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// At `θ = θ_old`, with every event read (`positions ≥ L`), the per-event surrogate's gradient is the
/// whole-path one computed by `trajectory_ppo_grads` through the samplers' own step probabilities.
#[test]
fn all_events_give_the_trajectory_gradient_at_the_old_policy() {
    let graph = Absorbing::with_tokens(4).unwrap();
    let model = mlp(ScoreHead::Absorbing, 3);
    let old = model.params().snapshot();
    let adv = advantages();
    let objectives = PpoObjective::single(&adv, Some(0.2));
    for kind in KINDS {
        let t = path(&model, &graph, kind, None, 11);
        let (want, _) = trajectory_ppo_grads(&model, &graph, &t, &objectives).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let (got, stats) = events_ppo_grads(
            &Policy::new(&model, &old),
            &graph,
            &t,
            L,
            &objectives,
            &mut rng,
        )
        .unwrap();
        let (want, got) = (want.flat_f64(), got.flat_f64());
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(scale > 1e-4, "{kind:?}: a zero gradient proves nothing");
        let err = max_abs_diff(&want, &got);
        assert!(
            err <= 1e-9 * scale,
            "{kind:?}: max error {err} (scale {scale})"
        );
        assert_eq!((stats.clip_ratio, stats.ratio_mean), (0.0, 1.0));
    }
}

/// A head that is not normalised (the uniform-graph head on an absorbing graph) makes Tweedie's and
/// Euler's stay probabilities depend on θ: refused with a typed error there. First-hitting draws from
/// `s_v/Σ s` and needs no normalisation: the identity still holds.
#[test]
fn an_unnormalised_head_is_refused_under_grid_samplers_only() {
    let graph = Absorbing::with_tokens(4).unwrap();
    let model = mlp(ScoreHead::Uniform, 4);
    let old = model.params().snapshot();
    let adv = advantages();
    let objectives = PpoObjective::single(&adv, Some(0.2));
    for kind in [Kind::Euler, Kind::Tweedie] {
        let t = path(&model, &graph, kind, None, 5);
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let got = events_ppo_grads(
            &Policy::new(&model, &old),
            &graph,
            &t,
            2,
            &objectives,
            &mut rng,
        );
        assert!(
            matches!(
                got,
                Err(Error::InvalidParameter {
                    name: "log_prob",
                    ..
                })
            ),
            "{kind:?}: {got:?}"
        );
    }
    let t = path(&model, &graph, Kind::FirstHitting, None, 5);
    let (want, _) = trajectory_ppo_grads(&model, &graph, &t, &objectives).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let (got, _) = events_ppo_grads(
        &Policy::new(&model, &old),
        &graph,
        &t,
        L,
        &objectives,
        &mut rng,
    )
    .unwrap();
    let (want, got) = (want.flat_f64(), got.flat_f64());
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(max_abs_diff(&want, &got) <= 1e-9 * scale);
}

/// `−J(θ) = −(1/B) Σ_b Σ_e min(ρ_e A_b, clip(ρ_e) A_b)` computed on the host from the events' log
/// conditionals (no coefficients, no tape).
fn surrogate_value(
    model: &Mlp<f64, Cpu>,
    old: &ParamStore<f64, Cpu>,
    t: &Trajectory,
    adv: &[f64],
    eps: f64,
) -> f64 {
    let graph = Absorbing::with_tokens(4).unwrap();
    let events = unmasking_events(&graph, t).unwrap();
    let rows: Vec<(usize, Event)> = events
        .iter()
        .enumerate()
        .flat_map(|(b, ev)| ev.iter().map(move |&e| (b, e)))
        .collect();
    let now = event_log_conditionals(model, model.params(), &graph, t, &rows, NoneTape)
        .unwrap()
        .as_vec();
    let then = event_log_conditionals(model, old, &graph, t, &rows, NoneTape)
        .unwrap()
        .as_vec();
    let mut j = 0.0;
    for (i, &(b, _)) in rows.iter().enumerate() {
        let rho = (now[i] - then[i]).exp();
        j += (rho * adv[b]).min(rho.clamp(1.0 - eps, 1.0 + eps) * adv[b]);
    }
    -j / B as f64
}

/// Away from `θ_old`, where some events are clipped and others not, the gradient is the derivative of
/// the per-event surrogate's value (central differences along two random directions).
#[test]
fn the_per_event_surrogate_gradient_matches_finite_differences() {
    let graph = Absorbing::with_tokens(4).unwrap();
    let mut model = mlp(ScoreHead::Absorbing, 6);
    let t = path(&model, &graph, Kind::Tweedie, None, 13);
    let old = model.params().snapshot();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    model = perturbed(&model, 0.15, 22);
    let theta0 = model.params().flat_f64();
    let adv = advantages();
    let eps = 0.2;
    let objectives = PpoObjective::single(&adv, Some(eps));
    let (g, stats) = events_ppo_grads(
        &Policy::new(&model, &old),
        &graph,
        &t,
        L,
        &objectives,
        &mut rng,
    )
    .unwrap();
    assert!(
        stats.clip_ratio > 0.05 && stats.clip_ratio < 0.95,
        "both branches must be exercised: clip ratio {}",
        stats.clip_ratio
    );
    let value = surrogate_value(&model, &old, &t, &adv, eps);
    assert!(
        (value - stats.loss).abs() < 1e-12,
        "{value} vs {}",
        stats.loss
    );
    let g = g.flat_f64();
    let h = 1e-6;
    for _ in 0..2 {
        let d: Vec<f64> = (0..g.len())
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let mut at = |s: f64| {
            let p: Vec<f64> = theta0.iter().zip(&d).map(|(w, di)| w + s * di).collect();
            model.params_mut().set_flat_f64(&p).unwrap();
            surrogate_value(&model, &old, &t, &adv, eps)
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let analytic: f64 = g.iter().zip(&d).map(|(a, b)| a * b).sum();
        assert!(
            (fd - analytic).abs() <= 1e-6 * analytic.abs().max(1e-3),
            "finite difference {fd} vs gradient {analytic}"
        );
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let graph = Absorbing::with_tokens(4).unwrap();
    let model = mlp(ScoreHead::Absorbing, 8);
    let old = model.params().snapshot();
    let adv = advantages();
    let objectives = PpoObjective::single(&adv, None);
    let t = path(&model, &graph, Kind::Tweedie, None, 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let zero = events_ppo_grads(
        &Policy::new(&model, &old),
        &graph,
        &t,
        0,
        &objectives,
        &mut rng,
    );
    assert!(matches!(zero, Err(Error::InvalidParameter { .. })));
    let short = PpoObjective::single(&adv[..2], None);
    let bad = events_ppo_grads(&Policy::new(&model, &old), &graph, &t, 2, &short, &mut rng);
    assert!(matches!(bad, Err(Error::ShapeMismatch { .. })));
    assert!(matches!(
        unmasking_events(&graph, &Trajectory::default()),
        Err(Error::Empty { .. })
    ));
    // A clean token that moves is not an absorbing reverse path.
    let mut tampered = t.clone();
    let last = tampered.steps.last_mut().unwrap();
    let i = (0..B * L).find(|&i| last.before[i] != 4).unwrap();
    last.after[i] = (last.before[i] + 1) % 4;
    assert!(matches!(
        unmasking_events(&graph, &tampered),
        Err(Error::InvalidParameter { .. })
    ));
    // Under the uniform graph there are no unmasking events.
    let uniform = Uniform::new(5).unwrap();
    let u = mlp(ScoreHead::Uniform, 8);
    let tu = path(&u, &uniform, Kind::Tweedie, None, 3);
    assert!(matches!(
        unmasking_events(&uniform, &tu),
        Err(Error::InvalidParameter { .. })
    ));
}
