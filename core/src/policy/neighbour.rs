//! Neighbour weights `π_θ(y)` for the Hamming-1 neighbours `y = x^{l←v}` of a clean sample
//! (docs/sepo.md §3).

use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::policy::{all_positions, log_conditionals};
use crate::score::{Policy, ScoreModel};
use crate::sequences::Sequences;

/// How the weights `π_θ(y)` of the neighbours are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum NeighbourWeights {
    /// `c_l(v) = s_{l,v}/Σ_{v'} s_{l,v'}`: the model's conditional; no extra forward. Makes SEPO the
    /// pseudo-likelihood policy gradient.
    #[default]
    Conditional,
    /// Self-normalised importance sampling with `draws` samples per neighbour, the estimator the
    /// reference implementation intends (its released code computes a degenerate variant, docs/sepo.md
    /// §3), drawing from the model's supervised conditionals: `B·L·(N−1)·(L + draws)` extra forwards
    /// under the absorbing graph, `B·L·(N−1)·(1 + draws)` under the uniform graph.
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
pub fn neighbour_log_weights<M, G, R>(
    kind: NeighbourWeights,
    policy: &Policy<'_, M>,
    graph: &G,
    x: Sequences<'_>,
    sigma0: f64,
    clean_log_scores: &[f64],
    rng: &mut R,
) -> Result<Vec<f64>>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    let (model, params) = (policy.model, policy.params);
    let seqs = x;
    let (x, batch, l, n) = (x.tokens(), x.batch(), x.seq_len(), graph.num_states());
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
        NeighbourWeights::Snis { draws } => snis(policy, graph, seqs, sigma0, draws, rng)?,
    };
    for i in 0..batch * l {
        out[i * n + x[i]] = f64::NEG_INFINITY;
    }
    Ok(out)
}

/// Forwards one [`NeighbourWeights::Snis`] call spends on `batch` clean sequences of length `seq_len`:
/// `B·L·(N−1)` neighbours, each read at every position for the proposal (`L` masked forwards under the
/// absorbing graph, one under the uniform graph) and once per draw.
pub fn snis_forwards<G: Graph>(graph: &G, batch: usize, seq_len: usize, draws: usize) -> u64 {
    let reads = if graph.mask().is_some() { seq_len } else { 1 };
    (batch * seq_len * (graph.num_tokens() - 1) * (reads + draws)) as u64
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

/// Self-normalised importance sampling of `π(y)` (docs/sepo.md §3): for each neighbour `y`, the proposal
/// `q(·|y)` draws every position `p` independently from the model's clean conditional
/// `p_θ(· | y_{−p})` ([`log_conditionals`]: `y` with `p` masked under the absorbing graph, `L` forwards
/// per neighbour; one forward on `y` under the uniform graph); `M` sequences `z ∼ q(·|y)` are drawn, and
/// `π̂(y) = Σ_m q_l(z_{m,l}) ω_m / Σ_m ω_m` with `ω_m = (1/p_θ(z_{m,l} | z_{m,−l})) / q_l(z_{m,l})`
/// (one read of position `l` per draw, masked under the absorbing graph).
fn snis<M, G, R>(
    policy: &Policy<'_, M>,
    graph: &G,
    x: Sequences<'_>,
    sigma0: f64,
    draws: usize,
    rng: &mut R,
) -> Result<Vec<f64>>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    crate::check::nonzero("draws", draws)?;
    let (model, params) = (policy.model, policy.params);
    let (x, batch, l, n) = (x.tokens(), x.batch(), x.seq_len(), graph.num_states());
    let (seqs, slots) = neighbours(x, batch, graph);
    let k = slots.len();
    // The proposal: every position of every neighbour, [k·L·N] (chunked reads, bounded memory).
    let q_log = log_conditionals(model, params, graph, &seqs, k, &all_positions(k, l), sigma0)?;
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
    // p_θ(· | z_{m,−l}) at the neighbour's position l only: one read per draw.
    let reads: Vec<(usize, usize)> = (0..k * draws)
        .map(|r| (r, (slots[r / draws] / n) % l))
        .collect();
    let z_log = log_conditionals(model, params, graph, &z, k * draws, &reads, sigma0)?;
    let mut out = vec![f64::NEG_INFINITY; batch * l * n];
    for (j, &slot) in slots.iter().enumerate() {
        let p = (slot / n) % l;
        let (mut num, mut den) = (0.0, 0.0);
        for m in 0..draws {
            let r = j * draws + m;
            let zl = z[r * l + p];
            let q = q_log[(j * l + p) * n + zl].exp();
            let inv_p = (-z_log[r * n + zl]).exp();
            let omega = inv_p / q;
            num += q * omega;
            den += omega;
        }
        out[slot] = (num / den).ln();
    }
    Ok(out)
}
