//! Clean-end concrete scores `s_θ(x)_{l,v}` of clean sequences, the quantity SEPO differentiates, and
//! the supervised clean conditionals `p_θ(v | x_{−l})` that the SNIS proposal and the entropy read.
//!
//! Under the absorbing graph pretraining never supervises the network at unmasked positions. `Masked`
//! reads the clean conditional instead: with position `l` masked, the absorbing score at `l` is
//! `p_θ(v | x_{−l})/(e^{σ̄} − 1)`, so
//! `log s_θ(x)_{l,v} = log p_θ(v | x_{−l}) − log p_θ(x_l | x_{−l})`
//! (one forward per position; see `../shared/SEPO_NOTES.md`, design point 1). `MaskedSubset` masks `m`
//! random positions per sample and reweights them by `L/m`: unbiased for sums over positions, `L/m` times
//! cheaper. `Unmasked` reads one forward on `x`: under the absorbing graph that is the ratio
//! `q_l(v)/q_l(x_l)` of the softmax `q_l` the network emits at an unmasked position (see
//! [`ScoreHead::Absorbing`](crate::score::ScoreHead::Absorbing)), a proper ratio of a distribution
//! pretraining never supervised.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{from_f64, upload, ParamStore};
use crate::policy::conditional_log_weights;
use crate::score::ModelLogScores;
use crate::score::{log_scores_chunked, CleanScores, Policy, ScoreModel, FORWARD_TOKENS};
use crate::sequences::Sequences;

/// Clean-end log-scores `[B, L, N]` (0 at `v = x_l` and on the mask column) and a per-position weight
/// `[B·L]` (1, or `L/m` on the positions a subset read and 0 elsewhere).
pub fn clean_log_scores<M, G, T, R>(
    policy: &Policy<'_, M>,
    graph: &G,
    x: Sequences<'_>,
    sigma0: f64,
    mode: CleanScores,
    tape: T,
    rng: &mut R,
) -> Result<(ModelLogScores<M, T>, Vec<f64>)>
where
    M: ScoreModel,
    G: Graph,
    T: Tape<M::Elem, M::Device>,
    R: Rng,
{
    let (model, params) = (policy.model, policy.params);
    let (batch, l) = (x.batch(), x.seq_len());
    let x = x.tokens();
    crate::check::tokens(x, batch, l, graph.num_tokens())?;
    let dev = params.device().clone();
    let n = graph.num_states();
    let mode = match (graph.mask(), mode) {
        (None, _) => CleanScores::Unmasked,
        (Some(_), m) => m,
    };
    let rows: Vec<(usize, usize)> = match mode {
        CleanScores::Unmasked => {
            let ids = upload(&dev, x.to_vec(), (batch, l), "clean_log_scores (tokens)")?;
            let out = model.forward_with(params, &ids, &vec![sigma0; batch], tape)?;
            return Ok((out, vec![1.0; batch * l]));
        }
        CleanScores::Masked => (0..batch)
            .flat_map(|b| (0..l).map(move |p| (b, p)))
            .collect(),
        CleanScores::MaskedSubset { positions } => {
            if positions == 0 || positions > l {
                return Err(Error::invalid(
                    "positions",
                    positions,
                    format!("must be in 1..={l}"),
                ));
            }
            let mut rows = Vec::with_capacity(batch * positions);
            for b in 0..batch {
                for p in rand::seq::index::sample(rng, l, positions) {
                    rows.push((b, p));
                }
            }
            rows
        }
    };
    let mask = graph.mask().expect("masked modes need an absorbing graph");
    let mut weight = vec![0.0; batch * l];
    let scale = l as f64 / (rows.len() / batch) as f64;
    // One masked copy of x_b per (b, p): row r masks position p.
    let mut tokens = Vec::with_capacity(rows.len() * l);
    for &(b, p) in &rows {
        let start = tokens.len();
        tokens.extend_from_slice(&x[b * l..(b + 1) * l]);
        tokens[start + p] = mask;
        weight[b * l + p] = scale;
    }
    let r = rows.len();
    let ids = upload(&dev, tokens, (r, l), "clean_log_scores (masked tokens)")?;
    let out = model.forward_with(params, &ids, &vec![sigma0; r], tape)?; // [r, L, N]
                                                                         // Row r's masked position: gather its [N] scores into place (b, p). Positions not read point both
                                                                         // indices at the same entry, so their difference is exactly 0.
    let flat_len = r * l * n;
    let mut index = vec![0; batch * l * n];
    let mut self_index = vec![0; batch * l * n];
    for (ri, &(b, p)) in rows.iter().enumerate() {
        let base = (ri * l + p) * n;
        for v in 0..n {
            index[(b * l + p) * n + v] = base + v;
            self_index[(b * l + p) * n + v] = base + x[b * l + p];
        }
    }
    let flat = out.reshape_like(&(flat_len,));
    let index = upload(&dev, index, (batch * l * n,), "clean_log_scores (index)")?;
    let self_index = upload(
        &dev,
        self_index,
        (batch * l * n,),
        "clean_log_scores (self index)",
    )?;
    let picked = flat.with_empty_tape().gather(index);
    let own = flat.gather(self_index);
    let log_s = (picked - own).reshape_like(&(batch, l, n));
    // Pin the mask column (not a clean neighbour) to 0.
    let mut keep = vec![from_f64::<M::Elem>(1.0); batch * l * n];
    for i in 0..batch * l {
        keep[i * n + mask] = from_f64(0.0);
    }
    let keep =
        upload(&dev, keep, (batch, l, n), "clean_log_scores (keep)")?.gt(from_f64::<M::Elem>(0.5));
    Ok((keep.choose(log_s, dev.zeros_like(&(batch, l, n))), weight))
}

/// `log p_θ(v | x_{−p})` at the `(sequence, position)` pairs `reads` of clean sequences `x` (flat
/// `[batch, L]`), flat `[reads.len()·N]` in the order of `reads`, `−∞` on the mask column: the model's
/// own clean conditionals, normalised over the real tokens.
///
/// - Absorbing graphs: one tape-free forward per pair, on `x_b` with position `p` masked. The head's
///   output there is `log p_θ(v | x_{−p}) − log(e^{σ̄} − 1)`, the conditional the network is trained on;
///   the log-softmax over the real tokens removes the constant.
/// - Uniform graphs: one forward per sequence read; the scores at a clean `x` are the ratios
///   `p(v | x_{−p})/p(x_p | x_{−p})` (exact as `t₀ → 0`), normalised the same way.
///
/// Forwards are chunked ([`FORWARD_TOKENS`]) and only the read rows are kept, so memory is
/// `O(reads·N)` whatever the number of forwards.
pub fn log_conditionals<E, D, M, G>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    x: &[usize],
    batch: usize,
    reads: &[(usize, usize)],
    sigma0: f64,
) -> Result<Vec<f64>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    crate::check::nonzero("batch", batch)?;
    let l = x.len() / batch;
    crate::check::tokens(x, batch, l, graph.num_tokens())?;
    crate::check::sigmas(&[sigma0], 1)?;
    if let Some(&(b, p)) = reads.iter().find(|&&(b, p)| b >= batch || p >= l) {
        return Err(Error::invalid(
            "reads",
            format!("({b}, {p})"),
            format!("sequence must be < {batch} and position < {l}"),
        ));
    }
    let n = graph.num_states();
    let rows_per_chunk = (FORWARD_TOKENS / l.max(1)).max(1);
    let forward = |tokens: &[usize], rows: usize| {
        log_scores_chunked(model, params, tokens, l, &vec![sigma0; rows])
    };
    let mut out = vec![f64::NEG_INFINITY; reads.len() * n];
    match graph.mask() {
        // One row per read, masked at its position.
        Some(mask) => {
            for (c, chunk) in reads.chunks(rows_per_chunk).enumerate() {
                let mut tokens = Vec::with_capacity(chunk.len() * l);
                for &(b, p) in chunk {
                    tokens.extend_from_slice(&x[b * l..(b + 1) * l]);
                    let last = tokens.len() - l + p;
                    tokens[last] = mask;
                }
                let scores = forward(&tokens, chunk.len())?;
                for (r, &(_, p)) in chunk.iter().enumerate() {
                    let i = c * rows_per_chunk + r;
                    let row = &scores[(r * l + p) * n..(r * l + p + 1) * n];
                    out[i * n..(i + 1) * n].copy_from_slice(&conditional_log_weights(
                        row,
                        n,
                        Some(mask),
                    ));
                }
            }
        }
        // One row per sequence read at least once.
        None => {
            let mut by_seq: Vec<Vec<usize>> = vec![Vec::new(); batch];
            for (i, &(b, _)) in reads.iter().enumerate() {
                by_seq[b].push(i);
            }
            let needed: Vec<usize> = (0..batch).filter(|&b| !by_seq[b].is_empty()).collect();
            for chunk in needed.chunks(rows_per_chunk) {
                let tokens: Vec<usize> = chunk
                    .iter()
                    .flat_map(|&b| x[b * l..(b + 1) * l].iter().copied())
                    .collect();
                let scores = forward(&tokens, chunk.len())?;
                for (r, &b) in chunk.iter().enumerate() {
                    for &i in &by_seq[b] {
                        let p = reads[i].1;
                        let row = &scores[(r * l + p) * n..(r * l + p + 1) * n];
                        out[i * n..(i + 1) * n]
                            .copy_from_slice(&conditional_log_weights(row, n, None));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Every `(sequence, position)` pair of a `[batch, L]` batch, sequence-major.
pub fn all_positions(batch: usize, seq_len: usize) -> Vec<(usize, usize)> {
    (0..batch)
        .flat_map(|b| (0..seq_len).map(move |p| (b, p)))
        .collect()
}

/// Mean entropy (nats per position) of the model's clean conditionals at `x` (flat `[batch, L]`):
/// `H = −(1/(B·L)) Σ_{b,l} Σ_v p_θ(v | x_{b,−l}) log p_θ(v | x_{b,−l})`, read by [`log_conditionals`]
/// (`B·L` tape-free forwards under the absorbing graph, `B` under the uniform graph).
pub fn clean_entropy<E, D, M, G>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    x: &[usize],
    batch: usize,
    sigma0: f64,
) -> Result<f64>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    crate::check::nonzero("batch", batch)?;
    let l = x.len() / batch;
    let reads = all_positions(batch, l);
    let log_p = log_conditionals(model, params, graph, x, batch, &reads, sigma0)?;
    let h: f64 = log_p
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| -v.exp() * v)
        .sum();
    Ok(h / reads.len().max(1) as f64)
}
