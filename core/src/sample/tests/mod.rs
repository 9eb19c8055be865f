//! Sampler tests against the exact oracle on a 4^4 = 256-sequence space.

mod behaviour;
mod cache;
mod dedup;
mod exactness;
mod factorised;
mod trajectory;
mod validation;

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use super::*;
use crate::schedule::NoiseSchedule;
pub(crate) use crate::score::Tabular;
pub(crate) use dedup::Dedup;

pub(crate) const TOKENS: usize = 4;
pub(crate) const LEN: usize = 4;

/// The target: logits `1.5·z` (`z ~ N(0, 1)`, StdRng seed 7) plus structure coupling the positions
/// (`+1` if `x_0 = x_3`, `+0.5` if `x_1 < x_2`), so that factorised steps have something to get wrong.
pub(crate) fn target_logits() -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    (0..TOKENS.pow(LEN as u32))
        .map(|c| {
            let d = digits(c);
            let z: f64 = StandardNormal.sample(&mut rng);
            1.5 * z + f64::from(u8::from(d[0] == d[3])) + 0.5 * f64::from(u8::from(d[1] < d[2]))
        })
        .collect()
}

pub(crate) fn digits(mut c: usize) -> [usize; LEN] {
    let mut d = [0; LEN];
    for slot in d.iter_mut().rev() {
        *slot = c % TOKENS;
        c /= TOKENS;
    }
    d
}

/// The exact oracle for the target, behind [`Dedup`] (scores unchanged, computed once per distinct row).
pub(crate) fn oracle<G: Graph>(graph: &G) -> Dedup<Tabular<f64, Cpu>> {
    Dedup(Tabular::new(graph, LEN, target_logits(), &Cpu::default()).unwrap())
}

/// Empirical distribution over the 256 clean sequences; panics on a sample containing a non-clean token.
pub(crate) fn histogram(samples: &Samples) -> Vec<f64> {
    let mut h = vec![0.0; TOKENS.pow(LEN as u32)];
    for s in samples.sequences() {
        assert!(s.iter().all(|&t| t < TOKENS), "non-clean sample {s:?}");
        h[s.iter().fold(0, |acc, &t| acc * TOKENS + t)] += 1.0;
    }
    let n = samples.batch as f64;
    h.iter().map(|c| c / n).collect()
}

pub(crate) fn tv(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Expected TV between `p` and the empirical law of `n` draws from it, by the normal approximation
/// `E|p̂_x − p_x| ≈ sqrt(2 p_x (1 − p_x)/(π n))`: `E[TV] ≈ Σ_x sqrt(p_x (1 − p_x)/(2π n))`. Its standard
/// deviation is `≈ sqrt((1 − 2/π)/(4n))` (sum of independent-ish `Var|p̂_x − p_x| = (1 − 2/π) p_x/n`).
pub(crate) fn tv_noise(p: &[f64], n: usize) -> (f64, f64) {
    let n = n as f64;
    let mean = p
        .iter()
        .map(|&x| (x * (1.0 - x) / (2.0 * std::f64::consts::PI * n)).sqrt())
        .sum();
    let sd = ((1.0 - 2.0 / std::f64::consts::PI) / (4.0 * n)).sqrt();
    (mean, sd)
}

/// Expected TV between `p` and the empirical law of `n` draws from `q` (a sampler's exact, biased law),
/// by the normal approximation per cell: `p̂_x − p_x ~ N(μ, s²)` with `μ = q_x − p_x`,
/// `s² = q_x(1 − q_x)/n`, and `E|N(μ, s²)| = s·sqrt(2/π)·exp(−μ²/2s²) + μ·erf(μ/(s√2))`.
/// For `q = p` this is [`tv_noise`]'s mean.
pub(crate) fn expected_tv(p: &[f64], q: &[f64], n: usize) -> f64 {
    let n = n as f64;
    0.5 * p
        .iter()
        .zip(q)
        .map(|(&p, &q)| {
            let mu = q - p;
            let s = (q * (1.0 - q) / n).sqrt();
            if s == 0.0 {
                return mu.abs();
            }
            s * (2.0 / std::f64::consts::PI).sqrt() * (-mu * mu / (2.0 * s * s)).exp()
                + mu * erf(mu / (s * std::f64::consts::SQRT_2))
        })
        .sum::<f64>()
}

/// `erf` by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// Exact law of the grid sampler's output, propagated through its own step kernels (the same
/// `step_probs` it draws from) over all `N^L` states: `μ'(x') = Σ_x μ(x) Π_l P_x[l, x'_l]`.
/// Returns the law restricted to clean sequences (lexicographic), and the mass left on non-clean ones.
pub(crate) fn exact_grid_law<G: Graph, S: NoiseSchedule>(
    model: &Dedup<Tabular<f64, Cpu>>,
    graph: &G,
    schedule: &S,
    cfg: &SamplerConfig,
) -> (Vec<f64>, f64) {
    let n = graph.num_states();
    let count = n.pow(LEN as u32);
    let states: Vec<usize> = (0..count)
        .flat_map(|c| {
            let mut d = [0; LEN];
            let mut c = c;
            for slot in d.iter_mut().rev() {
                *slot = c % n;
                c /= n;
            }
            d
        })
        .collect();
    let limit = graph.limit_distribution();
    let mut mu: Vec<f64> = (0..count)
        .map(|c| {
            states[c * LEN..(c + 1) * LEN]
                .iter()
                .map(|&t| limit[t])
                .product()
        })
        .collect();
    let times = cfg.grid();
    for k in 0..=cfg.steps {
        let (kind, t, t_next, s, s_next) = if k < cfg.steps {
            let kind = match cfg.predictor {
                Predictor::Euler => StepKind::Euler,
                Predictor::Tweedie => StepKind::Tweedie,
            };
            let (t, tn) = (times[k], times[k + 1]);
            (kind, t, tn, schedule.total(t), schedule.total(tn))
        } else {
            (
                StepKind::Denoise,
                times[k],
                0.0,
                schedule.total(times[k]),
                0.0,
            )
        };
        let step = Step {
            kind,
            batch: count,
            seq_len: LEN,
            t: vec![t; count],
            t_next: vec![t_next; count],
            sigma_bar: vec![s; count],
            sigma_bar_next: vec![s_next; count],
            rate: vec![schedule.rate(t); count],
            before: states.clone(),
            after: states.clone(),
            fixed: vec![false; count * LEN],
            position: Vec::new(),
            log_prob: Vec::new(),
        };
        let p = step_probs(model, model.params(), graph, &step, NoneTape)
            .unwrap()
            .as_vec();
        let mut next = vec![0.0; count];
        let mut outer = Vec::with_capacity(count);
        for (x, &m) in mu.iter().enumerate() {
            if m == 0.0 {
                continue;
            }
            outer.clear();
            outer.push(m);
            for l in 0..LEN {
                let row = &p[(x * LEN + l) * n..(x * LEN + l + 1) * n];
                outer = outer
                    .iter()
                    .flat_map(|&a| row.iter().map(move |&r| a * r))
                    .collect();
            }
            for (o, v) in next.iter_mut().zip(&outer) {
                *o += v;
            }
        }
        mu = next;
    }
    let mut clean = vec![0.0; TOKENS.pow(LEN as u32)];
    let mut rest = 0.0;
    for (c, &m) in mu.iter().enumerate() {
        let s = &states[c * LEN..(c + 1) * LEN];
        if s.iter().all(|&t| t < TOKENS) {
            clean[s.iter().fold(0, |acc, &t| acc * TOKENS + t)] += m;
        } else {
            rest += m;
        }
    }
    (clean, rest)
}
