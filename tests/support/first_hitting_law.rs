//! Exact law of the first-hitting sampler of a σ̄-conditioned score network on a small space (test
//! ground truth, up to quadrature error).
//!
//! With `n` masked positions at level `m(t) = 1 − e^{−σ̄(t)}` the next event is at `m(s) = m(t)·u^{1/n}`,
//! `u ~ U(0, 1)`, its position uniform among the `n` and its token drawn from the normalised conditional
//! `q(y | x, σ̄(s)) = s_y / Σ_{y' real} s_{y'}` (core/src/sample/first_hitting.rs). With `x = −ln u ~ Exp(1)`
//! the level is `ln m(s) = ln m(t) − x/n`, and the network reads `ln σ̄ ≈ ln m` through smooth features,
//! so each event's expectation is an integral `∫_0^∞ e^{−x} f(x) dx` of a smooth bounded `f`: Gauss–Laguerre
//! with `Q` nodes per event, nested over the `L` events. The law of the sequence is the sum over node
//! paths and over the positions and tokens of each event of `Π_k w_{j_k}·(1/n_k)·q(y_k | x_{k−1}, σ̄_k)`.
//! States that differ only in the order in which positions were revealed share their conditionals, so
//! the mass is merged by (partial sequence, node path): event `k` costs `#states_{k−1}·Q^k` rows of
//! forwards (`Q + 16Q² + 96Q³ + 256Q⁴` on 4^4), all batched.

use std::collections::HashMap;

use sepo::dfdx::prelude::*;
use sepo::schedule::NoiseSchedule;
use sepo::score::ScoreModel;

/// Nodes and weights of the `q`-point Gauss–Laguerre rule, `∫_0^∞ e^{−x} f(x) dx ≈ Σ_i w_i f(x_i)`,
/// exact for polynomials of degree `< 2q`. Nodes are the roots of the Laguerre polynomial `L_q`, found
/// by Newton's method from the usual asymptotic first guesses; `w_i = 1/(x_i·L_q'(x_i)²)`.
pub fn gauss_laguerre(q: usize) -> (Vec<f64>, Vec<f64>) {
    // (L_q(x), L_q'(x)) by the three-term recurrence (k+1)L_{k+1} = (2k+1−x)L_k − k·L_{k−1}.
    let eval = |x: f64| {
        let (mut p0, mut p1) = (1.0, 1.0 - x);
        for k in 1..q {
            let p2 =
                ((2 * k + 1) as f64 - x) * p1 / (k + 1) as f64 - k as f64 * p0 / (k + 1) as f64;
            p0 = p1;
            p1 = p2;
        }
        // p1 = L_q, p0 = L_{q−1}; L_q' = q·(L_q − L_{q−1})/x.
        (p1, q as f64 * (p1 - p0) / x)
    };
    let mut nodes: Vec<f64> = Vec::with_capacity(q);
    let mut weights = Vec::with_capacity(q);
    for i in 0..q {
        let mut x = match i {
            0 => 3.0 / (1.0 + 2.4 * q as f64),
            1 => nodes[0] + 15.0 / (1.0 + 2.5 * q as f64),
            _ => {
                let a = (i - 1) as f64;
                nodes[i - 1] + (1.0 + 2.55 * a) / (1.9 * a) * (nodes[i - 1] - nodes[i - 2])
            }
        };
        for _ in 0..100 {
            let (p, dp) = eval(x);
            let dx = p / dp;
            x -= dx;
            if dx.abs() <= 1e-14 * x.abs().max(1.0) {
                break;
            }
        }
        let (_, dp) = eval(x);
        nodes.push(x);
        weights.push(1.0 / (x * dp * dp));
    }
    (nodes, weights)
}

/// Law of the first-hitting sampler's output over the `vocab^len` sequences (index `Σ_l x_l·vocab^{len−1−l}`,
/// position 0 most significant) for `model` on the absorbing graph with mask index `vocab`, starting at
/// `σ̄(1)` of `schedule`, with `q` Gauss–Laguerre nodes per event (module docs). Forwards in f32 batches
/// of `chunk` rows; probabilities accumulated in f64.
pub fn first_hitting_law<M, S>(
    model: &M,
    schedule: &S,
    vocab: usize,
    len: usize,
    q: usize,
) -> Vec<f64>
where
    M: ScoreModel<Elem = f32, Device = Cpu>,
    S: NoiseSchedule,
{
    const CHUNK: usize = 16_384;
    let dev = Cpu::default();
    let mask = vocab;
    let (nodes, weights) = gauss_laguerre(q);
    let log_m0 = (-(-schedule.total(1.0)).exp_m1()).ln();
    // (partial sequence, node path) → (ln m at the last event, mass).
    let mut level: HashMap<(Vec<usize>, usize), (f64, f64)> = HashMap::new();
    level.insert((vec![mask; len], 0), (log_m0, 1.0));
    for event in 0..len {
        let n = len - event;
        let entries: Vec<_> = level.into_iter().collect();
        let mut rows = Vec::with_capacity(entries.len() * q);
        for (e, ((seq, _), (log_m, _))) in entries.iter().enumerate() {
            for (j, x) in nodes.iter().enumerate() {
                let log_m_s = log_m - x / n as f64;
                rows.push((e, j, log_m_s, seq));
            }
        }
        let mut next: HashMap<(Vec<usize>, usize), (f64, f64)> = HashMap::new();
        for chunk in rows.chunks(CHUNK) {
            let tokens: Vec<usize> = chunk.iter().flat_map(|r| r.3.iter().copied()).collect();
            let sigma: Vec<f64> = chunk.iter().map(|r| -(-r.2.exp()).ln_1p()).collect();
            let ids = dev.tensor_from_vec(tokens, (chunk.len(), len));
            let out = model.forward(&ids, &sigma, NoneTape).unwrap().as_vec();
            let states = vocab + 1;
            for (r, &(e, j, log_m_s, seq)) in chunk.iter().enumerate() {
                let ((_, path), (_, mass)) = &entries[e];
                let w = mass * weights[j] / n as f64;
                for p in (0..len).filter(|&p| seq[p] == mask) {
                    let ls = &out[(r * len + p) * states..(r * len + p) * states + vocab];
                    let top = ls.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                    let e: Vec<f64> = ls.iter().map(|&v| (v as f64 - top).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for (y, ey) in e.iter().enumerate() {
                        let mut s = seq.clone();
                        s[p] = y;
                        let slot = next.entry((s, path * q + j)).or_insert((log_m_s, 0.0));
                        slot.1 += w * ey / z;
                    }
                }
            }
        }
        level = next;
    }
    let mut law = vec![0.0; vocab.pow(len as u32)];
    for ((seq, _), (_, mass)) in level {
        law[seq.iter().fold(0, |a, &t| a * vocab + t)] += mass;
    }
    law
}
