//! Clean-end concrete scores `s_θ(x)_{l,v}` of clean sequences, the quantity SEPO differentiates.
//!
//! Under the absorbing graph the network is never supervised at unmasked positions, so reading its
//! outputs at a clean `x` (`Unmasked`, the reference implementation's choice) reads unsupervised values.
//! `Masked` reads the clean conditional instead: with position `l` masked, the absorbing score at `l` is
//! `p_θ(v | x_{−l})/(e^{σ̄} − 1)`, so
//! `log s_θ(x)_{l,v} = log p_θ(v | x_{−l}) − log p_θ(x_l | x_{−l})`
//! (one forward per position; see `../shared/SEPO_NOTES.md`, design point 1). `MaskedSubset` masks `m`
//! random positions per sample and reweights them by `L/m`: unbiased for sums over positions, `L/m` times
//! cheaper.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{from_f64, ParamStore};
use crate::score::{LogScores, ScoreModel};

/// How clean-end scores are read from a score network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum CleanScores {
    /// One forward on the clean sequence (exact for uniform-graph models at `t₀ → 0`; the reference's
    /// heuristic for absorbing models).
    Unmasked,
    /// Absorbing models: mask each position in turn and read the clean conditional (default).
    #[default]
    Masked,
    /// Absorbing models: mask `positions` random positions per sample, weight them by `L/positions`.
    MaskedSubset {
        /// Positions masked per sample.
        positions: usize,
    },
}

/// Clean-end log-scores `[B, L, N]` (0 at `v = x_l` and on the mask column) and a per-position weight
/// `[B·L]` (1, or `L/m` on the positions a subset read and 0 elsewhere).
#[allow(clippy::too_many_arguments)]
pub fn clean_log_scores<E, D, M, G, T, R>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    x: &[usize],
    batch: usize,
    sigma0: f64,
    mode: CleanScores,
    tape: T,
    rng: &mut R,
) -> Result<(LogScores<E, D, T>, Vec<f64>)>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
    T: Tape<E, D>,
    R: Rng,
{
    crate::check::nonzero("batch", batch)?;
    let l = x.len() / batch;
    crate::check::tokens(x, batch, l, graph.num_tokens())?;
    let dev = params.device().clone();
    let n = graph.num_states();
    let mode = match (graph.mask(), mode) {
        (None, _) => CleanScores::Unmasked,
        (Some(_), m) => m,
    };
    let rows: Vec<(usize, usize)> = match mode {
        CleanScores::Unmasked => {
            let ids = dev.tensor_from_vec(x.to_vec(), (batch, l));
            let out = model.forward_with(params, &ids, &vec![sigma0; batch], tape);
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
    let ids = dev.tensor_from_vec(tokens, (r, l));
    let out = model.forward_with(params, &ids, &vec![sigma0; r], tape); // [r, L, N]
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
    let index = dev.tensor_from_vec(index, (batch * l * n,));
    let self_index = dev.tensor_from_vec(self_index, (batch * l * n,));
    let picked = flat.with_empty_tape().gather(index);
    let own = flat.gather(self_index);
    let log_s = (picked - own).reshape_like(&(batch, l, n));
    // Pin the mask column (not a clean neighbour) to 0.
    let mut keep = vec![from_f64::<E>(1.0); batch * l * n];
    for i in 0..batch * l {
        keep[i * n + mask] = from_f64(0.0);
    }
    let keep = dev
        .tensor_from_vec(keep, (batch, l, n))
        .gt(from_f64::<E>(0.5));
    Ok((keep.choose(log_s, dev.zeros_like(&(batch, l, n))), weight))
}
