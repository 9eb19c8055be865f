//! Dilated 1-D convolution over positions, in sepo's row layout (`[B·L, C]`, one row per position),
//! with weights in PyTorch's `Conv1d` layout `[O, C, K]`.
//!
//! `y[b, l, o] = bias[o] + Σ_{j<K} Σ_c W[o, c, j] · x[b, l + (j − (K−1)/2)·d, c]`, a term being 0 when
//! its position falls outside `[0, L)` (PyTorch's zero padding `(K−1)/2·d`, odd `K`, "same" length).
//!
//! Computed as an explicit im2col: the rows are gathered (a zero row stands for every position outside
//! the sequence) into `[B·L, K·C]`, then multiplied by the weight permuted to `[K·C, O]`. Gather,
//! permute and matmul all carry gradients, so the layer trains like any other.

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::{upload, ParamId, ParamStore};

/// One `Conv1d` layer: parameter ids and sizes.
#[derive(Debug, Clone, Copy)]
pub struct Conv1d {
    /// Weight `[O, C, K]` (PyTorch layout).
    pub weight: ParamId,
    /// Bias `[O]`.
    pub bias: ParamId,
    /// Input channels `C`.
    pub c_in: usize,
    /// Output channels `O`.
    pub c_out: usize,
    /// Kernel width `K` (odd).
    pub kernel: usize,
    /// Dilation `d`.
    pub dilation: usize,
}

/// The gather indices of the im2col for `batch` sequences of length `len`: entry `(b·L + l)·K + j`
/// is the row of position `l + (j − (K−1)/2)·d` of sequence `b`, or `B·L` (the zero row) outside.
pub fn im2col_rows(batch: usize, len: usize, kernel: usize, dilation: usize) -> Vec<usize> {
    let half = (kernel / 2) as isize;
    let zero = batch * len;
    let mut idx = Vec::with_capacity(batch * len * kernel);
    for b in 0..batch {
        for l in 0..len {
            for j in 0..kernel {
                let p = l as isize + (j as isize - half) * dilation as isize;
                idx.push(if (0..len as isize).contains(&p) {
                    b * len + p as usize
                } else {
                    zero
                });
            }
        }
    }
    idx
}

/// Flat indices taking a `[O, C, K]` weight to `[K, C, O]`: entry `(j·C + c)·O + o` is `(o·C + c)·K + j`.
pub fn transposed_order(o: usize, c: usize, k: usize) -> Vec<usize> {
    let mut idx = Vec::with_capacity(o * c * k);
    for j in 0..k {
        for ci in 0..c {
            for oc in 0..o {
                idx.push((oc * c + ci) * k + j);
            }
        }
    }
    idx
}

impl Conv1d {
    /// `x [B·L, C] → y [B·L, O]` for `batch` sequences of length `len` (module docs). A failed upload
    /// of the gather indices is [`crate::Error::Device`].
    pub fn forward<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        x: Tensor<(usize, usize), E, D, T>,
        batch: usize,
        len: usize,
    ) -> Result<Tensor<(usize, usize), E, D, T>> {
        let (c, o, k) = (self.c_in, self.c_out, self.kernel);
        let rows = batch * len;
        let dev = store.device().clone();
        // W [O, C, K] → [K·C, O], so that column block j of the im2col meets W[:, :, j]: a gather of
        // the flat weight recorded on a tape of its own (merged by the matmul), so the gradient
        // reaches the parameter. (A permute then reshape copies into an untaped tensor with a new
        // id, and the gradient was lost: caught by the finite-difference check.)
        let order = upload(
            &dev,
            transposed_order(o, c, k),
            (k * c * o,),
            "Conv1d::forward (weight order)",
        )?;
        let w = store
            .vector(self.weight)
            .put_tape(T::default())
            .gather(order)
            .reshape_like(&(k * c, o));
        let y = if k == 1 {
            x.matmul(w)
        } else {
            let zero: Tensor<(usize, usize), E, D> = dev.zeros_like(&(1, c));
            let padded = (x, zero).concat_along(Axis::<0>);
            let idx = upload(
                &dev,
                im2col_rows(batch, len, k, self.dilation),
                (rows * k,),
                "Conv1d::forward (im2col rows)",
            )?;
            padded.gather(idx).reshape_like(&(rows, k * c)).matmul(w)
        };
        Ok(y + store
            .vector(self.bias)
            .broadcast_like::<_, Axis<0>>(&(rows, o)))
    }
}
