//! The step rules of the reverse chain, as tape-generic functions from log-scores to transition
//! probabilities `[B, L, N]`: `euler`, `tweedie` (also the denoising step) and `first_hitting`.
//! Leaves: they read a [`Step`](crate::sample::Step) and the graph, and import nothing else of
//! `sample` but the traffic counter (itself a leaf); [`step_probs`](crate::sample::step_probs)
//! dispatches to them.

pub(crate) mod euler;
pub(crate) mod first_hitting;
pub(crate) mod tweedie;

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::upload_f64s;

/// Per-position transition probabilities `P[b, l, y] = P(x_{b,l} → y)` `[B, L, N]`.
pub type StepProbs<E, D, T> = Tensor<(usize, usize, usize), E, D, T>;

/// A constant tensor from host `f64` values ([`upload_f64s`] under the sampler's name).
pub(crate) fn constant<E: Dtype, D: Device<E>, S: Shape>(
    dev: &D,
    values: &[f64],
    shape: S,
) -> Result<Tensor<S, E, D>> {
    crate::sample::traffic::uploaded::<E>(values.len());
    upload_f64s(dev, values, shape, "sampler constant")
}

/// `[B, L, N]` indicator of the current token, `1` at `y = x_{b,l}`, scaled by `keep(b·L + l)`.
pub(crate) fn one_hot_where(before: &[usize], n: usize, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    let mut out = vec![0.0; before.len() * n];
    for (i, &x) in before.iter().enumerate() {
        if keep(i) {
            out[i * n + x] = 1.0;
        }
    }
    out
}
