//! The factorised draw of a step: whether a position moves, then (only if it moves) where to.
//!
//! A step's law at one position is a row `r = P(x → ·)` over the `N` states. Drawn by inverse CDF from
//! the whole row, it needs the whole `[B, L, N]` table on the host. The same law factorises as
//!
//! ```text
//!   P(stay) = r_x,     P(y) = (1 − r_x) · r_y / Σ_{y'≠x} r_{y'}     (y ≠ x)
//! ```
//!
//! (equal to `r_y` since `Σ r = 1`). So the sampler fetches the `B·L` stay probabilities `r_x` (one
//! `select` on the device), draws `u ~ U[0, 1)` for every position with `r_x ≠ 1`, stays if
//! `u ≥ 1 − r_x`, and otherwise fetches that position's row only and draws the new state by inverse CDF
//! over `y ≠ x` with `v = u / (1 − r_x)`, uniform on `[0, 1)` given the move. On the absorbing graph
//! only masked positions can move, and a masked position unmasks in one step with a probability that is
//! small on a fine grid (docs/sampling.md), so the traffic per step is `O(B·L + moved·N)` instead of
//! `O(B·L·N)`.
//!
//! **The seed stream.** The full-row draw ([`chain::draw_rows`](super::chain)) also spends one uniform
//! per position with `r_x ≠ 1`, in the same order, and with the mask last in the row it maps `u` to the
//! same outcome up to rounding: it unmasks when `u·Σr < Σ_{y real} r_y` where this draw unmasks when
//! `u < 1 − r_x`, and it picks token `y` by comparing `u·Σr` with the running sum where this draw
//! compares `v·Σ_{y real} r_y`. The two agree except when `u` falls within a rounding error of a
//! boundary (measure ≈ `N·ε` of the element type), which the seeded tests never meet.

use dfdx::prelude::*;
use rand::Rng;

use super::kernel::StepProbs;
use super::traffic::fetch;
use crate::error::{Error, Result};

/// The move decision for a position with stay probability `stay = r_x` and uniform `u ∈ [0, 1)`:
/// `None` (stay) if `u ≥ 1 − r_x`, else `Some(v)` with `v = u / (1 − r_x) ∈ [0, 1)`, the uniform
/// that picks the new state among `y ≠ x`.
pub(crate) fn moves(stay: f64, u: f64) -> Option<f64> {
    let q = 1.0 - stay;
    (u < q).then(|| u / q)
}

/// Inverse CDF over the row `r` with the entry `x` left out: the first `y ≠ x` with
/// `v·Σ_{y'≠x} r_{y'} < Σ_{y'≤y, y'≠x} r_{y'}` (negative or NaN entries count as 0, as in
/// [`categorical::draw`](crate::categorical::draw)). A row with no mass off `x` returns `x`.
pub(crate) fn inverse_cdf_excluding(row: &[f64], x: usize, v: f64) -> usize {
    let weight = |y: usize| {
        let w = row[y];
        if y != x && w > 0.0 {
            w
        } else {
            0.0
        }
    };
    let total: f64 = (0..row.len()).map(weight).sum();
    if total.is_nan() || total <= 0.0 {
        return x;
    }
    let target = v * total;
    let mut acc = 0.0;
    let mut last = x;
    for y in 0..row.len() {
        let w = weight(y);
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

/// The next state of every position of `before [B·L]` under `probs [B, L, N]` (on the device), drawn
/// factorised (module docs): fetches the stay column and the rows of the positions that move. A stay
/// probability of exactly 1 spends no randomness. `index` names the step in errors.
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
    check_finite(&stay, index)?;
    let mut moving = Vec::new();
    let mut uniforms = Vec::new();
    for (i, &p) in stay.iter().enumerate() {
        if p == 1.0 {
            continue;
        }
        if let Some(v) = moves(p, rng.gen::<f64>()) {
            moving.push(i);
            uniforms.push(v);
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
    for ((&i, &v), row) in moving.iter().zip(&uniforms).zip(rows.chunks_exact(n)) {
        after[i] = inverse_cdf_excluding(row, before[i], v);
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
