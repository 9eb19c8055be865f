//! Fused layer norm (scale `γ`, no shift) and adaLN modulation on the host.
//!
//! For each row `x ∈ ℝᴰ` of batch element `b`: `μ = mean(x)`, `r = 1/√(mean((x − μ)²) + ε)`,
//! `n = (x − μ)·r`, `y = n ⊙ γ ⊙ (1 + scale_b) + shift_b`. With `g = ∂ℓ/∂y` and `ĝ = g ⊙ (1 + scale_b) ⊙ γ`
//! (the gradient reaching `n`), the backward pass is
//!
//! ```text
//! ∂ℓ/∂x     = r·(ĝ − mean(ĝ) − n·mean(ĝ ⊙ n))          per row
//! ∂ℓ/∂shift = Σ_l g,   ∂ℓ/∂scale = Σ_l g ⊙ n ⊙ γ         per batch element
//! ∂ℓ/∂γ     = Σ_{b,l} g ⊙ (1 + scale_b) ⊙ n
//! ```
//!
//! The forward pass keeps `n` and `r` (one activation-sized buffer); dfdx's composed version keeps about
//! six.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{host, upload, Act, Real, GRAIN};

/// Host layer norm + modulation (module docs), recording its backward pass on `T`.
pub(super) fn cpu<F: Real, T: Tape<F, Cpu>>(
    x: Act<F, Cpu, T>,
    gamma: Tensor<(usize,), F, Cpu>,
    shift: Tensor<(usize, usize), F, Cpu, T>,
    scale: Tensor<(usize, usize), F, Cpu, T>,
    eps: f64,
) -> Act<F, Cpu, T>
where
    Cpu: Device<F>,
{
    let (x, tape_x) = x.contiguous().split_tape();
    let (shift, tape_shift) = shift.contiguous().split_tape();
    let (scale, tape_scale) = scale.contiguous().split_tape();
    let gamma = gamma.contiguous();
    let mut tape = tape_x.merge(tape_shift).merge(tape_scale);
    let (shape, dev) = (*x.shape(), x.device().clone());
    let (l, d) = (shape.1, shape.2);
    let (gam, shf) = (host(&gamma), host(&shift));
    let mut scale1 = host(&scale);
    scale1.iter_mut().for_each(|s| *s += F::ONE);
    let eps = F::of(eps);
    let inv_d = F::of(1.0 / d as f64);

    // `norm` holds x on entry and n on exit; `y` the output, `rstd` the r of each row.
    let mut norm = host(&x);
    let rows = norm.len() / d.max(1);
    let mut rstd = vec![F::default(); rows];
    let mut y = vec![F::default(); norm.len()];
    let per_task = (GRAIN / d.max(1)).max(1);
    norm.par_chunks_mut(per_task * d)
        .zip(y.par_chunks_mut(per_task * d))
        .zip(rstd.par_chunks_mut(per_task))
        .enumerate()
        .for_each(|(task, ((ns, ys), rs))| {
            for (i, ((n, y), r)) in ns
                .chunks_exact_mut(d)
                .zip(ys.chunks_exact_mut(d))
                .zip(rs.iter_mut())
                .enumerate()
            {
                let b = (task * per_task + i) / l;
                let (sh, s1) = (&shf[b * d..(b + 1) * d], &scale1[b * d..(b + 1) * d]);
                let mean = n.iter().fold(F::default(), |a, &v| a + v) * inv_d;
                let var = n.iter().fold(F::default(), |a, &v| {
                    let c = v - mean;
                    a + c * c
                }) * inv_d;
                *r = F::ONE / (var + eps).sqrt();
                for j in 0..d {
                    n[j] = (n[j] - mean) * *r;
                    y[j] = n[j] * gam[j] * s1[j] + sh[j];
                }
            }
        });
    let out = upload(&dev, y, shape);
    if !T::OWNS_TAPE {
        return out.put_tape(tape);
    }
    let ghosts = (x.ghost(), gamma.ghost(), shift.ghost(), scale.ghost());
    let out_ghost = out.ghost();
    drop((x, gamma, shift, scale));
    tape.add_backward_op(move |grads| {
        let (x_ghost, gamma_ghost, shift_ghost, scale_ghost) = ghosts;
        let g_out = std::mem::take(F::buf(grads.get_or_alloc_mut(&out_ghost)?));
        let batch = scale1.len() / d.max(1);
        let (mut g_shift, mut g_scale) =
            (vec![F::default(); batch * d], vec![F::default(); batch * d]);
        let mut g_gamma = vec![F::default(); batch * d]; // per batch element, summed below
        let g_x = F::buf(grads.get_or_alloc_mut(&x_ghost)?);
        g_x.par_chunks_mut(l * d)
            .zip(g_shift.par_chunks_mut(d))
            .zip(g_scale.par_chunks_mut(d))
            .zip(g_gamma.par_chunks_mut(d))
            .enumerate()
            .for_each(|(b, (((gx_b, g_sh), g_sc), g_gm))| {
                let s1 = &scale1[b * d..(b + 1) * d];
                for (li, gx) in gx_b.chunks_exact_mut(d).enumerate() {
                    let row = b * l + li;
                    let go = &g_out[row * d..(row + 1) * d];
                    let n = &norm[row * d..(row + 1) * d];
                    let (mut m1, mut m2) = (F::default(), F::default());
                    for j in 0..d {
                        let g1 = go[j] * s1[j];
                        g_sh[j] += go[j];
                        g_sc[j] += go[j] * n[j] * gam[j];
                        g_gm[j] += g1 * n[j];
                        let gn = g1 * gam[j];
                        m1 += gn;
                        m2 += gn * n[j];
                    }
                    let (m1, m2, r) = (m1 * inv_d, m2 * inv_d, rstd[row]);
                    for j in 0..d {
                        let gn = go[j] * s1[j] * gam[j];
                        gx[j] += r * (gn - m1 - n[j] * m2);
                    }
                }
            });
        *F::buf(grads.get_or_alloc_mut(&out_ghost)?) = g_out;
        add_into(F::buf(grads.get_or_alloc_mut(&shift_ghost)?), &g_shift);
        add_into(F::buf(grads.get_or_alloc_mut(&scale_ghost)?), &g_scale);
        let g_gam = F::buf(grads.get_or_alloc_mut(&gamma_ghost)?);
        for part in g_gamma.chunks_exact(d) {
            add_into(g_gam, part);
        }
        Ok(())
    });
    out.put_tape(tape)
}

/// `acc ← acc + x` elementwise.
fn add_into<F: Real>(acc: &mut [F], x: &[F]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += *v;
    }
}
