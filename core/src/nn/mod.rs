//! sepo's thin layer over dfdx: runtime-shaped parameters and layers, gradients with clipping, AdamW with
//! savable moments, a real stop-gradient, safetensors I/O and a finite-difference checker.
//!
//! Everything else in sepo reaches dfdx through this module (plus plain tensor ops), so dfdx's sharp
//! edges are handled once, here: see `../shared/DFDX_NOTES.md`.

#[cfg(any(test, feature = "testing"))]
pub mod gradcheck;
pub mod grads;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod optim;
pub mod param;
pub mod schedule;
pub mod upload;
pub mod weights;

pub use grads::Grads;
pub use layers::{Embedding, LayerNorm, Linear};
pub use optim::{AdamW, AdamWState, Ema};
pub use param::{stop_gradient_vec, Init, Param, ParamId, ParamStore};
pub use schedule::{LrSchedule, Optimizer, Update};
pub use upload::{upload, upload_f64s};

use dfdx::prelude::*;

/// Converts an `f64` constant into the element type (exact for f64, rounded for f32).
#[inline]
pub fn from_f64<E: Dtype>(x: f64) -> E {
    E::from_f64(x).expect("every f64 converts to a float dtype")
}

/// Converts a slice of elements to `f64`.
pub fn to_f64s<E: Dtype>(xs: &[E]) -> Vec<f64> {
    xs.iter().map(|x| x.to_f64().unwrap_or(f64::NAN)).collect()
}

/// Converts a slice of `f64` to elements.
pub fn from_f64s<E: Dtype>(xs: &[f64]) -> Vec<E> {
    xs.iter().map(|&x| from_f64(x)).collect()
}

/// A true stop-gradient for any shape: a copy with a new id and no tape.
pub fn stop_gradient<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    t: &Tensor<S, E, D, T>,
) -> Tensor<S, E, D> {
    t.retaped::<NoneTape>() * from_f64::<E>(1.0)
}

/// Uploads host token ids `[rows, cols]` as an index tensor, checking every id against `vocab`.
pub fn tokens_to_device<D: dfdx::tensor::TensorFromVec<usize>>(
    dev: &D,
    tokens: &[usize],
    rows: usize,
    cols: usize,
    vocab: usize,
) -> crate::Result<Tensor<(usize, usize), usize, D>> {
    crate::check::tokens(tokens, rows, cols, vocab)?;
    upload(dev, tokens.to_vec(), (rows, cols), "tokens_to_device")
}
