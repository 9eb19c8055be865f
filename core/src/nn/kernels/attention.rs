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
//! The six products go through one register-blocked product (`gemm`, 4 × 16 tiles, compiled for the
//! CPU's SIMD through `pulp`); `Kᵀ`, `Vᵀ`, `Pᵀ` and `(∂ℓ/∂S)ᵀ` are packed per head so that every
//! right-hand operand is read row-major. (The `gemm` and `matrixmultiply` crates' entry points are
//! `unsafe fn`s, which sepo's `forbid(unsafe_code)` rules out.) A tape keeps `P` (`B·H·L²` values) and
//! host copies of `Q, K, V`; without one, `P` lives one head at a time.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::{host, upload, Act, Heads, Real};

/// `C ← A·B` for `A [m, k]` (row stride `lda`), `B [k, n]` (row stride `ldb`) and `C [m, n]` (row stride
/// `ldc`; only its first `n` columns are written). Full 4 × 16 tiles accumulate in registers over `k`;
/// the edges are plain dot products.
#[inline(always)]
fn gemm<F: Real>(
    (m, n, k): (usize, usize, usize),
    a: &[F],
    lda: usize,
    b: &[F],
    ldb: usize,
    c: &mut [F],
    ldc: usize,
) {
    const MR: usize = 4;
    const NR: usize = 16;
    let (m_full, n_full) = (m - m % MR, n - n % NR);
    let edge = |c: &mut [F], i: usize, j: usize| {
        let row = &a[i * lda..i * lda + k];
        let mut s = F::default();
        for (p, &x) in row.iter().enumerate() {
            s += x * b[p * ldb + j];
        }
        c[i * ldc + j] = s;
    };
    for i0 in (0..m_full).step_by(MR) {
        let rows: [&[F]; MR] = std::array::from_fn(|r| &a[(i0 + r) * lda..(i0 + r) * lda + k]);
        for j0 in (0..n_full).step_by(NR) {
            let mut acc = [[F::default(); NR]; MR];
            for p in 0..k {
                let bp: &[F; NR] = b[p * ldb + j0..p * ldb + j0 + NR].try_into().unwrap();
                for r in 0..MR {
                    let x = rows[r][p];
                    for q in 0..NR {
                        acc[r][q] = x.mul_add(bp[q], acc[r][q]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                c[(i0 + r) * ldc + j0..(i0 + r) * ldc + j0 + NR].copy_from_slice(acc);
            }
        }
        for i in i0..i0 + MR {
            for j in n_full..n {
                edge(c, i, j);
            }
        }
    }
    for i in m_full..m {
        for j in 0..n {
            edge(c, i, j);
        }
    }
}

/// `out [cols, rows] ← xᵀ` for `x [rows, cols]` (row stride `ld`).
#[inline(always)]
fn transpose<F: Real>(x: &[F], rows: usize, cols: usize, ld: usize, out: &mut [F]) {
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = x[i * ld + j];
        }
    }
}

/// Row-wise `p ← softmax(α s)` in place over rows of length `l`.
#[inline(always)]
fn softmax_rows<F: Real>(s: &mut [F], l: usize, alpha: F) {
    for row in s.chunks_exact_mut(l) {
        let mut max = F::of(f64::NEG_INFINITY);
        for v in row.iter_mut() {
            *v *= alpha;
            if *v > max {
                max = *v;
            }
        }
        let mut sum = F::default();
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = F::ONE / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Sizes of one call: `L`, `H`, `d_h`.
#[derive(Clone, Copy)]
struct Dims {
    l: usize,
    h: usize,
    dh: usize,
}

/// Forward pass of one batch row: `p_b [H, L, L] ← P`, `o_b [L, H·d_h] ← O` from `q_b, k_b, v_b
/// [L, H·d_h]`.
#[inline(always)]
fn forward_row<F: Real>(dims: Dims, alpha: F, qkv: [&[F]; 3], p_b: &mut [F], o_b: &mut [F]) {
    let Dims { l, h, dh } = dims;
    let stride = h * dh;
    let [q_b, k_b, v_b] = qkv;
    let mut kt = vec![F::default(); dh * l];
    for hh in 0..h {
        let at = hh * dh;
        let p = &mut p_b[hh * l * l..(hh + 1) * l * l];
        transpose(&k_b[at..], l, dh, stride, &mut kt);
        gemm((l, l, dh), &q_b[at..], stride, &kt, l, p, l);
        softmax_rows(p, l, alpha);
        gemm((l, dh, l), p, l, &v_b[at..], stride, &mut o_b[at..], stride);
    }
}

/// Backward pass of one batch row: `∂ℓ/∂q_b, ∂ℓ/∂k_b, ∂ℓ/∂v_b [L, H·d_h]` (overwritten) from the output
/// gradient `go_b`, the kept `p_b` and the inputs.
#[inline(always)]
fn backward_row<F: Real>(
    dims: Dims,
    alpha: F,
    (qkv, p_b, go_b): ([&[F]; 3], &[F], &[F]),
    [gq, gk, gv]: [&mut [F]; 3],
) {
    let Dims { l, h, dh } = dims;
    let stride = h * dh;
    let [q_b, k_b, v_b] = qkv;
    let mut vt = vec![F::default(); dh * l];
    let (mut gs, mut t) = (vec![F::default(); l * l], vec![F::default(); l * l]);
    for hh in 0..h {
        let at = hh * dh;
        let p = &p_b[hh * l * l..(hh + 1) * l * l];
        // ∂ℓ/∂P = G Vᵀ, then ∂ℓ/∂S = α P ⊙ (∂ℓ/∂P − rowsum(P ⊙ ∂ℓ/∂P)) (α folded in here).
        transpose(&v_b[at..], l, dh, stride, &mut vt);
        gemm((l, l, dh), &go_b[at..], stride, &vt, l, &mut gs, l);
        for (g_row, p_row) in gs.chunks_exact_mut(l).zip(p.chunks_exact(l)) {
            let weighted = g_row
                .iter()
                .zip(p_row)
                .fold(F::default(), |a, (g, p)| a + *g * *p);
            for (g, p) in g_row.iter_mut().zip(p_row) {
                *g = alpha * *p * (*g - weighted);
            }
        }
        gemm(
            (l, dh, l),
            &gs,
            l,
            &k_b[at..],
            stride,
            &mut gq[at..],
            stride,
        );
        transpose(&gs, l, l, l, &mut t);
        gemm((l, dh, l), &t, l, &q_b[at..], stride, &mut gk[at..], stride);
        transpose(p, l, l, l, &mut t);
        gemm(
            (l, dh, l),
            &t,
            l,
            &go_b[at..],
            stride,
            &mut gv[at..],
            stride,
        );
    }
}

/// [`forward_row`] as a `pulp` operation: `with_simd` is inlined into a function compiled for the
/// CPU's best instruction set (AVX2 + FMA, AVX-512), and `forward_row` with it. (A closure would not
/// do: its body is compiled separately, for baseline x86-64.)
struct Forward<'a, F> {
    dims: Dims,
    alpha: F,
    qkv: [&'a [F]; 3],
    p_b: &'a mut [F],
    o_b: &'a mut [F],
}

impl<F: Real> pulp::WithSimd for Forward<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        forward_row(self.dims, self.alpha, self.qkv, self.p_b, self.o_b)
    }
}

/// [`backward_row`] as a `pulp` operation (see [`Forward`]).
struct Backward<'a, F> {
    dims: Dims,
    alpha: F,
    kept: ([&'a [F]; 3], &'a [F], &'a [F]),
    grads: [&'a mut [F]; 3],
}

impl<F: Real> pulp::WithSimd for Backward<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        backward_row(self.dims, self.alpha, self.kept, self.grads)
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
    let (alpha, dims, per_b) = (F::of(alpha), Dims { l, h, dh }, l * h * dh);
    let inputs = |bb: usize| {
        let at = bb * per_b..(bb + 1) * per_b;
        [&qs[at.clone()], &ks[at.clone()], &vs[at]]
    };
    let mut out = vec![F::default(); qs.len()];
    if !T::OWNS_TAPE {
        out.par_chunks_mut(per_b).enumerate().for_each(|(bb, o_b)| {
            let mut p_b = vec![F::default(); h * l * l];
            pulp::Arch::new().dispatch(Forward {
                dims,
                alpha,
                qkv: inputs(bb),
                p_b: &mut p_b,
                o_b,
            });
        });
        return upload(&dev, out, (b, l, h * dh)).put_tape(tape);
    }
    let mut probs = vec![F::default(); b * h * l * l];
    out.par_chunks_mut(per_b)
        .zip(probs.par_chunks_mut(h * l * l))
        .enumerate()
        .for_each(|(bb, (o_b, p_b))| {
            pulp::Arch::new().dispatch(Forward {
                dims,
                alpha,
                qkv: inputs(bb),
                p_b,
                o_b,
            })
        });
    let out = upload(&dev, out, (b, l, h * dh));
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
                let at = bb * per_b..(bb + 1) * per_b;
                let kept = (
                    [&qs[at.clone()], &ks[at.clone()], &vs[at.clone()]],
                    &probs[bb * h * l * l..(bb + 1) * h * l * l],
                    &g_out[at],
                );
                pulp::Arch::new().dispatch(Backward {
                    dims,
                    alpha,
                    kept,
                    grads: [gq, gk, gv],
                });
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
