//! Tanh-approximated GELU on the host.
//!
//! `gelu(x) = ½x(1 + tanh u)`, `u = c(x + κx³)`, `c = √(2/π)`, `κ = 0.044715`. Since
//! `½(1 + tanh u) = σ(2u)` (the logistic function), `gelu(x) = x·s` with `s = 1/(1 + e^{−2u})`: one
//! `exp` instead of a `tanh`, and no cancellation in `1 + tanh u` for large negative `x`. The derivative
//! is `gelu'(x) = s + 2x·s(1 − s)·c(1 + 3κx²)`; with a tape it is computed in the same pass as the value
//! and kept instead of `x`, so the backward pass is one multiply-add per element.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{host, upload, Real, GRAIN};

const KAPPA: f64 = 0.044715;

/// `(s, 2u′)` at `x`: the logistic gate `s = σ(2u)` and the derivative of `2u`.
#[inline(always)]
fn gate<F: Real>(x: F) -> (F, F) {
    let c2 = F::of(2.0 * std::f64::consts::FRAC_2_PI.sqrt());
    let kappa = F::of(KAPPA);
    let x2 = x * x;
    let two_u = c2 * (x + kappa * x2 * x);
    let s = F::ONE / (F::ONE + (F::default() - two_u).exp());
    (s, c2 * (F::ONE + F::of(3.0) * kappa * x2))
}

/// Host GELU (module docs), recording its backward pass on `T`.
pub(super) fn cpu<F: Real, S: Shape, T: Tape<F, Cpu>>(
    x: Tensor<S, F, Cpu, T>,
) -> Tensor<S, F, Cpu, T>
where
    Cpu: Device<F>,
{
    let (x, mut tape) = x.contiguous().split_tape();
    let (shape, dev) = (*x.shape(), x.device().clone());
    let mut y = host(&x);
    if !T::OWNS_TAPE {
        y.par_chunks_mut(GRAIN).for_each(|ys| {
            for v in ys {
                *v = *v * gate(*v).0;
            }
        });
        return upload(&dev, y, shape).put_tape(tape);
    }
    // `y` holds x on entry; each element becomes gelu(x) while `dy` gets gelu'(x).
    let mut dy = vec![F::default(); y.len()];
    y.par_chunks_mut(GRAIN)
        .zip(dy.par_chunks_mut(GRAIN))
        .for_each(|(ys, ds)| {
            for (v, d) in ys.iter_mut().zip(ds) {
                let x = *v;
                let (s, du) = gate(x);
                *v = x * s;
                *d = s + x * s * (F::ONE - s) * du;
            }
        });
    let out = upload(&dev, y, shape);
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    drop(x);
    tape.add_backward_op(move |grads| {
        let g_out = std::mem::take(F::buf(grads.get_or_alloc_mut(&out_ghost)?));
        let g_x = F::buf(grads.get_or_alloc_mut(&x_ghost)?);
        g_x.par_chunks_mut(GRAIN)
            .zip(g_out.par_chunks(GRAIN).zip(dy.par_chunks(GRAIN)))
            .for_each(|(gx, (go, d))| {
                for ((a, g), d) in gx.iter_mut().zip(go).zip(d) {
                    *a += *g * *d;
                }
            });
        *F::buf(grads.get_or_alloc_mut(&out_ghost)?) = g_out;
        Ok(())
    });
    out.put_tape(tape)
}
