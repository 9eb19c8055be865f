//! Rotary position embedding on the host.
//!
//! For `x [B, L, H, d_h]`, `h = d_h/2` and tables `cos, sin [L, d_h]` (each angle repeated over both
//! halves), position `p` rotates every pair `(x_j, x_{j+h})`:
//!
//! ```text
//! y_j     = x_j·cos_{p,j}     − x_{j+h}·sin_{p,j}
//! y_{j+h} = x_{j+h}·cos_{p,j+h} + x_j·sin_{p,j+h}          (j < h)
//! ```
//!
//! The map is linear in `x`, so the backward pass is its transpose:
//! `∂ℓ/∂x_j = g_j·cos_{p,j} + g_{j+h}·sin_{p,j+h}`, `∂ℓ/∂x_{j+h} = g_{j+h}·cos_{p,j+h} − g_j·sin_{p,j}`.
//! Nothing but the tables is kept.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{host, upload, Heads, Real, GRAIN};

/// `out ← R_p x` for one position's rows (`transpose`: `out ← R_pᵀ x`), over every head in `x`.
#[inline]
fn rotate<F: Real>(out: &mut [F], x: &[F], cos: &[F], sin: &[F], transpose: bool) {
    let half = cos.len() / 2;
    for (o, xv) in out.chunks_exact_mut(2 * half).zip(x.chunks_exact(2 * half)) {
        let (o_lo, o_hi) = o.split_at_mut(half);
        let (x_lo, x_hi) = xv.split_at(half);
        for j in 0..half {
            let (c_lo, c_hi, s_lo, s_hi) = (cos[j], cos[j + half], sin[j], sin[j + half]);
            if transpose {
                o_lo[j] += x_lo[j] * c_lo + x_hi[j] * s_hi;
                o_hi[j] += x_hi[j] * c_hi - x_lo[j] * s_lo;
            } else {
                o_lo[j] = x_lo[j] * c_lo - x_hi[j] * s_lo;
                o_hi[j] = x_hi[j] * c_hi + x_lo[j] * s_hi;
            }
        }
    }
}

/// Host RoPE (module docs), recording its backward pass on `T`.
pub(super) fn cpu<F: Real, T: Tape<F, Cpu>>(
    x: Heads<F, Cpu, T>,
    cos: &Tensor<(usize, usize), F, Cpu>,
    sin: &Tensor<(usize, usize), F, Cpu>,
) -> Heads<F, Cpu, T>
where
    Cpu: Device<F>,
{
    let (x, mut tape) = x.contiguous().split_tape();
    let (shape, dev) = (*x.shape(), x.device().clone());
    let (l, row) = (shape.1, shape.2 * shape.3);
    let (cos, sin) = (
        host(&cos.clone().contiguous()),
        host(&sin.clone().contiguous()),
    );
    let dh = shape.3;
    let xs = host(&x);
    let mut y = vec![F::default(); xs.len()];
    let per_task = (GRAIN / row.max(1)).max(1);
    y.par_chunks_mut(per_task * row)
        .zip(xs.par_chunks(per_task * row))
        .enumerate()
        .for_each(|(task, (ys, xs))| {
            for (i, (o, xv)) in ys
                .chunks_exact_mut(row)
                .zip(xs.chunks_exact(row))
                .enumerate()
            {
                let p = (task * per_task + i) % l;
                let (c, s) = (&cos[p * dh..(p + 1) * dh], &sin[p * dh..(p + 1) * dh]);
                rotate(o, xv, c, s, false);
            }
        });
    let out = upload(&dev, y, shape);
    if !T::OWNS_TAPE {
        return out.put_tape(tape);
    }
    let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
    drop(x);
    tape.add_backward_op(move |grads| {
        let g_out = std::mem::take(F::buf(grads.get_or_alloc_mut(&out_ghost)?));
        let g_x = F::buf(grads.get_or_alloc_mut(&x_ghost)?);
        g_x.par_chunks_mut(per_task * row)
            .zip(g_out.par_chunks(per_task * row))
            .enumerate()
            .for_each(|(task, (gx, go))| {
                for (i, (o, g)) in gx
                    .chunks_exact_mut(row)
                    .zip(go.chunks_exact(row))
                    .enumerate()
                {
                    let p = (task * per_task + i) % l;
                    let (c, s) = (&cos[p * dh..(p + 1) * dh], &sin[p * dh..(p + 1) * dh]);
                    rotate(o, g, c, s, true);
                }
            });
        *F::buf(grads.get_or_alloc_mut(&out_ghost)?) = g_out;
        Ok(())
    });
    out.put_tape(tape)
}
