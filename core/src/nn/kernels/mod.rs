//! sepo's own fused CPU kernels for the transformer, registered on dfdx's tape, and the dispatch trait
//! [`Kernels`] that picks them.
//!
//! Outside GEMM, dfdx 0.13 runs each op as a single-threaded scalar loop over a freshly allocated
//! buffer and records one boxed backward closure per op; a layer norm followed by an adaLN modulation is
//! about a dozen such ops. Each kernel here computes one fused op on the host in one or two passes
//! (multi-threaded with rayon where the work is large enough), records a single backward closure with a
//! hand-written gradient, and keeps only what that gradient needs.
//!
//! [`Kernels`] has one method per fused op. Its default methods are the composed dfdx ops of
//! [`composed`] (the path every device but `Cpu` takes, e.g. `Cuda`, so there is one model definition);
//! `Cpu` overrides them for `f32` and `f64`. [`with_composed_ops`] forces the composed path on the
//! current thread (parity tests and benchmarks).
//!
//! How a host kernel sits on the tape: split the tape off the inputs (`split_tape`), compute the output
//! from host copies of the inputs, build it with `try_tensor_from_vec` (a new id), then record
//! `tape.add_backward_op` whose closure reads the output's gradient and *adds* into each input's
//! gradient (`Gradients::get_or_alloc_mut`), and put the merged tape on the output. With `NoneTape`
//! nothing is recorded and nothing kept. Inputs are made contiguous first (`contiguous()` is a free view
//! when they already are), so host order and gradient-buffer order agree.

mod attention;
pub mod composed;
mod gelu;
mod norm_modulate;
mod rope;
#[cfg(test)]
mod tests;

use std::cell::Cell;

use dfdx::prelude::*;

/// `[B, L, D]` activations.
pub type Act<E, D, T> = Tensor<(usize, usize, usize), E, D, T>;
/// `[B, L, H, d_h]` per-head activations.
pub type Heads<E, D, T> = Tensor<(usize, usize, usize, usize), E, D, T>;

/// The fused ops of the transformer, dispatched on the device. Every method's default is the composed
/// dfdx implementation in [`composed`]; `Cpu` overrides them with host kernels (`f32`, `f64`).
pub trait Kernels<E: Dtype>: Device<E> {
    /// Tanh-approximated GELU, `gelu(x) = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))`, elementwise.
    fn gelu<S: Shape, T: Tape<E, Self>>(x: Tensor<S, E, Self, T>) -> Tensor<S, E, Self, T> {
        composed::gelu(x)
    }

    /// Layer norm over the last axis with scale `γ` and no shift, then adaLN modulation:
    /// `y = ((x − μ)/√(σ² + ε) ⊙ γ) ⊙ (1 + scale_b) + shift_b` for `x [B, L, D]`, `γ [D]` and per-sequence
    /// `shift, scale [B, D]` (μ, σ² the mean and biased variance of each row).
    fn norm_modulate<T: Tape<E, Self>>(
        x: Act<E, Self, T>,
        gamma: Tensor<(usize,), E, Self>,
        shift: Tensor<(usize, usize), E, Self, T>,
        scale: Tensor<(usize, usize), E, Self, T>,
        eps: f64,
    ) -> Act<E, Self, T> {
        composed::norm_modulate(x, gamma, shift, scale, eps)
    }

    /// Rotary position embedding of `x [B, L, H, d_h]` with tables `cos, sin [L, d_h]` ("rotate half"
    /// layout, `h = d_h/2`): `y = x ⊙ cos + rot(x) ⊙ sin`, `rot(x) = [−x_{h..}, x_{..h}]`.
    fn rope<T: Tape<E, Self>>(
        x: Heads<E, Self, T>,
        cos: &Tensor<(usize, usize), E, Self>,
        sin: &Tensor<(usize, usize), E, Self>,
    ) -> Heads<E, Self, T> {
        composed::rope(x, cos, sin)
    }

    /// Non-causal softmax attention per batch row and head, `O = softmax(α Q Kᵀ) V`, for
    /// `q, k, v [B, L, H, d_h]`; returns `O` as `[B, L, H·d_h]` (heads concatenated).
    fn attention<T: Tape<E, Self>>(
        q: Heads<E, Self, T>,
        k: Heads<E, Self, T>,
        v: Heads<E, Self, T>,
        alpha: f64,
    ) -> Act<E, Self, T> {
        composed::attention(q, k, v, alpha)
    }
}

thread_local! {
    static FORCE_COMPOSED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`Kernels`] call on this thread taking the composed dfdx path (the default
/// methods), then restores the previous setting (also when `f` panics). For parity tests and for
/// benchmarking the kernels against the ops they replace.
pub fn with_composed_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCE_COMPOSED.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FORCE_COMPOSED.with(|c| c.replace(true)));
    f()
}

/// Whether host kernels are enabled on this thread (not inside [`with_composed_ops`]).
fn host_enabled() -> bool {
    !FORCE_COMPOSED.with(Cell::get)
}

/// The float operations the host kernels need, for `f32` and `f64`.
pub trait Real: Dtype + Send + Sync {
    /// `x` rounded to this type.
    fn of(x: f64) -> Self;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// `√x`.
    fn sqrt(self) -> Self;
    /// The larger of the two (NaN-ignoring, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// `self·a + b` with one rounding (one instruction where FMA is enabled, as inside `pulp`
    /// dispatch; a slow library call elsewhere).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// A `Cpu` gradient buffer as the host vector it is.
    fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self>
    where
        Cpu: Storage<Self>;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            #[inline(always)]
            fn of(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self> {
                v
            }
        }
    };
}
real!(f32);
real!(f64);

/// Elements per rayon task in the elementwise kernels: below this a thread hand-off costs more than it
/// saves.
const GRAIN: usize = 1 << 14;

/// The contiguous host copy of a `Cpu` tensor (physical order = logical order).
fn host<S: Shape, F: Real, T>(x: &Tensor<S, F, Cpu, T>) -> Vec<F>
where
    Cpu: Device<F>,
{
    let mut v = vec![F::default(); x.shape().num_elements()];
    x.copy_into(&mut v);
    v
}

/// A new tensor (new id) from a host buffer of `shape.num_elements()` values.
fn upload<S: Shape, F: Real>(dev: &Cpu, data: Vec<F>, shape: S) -> Tensor<S, F, Cpu>
where
    Cpu: Device<F>,
{
    dev.try_tensor_from_vec(data, shape)
        .expect("a kernel's output buffer has its shape's length")
}

macro_rules! cpu_kernels {
    ($t:ty) => {
        impl Kernels<$t> for Cpu {
            fn gelu<S: Shape, T: Tape<$t, Self>>(
                x: Tensor<S, $t, Self, T>,
            ) -> Tensor<S, $t, Self, T> {
                if host_enabled() && x.shape().num_elements() > 0 {
                    gelu::cpu(x)
                } else {
                    composed::gelu(x)
                }
            }

            fn norm_modulate<T: Tape<$t, Self>>(
                x: Act<$t, Self, T>,
                gamma: Tensor<(usize,), $t, Self>,
                shift: Tensor<(usize, usize), $t, Self, T>,
                scale: Tensor<(usize, usize), $t, Self, T>,
                eps: f64,
            ) -> Act<$t, Self, T> {
                if host_enabled() && x.shape().num_elements() > 0 {
                    norm_modulate::cpu(x, gamma, shift, scale, eps)
                } else {
                    composed::norm_modulate(x, gamma, shift, scale, eps)
                }
            }

            fn rope<T: Tape<$t, Self>>(
                x: Heads<$t, Self, T>,
                cos: &Tensor<(usize, usize), $t, Self>,
                sin: &Tensor<(usize, usize), $t, Self>,
            ) -> Heads<$t, Self, T> {
                if host_enabled() && x.shape().num_elements() > 0 {
                    rope::cpu(x, cos, sin)
                } else {
                    composed::rope(x, cos, sin)
                }
            }

            fn attention<T: Tape<$t, Self>>(
                q: Heads<$t, Self, T>,
                k: Heads<$t, Self, T>,
                v: Heads<$t, Self, T>,
                alpha: f64,
            ) -> Act<$t, Self, T> {
                if host_enabled() && q.shape().num_elements() > 0 {
                    attention::cpu(q, k, v, alpha)
                } else {
                    composed::attention(q, k, v, alpha)
                }
            }
        }
    };
}
cpu_kernels!(f32);
cpu_kernels!(f64);

#[cfg(feature = "cuda")]
impl Kernels<f32> for Cuda {}
#[cfg(feature = "cuda")]
impl Kernels<f64> for Cuda {}
