//! Neighbour weights `π_θ(y)` for the Hamming-1 neighbours `y = x^{l←v}` of a clean sample
//! (docs/sepo.md §3).

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::ParamStore;
use crate::score::{log_scores_chunked, ScoreModel};

/// How the weights `π_θ(y)` of the neighbours are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum NeighbourWeights {
    /// `c_l(v) = s_{l,v}/Σ_{v'} s_{l,v'}`: the model's conditional; no extra forward. Makes SEPO the
    /// pseudo-likelihood policy gradient.
    #[default]
    Conditional,
    /// The reference implementation's self-normalised importance sampling with `draws` samples per
    /// neighbour (`B·L·N·(1 + draws)` extra forwards).
    Snis {
        /// Draws `M` per neighbour.
        draws: usize,
    },
    /// Exact `π_θ(y)` for models that can enumerate their distribution.
    Enumerate,
}

/// `log c_l(v)`: the log-softmax of clean log-scores over the real tokens at each position, `[B·L·N]`
/// (−∞ on the mask column).
pub fn conditional_log_weights(log_scores: &[f64], n: usize, mask: Option<usize>) -> Vec<f64> {
    let mut out = vec![f64::NEG_INFINITY; log_scores.len()];
    for (row, dst) in log_scores.chunks(n).zip(out.chunks_mut(n)) {
        let real = |v: &usize| Some(*v) != mask;
        let max = (0..n)
            .filter(real)
            .map(|v| row[v])
            .fold(f64::NEG_INFINITY, f64::max);
        let lse = max
            + (0..n)
                .filter(real)
                .map(|v| (row[v] - max).exp())
                .sum::<f64>()
                .ln();
        for v in (0..n).filter(real) {
            dst[v] = row[v] - lse;
        }
    }
    out
}

/// `log π̂(y)` for every neighbour slot `[B·L·N]` under `params` (−∞ at `v = x_l` and the mask column).
#[allow(clippy::too_many_arguments)]
pub fn neighbour_log_weights<E, D, M, G, R>(
    kind: NeighbourWeights,
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    x: &[usize],
    batch: usize,
    sigma0: f64,
    clean_log_scores: &[f64],
    rng: &mut R,
) -> Result<Vec<f64>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
    R: Rng,
{
    let n = graph.num_states();
    let l = x.len() / batch;
    let mut out = match kind {
        NeighbourWeights::Conditional => conditional_log_weights(clean_log_scores, n, graph.mask()),
        NeighbourWeights::Enumerate => {
            let (seqs, slots) = neighbours(x, batch, graph);
            let lp = model
                .exact_log_prob(params, &seqs, slots.len())
                .ok_or(Error::invalid(
                    "neighbour weights",
                    "Enumerate",
                    "the model cannot enumerate its distribution",
                ))?;
            let mut out = vec![f64::NEG_INFINITY; batch * l * n];
            for (slot, v) in slots.into_iter().zip(lp) {
                out[slot] = v;
            }
            out
        }
        NeighbourWeights::Snis { draws } => {
            snis(model, params, graph, x, batch, sigma0, draws, rng)?
        }
    };
    for i in 0..batch * l {
        out[i * n + x[i]] = f64::NEG_INFINITY;
    }
    Ok(out)
}

/// All neighbours `x^{l←v}` (real `v ≠ x_l`), flat, with the slot `(b·L + l)·N + v` of each.
fn neighbours<G: Graph>(x: &[usize], batch: usize, graph: &G) -> (Vec<usize>, Vec<usize>) {
    let (l, n) = (x.len() / batch, graph.num_states());
    let mut seqs = Vec::new();
    let mut slots = Vec::new();
    for b in 0..batch {
        let row = &x[b * l..(b + 1) * l];
        for p in 0..l {
            for v in (0..graph.num_tokens()).filter(|&v| v != row[p]) {
                seqs.extend_from_slice(row);
                let last = seqs.len() - l + p;
                seqs[last] = v;
                slots.push((b * l + p) * n + v);
            }
        }
    }
    (seqs, slots)
}

/// Self-normalised importance sampling of `π(y)` (docs/sepo.md §3): for each neighbour `y`, `q(·|y)` is
/// the per-position conditional read from one forward on `y`; `M` sequences `z ∼ q(·|y)` are drawn, and
/// `π̂(y) = Σ_m q_l(z_{m,l}) ω_m / Σ_m ω_m` with `ω_m = Σ_{v'} s(z_m)_{l,v'} / q_l(z_{m,l})`.
#[allow(clippy::too_many_arguments)]
fn snis<E, D, M, G, R>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    x: &[usize],
    batch: usize,
    sigma0: f64,
    draws: usize,
    rng: &mut R,
) -> Result<Vec<f64>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
    R: Rng,
{
    crate::check::nonzero("draws", draws)?;
    let (l, n, mask) = (x.len() / batch, graph.num_states(), graph.mask());
    let (seqs, slots) = neighbours(x, batch, graph);
    let k = slots.len();
    // B·L·N·(1 + M) sequences: chunked so that memory stays bounded.
    let forward = |tokens: &[usize], rows: usize| -> Vec<f64> {
        log_scores_chunked(model, params, tokens, l, &vec![sigma0; rows])
    };
    let q_log = conditional_log_weights(&forward(&seqs, k), n, mask);
    // Draw z_m ~ q(·|y), independently per position.
    let mut z = Vec::with_capacity(k * draws * l);
    for j in 0..k {
        for _ in 0..draws {
            for p in 0..l {
                let row = &q_log[(j * l + p) * n..(j * l + p + 1) * n];
                z.push(crate::sample::categorical::draw_log(row, rng));
            }
        }
    }
    let z_scores = forward(&z, k * draws);
    let mut out = vec![f64::NEG_INFINITY; batch * l * n];
    for (j, &slot) in slots.iter().enumerate() {
        let p = (slot / n) % l;
        let (mut num, mut den) = (0.0, 0.0);
        for m in 0..draws {
            let r = j * draws + m;
            let zl = z[r * l + p];
            let q = q_log[(j * l + p) * n + zl].exp();
            let s_row = &z_scores[(r * l + p) * n..(r * l + p + 1) * n];
            let inv_p: f64 = (0..n)
                .filter(|&v| Some(v) != mask)
                .map(|v| s_row[v].exp())
                .sum();
            let omega = inv_p / q;
            num += q * omega;
            den += omega;
        }
        out[slot] = (num / den).ln();
    }
    Ok(out)
}
