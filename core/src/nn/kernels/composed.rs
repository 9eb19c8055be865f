//! The fused ops of [`super::Kernels`] written with dfdx's own ops: the default methods (every device
//! but `Cpu`), and the reference the host kernels are tested and benchmarked against. This is the
//! transformer's code as it was before the host kernels, op for op.

use dfdx::prelude::*;

use super::{Act, Heads};
use crate::nn::from_f64;

/// `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` (dfdx's `fast_gelu`).
pub fn gelu<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
) -> Tensor<S, E, D, T> {
    x.fast_gelu()
}

/// `((x − μ)/√(σ² + ε) ⊙ γ) ⊙ (1 + scale) + shift` over the last axis of `x [B, L, D]`, with `shift,
/// scale [B, D]` broadcast over `L`.
pub fn norm_modulate<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Act<E, D, T>,
    gamma: Tensor<(usize,), E, D>,
    shift: Tensor<(usize, usize), E, D, T>,
    scale: Tensor<(usize, usize), E, D, T>,
    eps: f64,
) -> Act<E, D, T> {
    let shape = *x.shape();
    let h = x.normalize::<Axis<2>>(eps) * gamma.broadcast_like::<_, Axes2<0, 1>>(&shape);
    let scale = (scale + from_f64::<E>(1.0)).broadcast_like::<_, Axis<1>>(&shape);
    h * scale + shift.broadcast_like::<_, Axis<1>>(&shape)
}

/// `x ⊙ cos + rot(x) ⊙ sin` with `rot(x) = [−x_{h..}, x_{..h}]`, tables `[L, d_h]` broadcast over `B, H`.
pub fn rope<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Heads<E, D, T>,
    cos: &Tensor<(usize, usize), E, D>,
    sin: &Tensor<(usize, usize), E, D>,
) -> Heads<E, D, T> {
    let shape = *x.shape();
    let half = shape.3 / 2;
    let cos = cos.clone().broadcast_like::<_, Axes2<0, 2>>(&shape);
    let sin = sin.clone().broadcast_like::<_, Axes2<0, 2>>(&shape);
    // Order matters: dfdx 0.13's CPU `slice` backward *assigns* its gradient instead of adding it,
    // erasing whatever ops recorded after the slice wrote into the same input region (backward runs
    // in reverse). So `x ⊙ cos` is recorded first and the slices are the last readers of `x`.
    let direct = x.with_empty_tape() * cos;
    let lo = x.with_empty_tape().slice((.., .., .., 0..half));
    let hi = x.slice((.., .., .., half..));
    let rotated = (hi.negate(), lo).concat_along(Axis::<3>);
    direct + rotated * sin
}

/// `softmax(α Q Kᵀ) V` per batch row and head for `q, k, v [B, L, H, d_h]`, returned as `[B, L, H·d_h]`
/// (α is folded into `q`: `B·L·D` multiplies instead of `B·H·L²`).
pub fn attention<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    q: Heads<E, D, T>,
    k: Heads<E, D, T>,
    v: Heads<E, D, T>,
    alpha: f64,
) -> Act<E, D, T> {
    let (b, l, h, dh) = *q.shape();
    let q = (q * from_f64::<E>(alpha)).permute::<_, Axes4<0, 2, 1, 3>>();
    let k = k.permute::<_, Axes4<0, 2, 3, 1>>();
    let v = v.permute::<_, Axes4<0, 2, 1, 3>>();
    let weights = q.matmul(k).softmax::<Axis<3>>(); // [B, H, L, L]
    weights
        .matmul(v) // [B, H, L, d_h]
        .permute::<_, Axes4<0, 2, 1, 3>>()
        .reshape_like(&(b, l, h * dh))
}
