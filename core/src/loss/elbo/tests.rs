use dfdx::prelude::*;
use rand_distr::{Distribution, StandardNormal};

use super::*;
use crate::graph::{Absorbing, Uniform};
use crate::schedule::LogLinear;
use crate::score::Tabular;

/// Every noised sequence `y ∈ [states]^L`, lexicographic.
fn all_states(states: usize, len: usize) -> Vec<Vec<usize>> {
    (0..states.pow(len as u32))
        .map(|mut i| {
            let mut y = vec![0; len];
            for slot in y.iter_mut().rev() {
                *slot = i % states;
                i /= states;
            }
            y
        })
        .collect()
}

/// The estimate of `L(x₀)` for the exact score of a tabular `π` against the closed form
/// `−log π(x₀) − KL(p_{1|0}(·|x₀) ‖ p₁)`, both sides by enumeration of the `(V+1)^L` noised states.
///
/// Tolerance: the estimator is unbiased for `∫_{t_min}^1`, so it differs from the truth by Monte Carlo
/// noise (≤ 4 of its own standard errors, which overstate a stratified sample's spread) plus the left-out
/// `∫_0^{t_min}`. On `(0, t_min)` the clean `x₀` survives with probability ≥ `e^{−σ̄(t_min)} ≈ 1`; its
/// integrand is `σ(t) Σ_l s_θ(x₀)_{l,mask}`-like, `≤ σ(0)·L·σ̄(t_min)/min π` for absorbing (and the
/// analogous `L·(N−1)·σ̄/(N·min π)` for uniform), so the omission is below `t_min·L·N·σ̄(t_min)/min π`,
/// which the test adds.
fn check_identity<G: Graph>(graph: G, seed: u64) {
    let len = 3;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let count = graph.num_tokens().pow(len as u32);
    let logits: Vec<f64> = (0..count)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let model = Tabular::<f64, Cpu>::new(&graph, len, logits, &Cpu::default()).unwrap();
    let schedule = LogLinear::default();
    let pi = model.probabilities();
    let data: Vec<Vec<usize>> = (0..count).map(|i| model.sequence_of(i)).collect();
    let config = ElboConfig {
        draws: 2048,
        ..ElboConfig::default()
    };
    let est = elbo(&model, &graph, &schedule, &data, &config).unwrap();
    let s1 = schedule.total(1.0);
    let noised = all_states(graph.num_states(), len);
    let p1: Vec<f64> = noised
        .iter()
        .map(|y| model.noised_probability(y, s1))
        .collect();
    let min_pi = pi.iter().cloned().fold(f64::INFINITY, f64::min);
    let omitted =
        config.t_min * (len * graph.num_states()) as f64 * schedule.total(config.t_min) / min_pi;
    for (i, x0) in data.iter().enumerate() {
        let kl: f64 = noised
            .iter()
            .zip(&p1)
            .map(|(y, &q)| {
                let p: f64 = x0
                    .iter()
                    .zip(y)
                    .map(|(&a, &b)| graph.transition(a, b, s1))
                    .product();
                if p > 0.0 {
                    p * (p / q).ln()
                } else {
                    0.0
                }
            })
            .sum();
        let exact = -pi[i].ln() - kl;
        let gap = (est.per_sequence[i] - exact).abs();
        let tol = 4.0 * est.per_sequence_se[i] + omitted;
        assert!(
            gap <= tol,
            "{graph:?} x0 = {x0:?}: estimate {:.4} ± {:.4}, exact {exact:.4} (−log π {:.4}, KL {kl:.4})",
            est.per_sequence[i],
            est.per_sequence_se[i],
            -pi[i].ln()
        );
        eprintln!(
            "{graph:?} {x0:?}: {:.4} ± {:.4} vs {exact:.4} (−log π {:.4})",
            est.per_sequence[i],
            est.per_sequence_se[i],
            -pi[i].ln()
        );
    }
    // The full bound (DWDSE + prior) against the NLL, on average over x₀ ~ π: by the chain rule of KL,
    // E_π[L + KL(p_{1|0} ‖ π_base)] = H(π) + KL(p₁ ‖ π_base) ≥ H(π). For the uniform graph the prior
    // term is the same at every position (symmetry), so the per-sequence prior is L·prior_per_token.
    if est.prior_per_token.is_finite() {
        let bound: f64 = pi
            .iter()
            .zip(&est.per_sequence)
            .map(|(p, l)| p * (l + len as f64 * est.prior_per_token))
            .sum();
        let entropy: f64 = pi.iter().map(|p| -p * p.ln()).sum();
        let se = pi
            .iter()
            .zip(&est.per_sequence_se)
            .map(|(p, s)| (p * s).powi(2))
            .sum::<f64>()
            .sqrt();
        let kl_base: f64 = p1.iter().map(|&q| q * (q * p1.len() as f64).ln()).sum();
        eprintln!("E_π bound {bound:.4} ± {se:.4}, H(π) {entropy:.4}, KL(p₁ ‖ base) {kl_base:.2e}");
        assert!(bound >= entropy - 4.0 * se);
        assert!((bound - entropy - kl_base).abs() <= 4.0 * se + omitted);
    }
    assert_eq!(est.tokens, count * len);
    let mean: f64 = est.per_sequence.iter().sum::<f64>() / est.tokens as f64;
    assert!((est.nats_per_token - mean).abs() < 1e-12);
    assert!((est.perplexity() - mean.exp()).abs() < 1e-9);
}

#[test]
fn exact_score_bound_equals_nll_minus_the_information_left_at_t_one() {
    check_identity(Absorbing::with_tokens(2).unwrap(), 1);
    check_identity(Uniform::new(3).unwrap(), 2);
}

#[test]
fn prior_term_is_the_closed_form_kl_to_the_limit_law() {
    let schedule = LogLinear::default();
    let s1 = schedule.total(1.0);
    let data = vec![vec![0, 1, 2], vec![2, 2, 0]];
    // Uniform over N = 3: p(x|x) = (1 − e^{−σ̄})/3 + e^{−σ̄}, p(y|x) = (1 − e^{−σ̄})/3 otherwise.
    let g = Uniform::new(3).unwrap();
    let model = Tabular::<f64, Cpu>::new(&g, 3, vec![0.0; 27], &Cpu::default()).unwrap();
    let cfg = ElboConfig {
        draws: 4,
        ..ElboConfig::default()
    };
    let est = elbo(&model, &g, &schedule, &data, &cfg).unwrap();
    let e = (-s1).exp();
    let (stay, other) = ((1.0 - e) / 3.0 + e, (1.0 - e) / 3.0);
    let kl = stay * (3.0 * stay).ln() + 2.0 * other * (3.0 * other).ln();
    assert!(
        (est.prior_per_token - kl).abs() < 1e-12,
        "{} vs {kl}",
        est.prior_per_token
    );
    assert!((est.bound_per_token() - est.nats_per_token - kl).abs() < 1e-12);
    // Absorbing: the limit law is the mask alone, which p_{1|0} does not reach at finite σ̄(1).
    let g = Absorbing::with_tokens(3).unwrap();
    let model = Tabular::<f64, Cpu>::new(&g, 3, vec![0.0; 27], &Cpu::default()).unwrap();
    let est = elbo(&model, &g, &schedule, &data, &cfg).unwrap();
    assert_eq!(est.prior_per_token, f64::INFINITY);
    assert!(est.nats_per_token.is_finite());
}

#[test]
fn bad_input_is_a_typed_error() {
    let g = Absorbing::with_tokens(2).unwrap();
    let model = Tabular::<f64, Cpu>::new(&g, 2, vec![0.0; 4], &Cpu::default()).unwrap();
    let s = LogLinear::default();
    let ok = ElboConfig::default();
    assert!(matches!(
        elbo(&model, &g, &s, &[], &ok),
        Err(Error::Empty { .. })
    ));
    // The mask is not a clean token.
    assert!(matches!(
        elbo(&model, &g, &s, &[vec![0, 2]], &ok),
        Err(Error::TokenOutOfVocab { .. })
    ));
    for bad in [
        ElboConfig { draws: 0, ..ok },
        ElboConfig { t_min: 0.0, ..ok },
        ElboConfig { t_min: 1.0, ..ok },
    ] {
        assert!(matches!(
            elbo(&model, &g, &s, &[vec![0, 1]], &bad),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
