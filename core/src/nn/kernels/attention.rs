//! Non-causal softmax attention on the host, multi-threaded over the batch.
//!
//! For each batch row `b` and head `h`, with `Q, K, V ∈ ℝ^{L×d_h}` read in place from `[B, L, H, d_h]`:
//!
//! ```text
//! S = α Q Kᵀ,   P = softmax(S) row-wise,   O = P V
//! ```
//!
//! and, with `G = ∂ℓ/∂O`, the backward pass
//!
//! ```text
//! ∂ℓ/∂V = Pᵀ G,   ∂ℓ/∂P = G Vᵀ,   ∂ℓ/∂S = P ⊙ (∂ℓ/∂P − rowsum(P ⊙ ∂ℓ/∂P)),
//! ∂ℓ/∂Q = α (∂ℓ/∂S) K,   ∂ℓ/∂K = α (∂ℓ/∂S)ᵀ Q.
//! ```
//!
//! The products are row-times-row loops (`dot` and `axpy` over `d_h` contiguous values): at the
//! transformer's head widths (16–64) and lengths (≤ a few hundred) each `(b, h)` block is small, and a
//! GEMM library's packing would not pay (the safe-Rust GEMMs available also need `unsafe` calls, which
//! sepo forbids). A tape keeps `P` (`B·H·L²` values) and host copies of `Q, K, V`; without one, only a
//! row of `P` at a time exists.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{axpy, dot, host, upload, Act, Heads, Real};

/// One output row: `p ← softmax(α q Kᵀ)` over the `len` rows of `k` (stride `stride` between rows),
/// then `o ← p V` (`o` starts at zero).
#[inline]
fn attend_row<F: Real>(
    q: &[F],
    k: &[F],
    v: &[F],
    stride: usize,
    alpha: F,
    p: &mut [F],
    o: &mut [F],
) {
    let dh = q.len();
    let mut max = F::of(f64::NEG_INFINITY);
    for (j, pj) in p.iter_mut().enumerate() {
        *pj = alpha * dot(q, &k[j * stride..j * stride + dh]);
        max = max.max(*pj);
    }
    let mut sum = F::default();
    for pj in p.iter_mut() {
        *pj = (*pj - max).exp();
        sum += *pj;
    }
    let inv = F::ONE / sum;
    for (j, pj) in p.iter_mut().enumerate() {
        *pj *= inv;
        axpy(o, *pj, &v[j * stride..j * stride + dh]);
    }
}

/// Host attention (module docs), recording its backward pass on `T`.
pub(super) fn cpu<F: Real, T: Tape<F, Cpu>>(
    q: Heads<F, Cpu, T>,
    k: Heads<F, Cpu, T>,
    v: Heads<F, Cpu, T>,
    alpha: f64,
) -> Act<F, Cpu, T>
where
    Cpu: Device<F>,
{
    let (q, tape_q) = q.contiguous().split_tape();
    let (k, tape_k) = k.contiguous().split_tape();
    let (v, tape_v) = v.contiguous().split_tape();
    let mut tape = tape_q.merge(tape_k).merge(tape_v);
    let (b, l, h, dh) = *q.shape();
    assert_eq!(
        *k.shape(),
        (b, l, h, dh),
        "attention: k's shape differs from q's"
    );
    assert_eq!(
        *v.shape(),
        (b, l, h, dh),
        "attention: v's shape differs from q's"
    );
    let dev = q.device().clone();
    let (qs, ks, vs) = (host(&q), host(&k), host(&v));
    let alpha = F::of(alpha);
    // Row `i` of head `hh` in batch row `bb` starts at `((bb·L + i)·H + hh)·d_h`; within one batch row
    // (a chunk of `per_b` values) at `(i·H + hh)·d_h`, and consecutive rows are `stride = H·d_h` apart.
    let (stride, per_b) = (h * dh, l * h * dh);
    let mut out = vec![F::default(); qs.len()];
    let mut probs = if T::OWNS_TAPE {
        vec![F::default(); b * h * l * l]
    } else {
        Vec::new()
    };
    let forward = |bb: usize, o_b: &mut [F], p_b: Option<&mut [F]>| {
        let (q_b, k_b, v_b) = (
            &qs[bb * per_b..(bb + 1) * per_b],
            &ks[bb * per_b..(bb + 1) * per_b],
            &vs[bb * per_b..(bb + 1) * per_b],
        );
        let mut scratch = Vec::new();
        let p_b = match p_b {
            Some(p) => p,
            None => {
                scratch.resize(h * l * l, F::default());
                &mut scratch[..]
            }
        };
        for hh in 0..h {
            for i in 0..l {
                let at = i * stride + hh * dh;
                let p = &mut p_b[(hh * l + i) * l..(hh * l + i + 1) * l];
                attend_row(
                    &q_b[at..at + dh],
                    &k_b[hh * dh..],
                    &v_b[hh * dh..],
                    stride,
                    alpha,
                    p,
                    &mut o_b[at..at + dh],
                );
            }
        }
    };
    if T::OWNS_TAPE {
        out.par_chunks_mut(per_b)
            .zip(probs.par_chunks_mut(h * l * l))
            .enumerate()
            .for_each(|(bb, (o_b, p_b))| forward(bb, o_b, Some(p_b)));
    } else {
        out.par_chunks_mut(per_b)
            .enumerate()
            .for_each(|(bb, o_b)| forward(bb, o_b, None));
    }
    let out = upload(&dev, out, (b, l, h * dh));
    if !T::OWNS_TAPE {
        return out.put_tape(tape);
    }
    let ghosts = (q.ghost(), k.ghost(), v.ghost());
    let out_ghost = out.ghost();
    drop((q, k, v));
    tape.add_backward_op(move |grads| {
        let (q_ghost, k_ghost, v_ghost) = ghosts;
        let g_out = std::mem::take(F::buf(grads.get_or_alloc_mut(&out_ghost)?));
        let n = qs.len();
        let (mut g_q, mut g_k, mut g_v) = (
            vec![F::default(); n],
            vec![F::default(); n],
            vec![F::default(); n],
        );
        g_q.par_chunks_mut(per_b)
            .zip(g_k.par_chunks_mut(per_b))
            .zip(g_v.par_chunks_mut(per_b))
            .enumerate()
            .for_each(|(bb, ((gq, gk), gv))| {
                let at_b = bb * per_b..(bb + 1) * per_b;
                let (q_b, k_b, v_b) = (&qs[at_b.clone()], &ks[at_b.clone()], &vs[at_b.clone()]);
                let go_b = &g_out[at_b];
                let mut gs = vec![F::default(); l];
                for hh in 0..h {
                    let row = |j: usize| j * stride + hh * dh..j * stride + hh * dh + dh;
                    for i in 0..l {
                        let p =
                            &probs[((bb * h + hh) * l + i) * l..((bb * h + hh) * l + i + 1) * l];
                        let go = &go_b[row(i)];
                        let mut weighted = F::default();
                        for j in 0..l {
                            axpy(&mut gv[row(j)], p[j], go);
                            gs[j] = dot(go, &v_b[row(j)]);
                            weighted += p[j] * gs[j];
                        }
                        for j in 0..l {
                            gs[j] = alpha * p[j] * (gs[j] - weighted);
                        }
                        let qi = &q_b[row(i)];
                        for j in 0..l {
                            axpy(&mut gq[row(i)], gs[j], &k_b[row(j)]);
                            axpy(&mut gk[row(j)], gs[j], qi);
                        }
                    }
                }
            });
        *F::buf(grads.get_or_alloc_mut(&out_ghost)?) = g_out;
        for (ghost, g) in [(&q_ghost, &g_q), (&k_ghost, &g_k), (&v_ghost, &g_v)] {
            let acc = F::buf(grads.get_or_alloc_mut(ghost)?);
            acc.par_chunks_mut(per_b)
                .zip(g.par_chunks(per_b))
                .for_each(|(a, x)| a.iter_mut().zip(x).for_each(|(a, x)| *a += *x));
        }
        Ok(())
    });
    out.put_tape(tape)
}
