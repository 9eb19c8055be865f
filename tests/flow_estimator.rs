//! Gradient-flow SEPO, statistical checks (issue "Gradient-flow SEPO", must-shows 3 and 5): batched
//! uniformised particle steps follow `μ₀Pⁿ`, and the IFT sample estimator is unbiased.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use sepo::flow::exact::{generator, ift_gradient, log_score_table, uniformised};
use sepo::flow::potential::softmax;
use sepo::flow::{
    step, LocallyBalanced, LogPotential, ModelScores, Potts, Space, TabularPotential,
};
use sepo::graph::Absorbing;
use sepo::policy::{ift_estimate, ift_weights, CleanScores, Ift, StateGradient, SurrogateWeights};
use sepo::prelude::*;
use sepo::sample::categorical;

fn normal(n: usize, sd: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let d = Normal::new(0.0, sd).unwrap();
    (0..n).map(|_| d.sample(&mut rng)).collect()
}

/// Must-show 3: 100,000 particles from a known μ₀ on 3^3, moved by `flow::step` through the `Tabular`
/// score model (absorbing graph, `Masked` clean scores: "mask l, one forward, resample"), match the exact
/// `μ₀Pⁿ` after n = 1, 5, 20 steps, for the heat bath and Barker. Pearson's χ² over the 27 cells has 26
/// degrees of freedom; p > 1e-3 ⇔ χ² < 54.05 (the 0.999 quantile of χ²₂₆). Cells are never sparse here
/// (expected counts ≥ 300).
#[test]
fn particle_steps_follow_the_uniformised_kernel() {
    let space = Space::new(3, 3).unwrap();
    let phi = normal(27, 1.0, 1);
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(3).unwrap();
    let model = Tabular::<f64, Cpu>::new(&graph, 3, phi.clone(), &dev).unwrap();
    let mu0 = softmax(&normal(27, 0.7, 2));
    let particles = 100_000;
    for (kind, seed) in [(LocallyBalanced::HeatBath, 3), (LocallyBalanced::Barker, 4)] {
        let q = generator(space, kind, 1.0, &log_score_table(space, &phi)).unwrap();
        let big_lambda = 3.0 * kind.position_bound(3).unwrap();
        let p = uniformised(&q, big_lambda);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut x: Vec<usize> = (0..particles)
            .flat_map(|_| space.sequence(categorical::draw(&mu0, &mut rng)))
            .collect();
        let mut law = mu0.clone();
        let mut scores = ModelScores {
            model: &model,
            params: model.params(),
            graph: &graph,
            sigma0: 1e-5,
            clean: CleanScores::Masked,
            max_batch: 20_000,
            spent: 0,
        };
        for n in 1..=20 {
            step(kind, &mut scores, &mut x, particles, &mut rng).unwrap();
            law = p.left_mul(&law);
            if [1, 5, 20].contains(&n) {
                let mut counts = vec![0.0; 27];
                for s in x.chunks(3) {
                    counts[space.index(s)] += 1.0;
                }
                let chi2: f64 = counts
                    .iter()
                    .zip(&law)
                    .map(|(c, q)| (c - particles as f64 * q).powi(2) / (particles as f64 * q))
                    .sum();
                eprintln!("{kind:?} n={n}: χ² = {chi2:.1} (26 dof)");
                assert!(chi2 < 54.05, "{kind:?} n={n}: χ² = {chi2}");
            }
        }
        assert_eq!(scores.spent, 20 * particles as u64);
    }
}

/// Means and z-scores of the per-batch estimates of every gradient component against the exact one.
fn max_z(estimates: &[Vec<f64>], exact: &[f64]) -> f64 {
    let n = estimates.len() as f64;
    let mut worst = 0.0f64;
    for (i, &e) in exact.iter().enumerate() {
        let mean = estimates.iter().map(|g| g[i]).sum::<f64>() / n;
        let var = estimates.iter().map(|g| (g[i] - mean).powi(2)).sum::<f64>() / (n - 1.0);
        if var == 0.0 {
            assert!((mean - e).abs() < 1e-12);
            continue;
        }
        worst = worst.max(((mean - e) / (var / n).sqrt()).abs());
    }
    worst
}

fn unbiased<P: LogPotential>(model: &P, batch: usize, seed: u64) -> f64 {
    let space = model.space();
    let theta = normal(model.num_params(), 0.6, seed);
    let theta_ref = normal(model.num_params(), 0.6, seed + 1);
    let phi = model.table(&theta);
    let phi_ref = model.table(&theta_ref);
    let pi = softmax(&phi);
    let log_ref: Vec<f64> = softmax(&phi_ref).iter().map(|p| p.ln()).collect();
    let reward = normal(space.size(), 1.0, seed + 2);
    let beta = 0.5;
    let exact = ift_gradient(model, &theta, &pi, &reward, beta, &log_ref);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 3);
    let features: Vec<Vec<f64>> = (0..space.size())
        .map(|x| model.gradient(&theta, x))
        .collect();
    let estimates: Vec<Vec<f64>> = (0..100_000)
        .map(|_| {
            let xs: Vec<usize> = (0..batch)
                .map(|_| categorical::draw(&pi, &mut rng))
                .collect();
            // ρ̂ with log π known only up to a constant: φ_θ − φ_ref, unnormalised.
            let rho: Vec<f64> = xs
                .iter()
                .map(|&x| reward[x] - beta * (phi[x] - phi_ref[x]))
                .collect();
            let h: Vec<f64> = xs.iter().flat_map(|&x| features[x].clone()).collect();
            ift_estimate(&rho, &h).unwrap()
        })
        .collect();
    max_z(&estimates, &exact)
}

/// Must-show 5: over 100,000 independent batches of B = 8 exact draws, the mean of ĝ (Energy state
/// gradients, unnormalised log-ratio in ρ̂) agrees with the exact IFT gradient, every component within
/// |z| < 5 (z from the empirical standard error; with 64 and 256 components, a false alarm at 5σ has
/// probability below 1e-4).
#[test]
fn sample_estimator_is_unbiased() {
    let z = unbiased(&Potts(Space::new(4, 4).unwrap()), 8, 40);
    eprintln!("Potts 4^4: max |z| = {z:.2}");
    assert!(z < 5.0, "{z}");
    let z = unbiased(&TabularPotential(Space::new(4, 4).unwrap()), 8, 50);
    eprintln!("tabular 4^4: max |z| = {z:.2}");
    assert!(z < 5.0, "{z}");
}

/// The dfdx surrogate of `Ift` gives the host estimator's gradient: `Energy` on the `Tabular` model
/// equals `ift_estimate` with one-hot features, and on one position of 8 tokens `Conditional` (the
/// pseudo-likelihood gradient, exact there up to a shared constant) gives the same ĝ. Both to 1e-12.
#[test]
fn surrogate_gradients_match_the_host_estimator() {
    use sepo::dfdx::prelude::Backward;
    use sepo::nn::Grads;
    let dev = Cpu::default();
    let graph = Absorbing::with_tokens(8).unwrap();
    let model = Tabular::<f64, Cpu>::new(&graph, 1, normal(8, 1.0, 60), &dev).unwrap();
    let x = vec![0, 3, 3, 7, 1, 5];
    let rho = vec![0.3, -1.0, 2.0, 0.1, 0.0, 0.7];
    let w = ift_weights(&rho).unwrap();
    let h: Vec<f64> = x
        .iter()
        .flat_map(|&v| (0..8).map(move |i| f64::from(u8::from(i == v))))
        .collect();
    let host = ift_estimate(&rho, &h).unwrap();
    for (sg, clean) in [
        (StateGradient::Energy, CleanScores::Masked),
        (StateGradient::Conditional, CleanScores::Masked),
        (StateGradient::Conditional, CleanScores::Unmasked),
    ] {
        let ift = Ift {
            state_gradient: sg,
            sigma0: 1e-5,
            clean,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let s = ift
            .surrogate(
                &Policy::current(&model),
                &graph,
                Sequences::new(&x, 6).unwrap(),
                SurrogateWeights {
                    particle: &w,
                    frozen: None,
                },
                OwnedTape::default(),
                &mut rng,
            )
            .unwrap();
        let g = Grads::collect(model.params(), &mut s.loss.backward()).unwrap();
        // The loss is −Σ w h, so its gradient is −ĝ.
        for (a, b) in g.flat_f64().iter().zip(&host) {
            assert!((a + b).abs() < 1e-12, "{sg:?} {clean:?}: {a} vs −{b}");
        }
    }
}
