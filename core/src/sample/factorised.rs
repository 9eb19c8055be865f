//! The factorised draw of a step: whether a position moves, then (only if it moves) where to.
//!
//! A step's law at one position is a row `r = P(x → ·)` over the `N` states, and the full-row draw
//! ([`take_full_rows`](super::take_full_rows)) copies the whole `[B, L, N]` table to the host and draws
//! by inverse CDF: with `u ~ U[0, 1)` and `T = Σ_y r_y` (in f64), the first `y` with `u·T < Σ_{y'≤y} r_{y'}`.
//! On the absorbing graph the mask is the last state, so a masked position stays exactly when
//! `u ≥ q = 1 − r_x/T`. The factorised draw therefore fetches two numbers per position, `r_x` (one
//! `select`) and `T` (a row sum on the device), draws `u` for every position with `r_x ≠ 1`, and stays
//! if `u ≥ q`; otherwise it fetches that position's row only and applies the same inverse CDF with the
//! same `u`. Only masked positions can move, and on a fine grid few of them do in one step
//! (docs/sampling.md), so a step copies `O(B·L + moved·N)` values instead of `O(B·L·N)`.
//!
//! **Law and seed stream.** Both draws spend one uniform per position with `r_x ≠ 1`, in the same order,
//! and map it to the same state, except when `u` falls between `1 − r_x/T` computed from the device's
//! row sum and from the host's f64 sum: a set of measure `≈ r_x·|T_device − T_host|`, about the element
//! type's rounding error (the device sums in three levels of `⌈N^{1/3}⌉` terms, so even at `N = 50,258`
//! in f32 it is `~1e-7`; in f64 `~1e-16`). The device's own row sum matters: dfdx sums a row
//! sequentially in the element type, so the kernel's normalised rows sum to 1 only within a few `1e-6`
//! at `N = 50,258` in f32 (docs/PERFORMANCE.md), and `1 − r_x` without the division by `T` would carry
//! that error into a move probability that is itself small on a fine grid.

use dfdx::prelude::*;
use rand::Rng;

use super::kernel::StepProbs;
use super::traffic::fetch;
use crate::error::{Error, Result};

/// The move probability `q = 1 − r_x/T` of a position with stay probability `stay = r_x` in a row
/// summing to `total = T`.
pub(crate) fn move_probability(stay: f64, total: f64) -> f64 {
    1.0 - stay / total
}

/// Inverse CDF of the row `r` at the uniform `u`: the first `y` with `u·T < Σ_{y'≤y} r_{y'}`,
/// `T = Σ r` (negative or NaN entries count as 0), the arithmetic of
/// [`categorical::draw`](crate::categorical::draw) with its uniform given. A row with no mass returns
/// its last index.
pub(crate) fn inverse_cdf(row: &[f64], u: f64) -> usize {
    let clean = |w: f64| if w > 0.0 { w } else { 0.0 };
    let total: f64 = row.iter().map(|&w| clean(w)).sum();
    let target = u * total;
    let mut acc = 0.0;
    let mut last = row.len().saturating_sub(1);
    for (y, &w) in row.iter().enumerate() {
        let w = clean(w);
        if w > 0.0 {
            acc += w;
            last = y;
            if target < acc {
                return y;
            }
        }
    }
    last
}

/// `T = Σ_y probs[b, l, y]` per position `[B·L]`, on the device, in three levels of `c = ⌈N^{1/3}⌉`
/// terms (the row zero-padded to `c³`): a sequential sum of `N` terms in f32 errs by up to `N·ε`.
pub(crate) fn row_sums<E: Dtype, D: Device<E>>(
    probs: &StepProbs<E, D, NoneTape>,
) -> Tensor<(usize,), E, D> {
    let (b, l, n) = *probs.shape();
    let mut c = 1;
    while c * c * c < n {
        c += 1;
    }
    let flat = probs.clone().reshape_like(&(b * l, n));
    let padded = if c * c * c > n {
        let zeros: Tensor<(usize, usize), E, D> =
            probs.device().zeros_like(&(b * l, c * c * c - n));
        (flat, zeros).concat_along(Axis::<1>)
    } else {
        flat
    };
    padded
        .reshape_like(&(b * l, c, c, c))
        .sum::<_, Axis<3>>()
        .sum::<_, Axis<2>>()
        .sum::<_, Axis<1>>()
}

/// The next state of every position of `before [B·L]` under `probs [B, L, N]` (on the device), drawn
/// factorised (module docs): fetches the stay probabilities, the row sums and the rows of the positions
/// that move. A stay probability of exactly 1 spends no randomness. `index` names the step in errors.
pub(crate) fn draw<E, D, R>(
    probs: &StepProbs<E, D, NoneTape>,
    before: &[usize],
    index: usize,
    rng: &mut R,
) -> Result<Vec<usize>>
where
    E: Dtype,
    D: Device<E>,
    R: Rng,
{
    let (b, l, n) = *probs.shape();
    let dev = probs.device().clone();
    let ids = dev
        .try_tensor_from_vec(before.to_vec(), (b, l))
        .map_err(Error::device("factorised draw (tokens)"))?;
    let stay = fetch(&probs.clone().select(ids));
    let total = fetch(&row_sums(probs));
    check_finite(&stay, index)?;
    check_finite(&total, index)?;
    let mut moving = Vec::new();
    let mut uniforms = Vec::new();
    for (i, (&p, &t)) in stay.iter().zip(&total).enumerate() {
        if p == 1.0 {
            continue;
        }
        let u = rng.gen::<f64>();
        if u < move_probability(p, t) {
            moving.push(i);
            uniforms.push(u);
        }
    }
    let mut after = before.to_vec();
    if moving.is_empty() {
        return Ok(after);
    }
    let k = moving.len();
    let rows = dev
        .try_tensor_from_vec(moving.clone(), (k,))
        .map_err(Error::device("factorised draw (rows)"))?;
    let rows = fetch(&probs.clone().reshape_like(&(b * l, n)).gather(rows));
    check_finite(&rows, index)?;
    for ((&i, &u), row) in moving.iter().zip(&uniforms).zip(rows.chunks_exact(n)) {
        after[i] = inverse_cdf(row, u);
    }
    Ok(after)
}

/// The error of a non-finite transition probability at step `index`.
pub(crate) fn check_finite(host: &[f64], index: usize) -> Result<()> {
    match host.iter().position(|p| !p.is_finite()) {
        Some(i) => Err(Error::NonFinite {
            what: "transition probability from the score model's output (index = sampler step; \
                   the model returned NaN/∞ or all-zero scores)",
            index,
            value: host[i],
        }),
        None => Ok(()),
    }
}
