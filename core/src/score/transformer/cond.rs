//! Noise conditioning: sinusoidal features of the total noise σ̄ and SEDD's `TimestepEmbedder`.
//!
//! The helpers [`silu`] and [`linear3`] live here too: small composite ops over dfdx tensors that the
//! blocks and the final layer use. Layer norm with adaLN modulation, GELU, RoPE and attention are
//! [`crate::nn::kernels::Kernels`] methods (host kernels on `Cpu`).

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::{upload_f64s, Init, Linear, ParamStore};

/// Sinusoidal features `[rows, dim]` of scalar inputs `t` (DiT / SEDD `timestep_embedding`):
/// with `h = dim/2` and `ω_j = P^{−j/h}` (`j < h`, `P = max_period`),
/// `φ(t) = [cos(t ω_0), …, cos(t ω_{h−1}), sin(t ω_0), …, sin(t ω_{h−1})]`.
///
/// `dim` must be even (checked by the configs that use it). Row-major, on the host.
pub fn sinusoidal_features(t: &[f64], dim: usize, max_period: f64) -> Vec<f64> {
    let half = dim / 2;
    let freqs: Vec<f64> = (0..half)
        .map(|j| (-(max_period.ln()) * j as f64 / half as f64).exp())
        .collect();
    let mut out = Vec::with_capacity(t.len() * dim);
    for &x in t {
        out.extend(freqs.iter().map(|w| (x * w).cos()));
        out.extend(freqs.iter().map(|w| (x * w).sin()));
    }
    out
}

/// `silu(x) = x·sigmoid(x)` (the taped `x` stays on the left; `sigmoid(x)` has a new id, so the two
/// operands never share one).
pub fn silu<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    x: Tensor<S, E, D, T>,
) -> Tensor<S, E, D, T> {
    let gate = x.with_empty_tape().sigmoid();
    x * gate
}

/// A [`Linear`] on `[B, L, d_in]`: flattened to `[B·L, d_in]` (free for a contiguous tensor) so the
/// product is one GEMM instead of `B` small ones.
pub fn linear3<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    store: &ParamStore<E, D>,
    lin: &Linear,
    x: Tensor<(usize, usize, usize), E, D, T>,
) -> Tensor<(usize, usize, usize), E, D, T> {
    let (b, l, _) = *x.shape();
    lin.forward(store, x.reshape_like(&(b * l, lin.d_in)))
        .reshape_like(&(b, l, lin.d_out))
}

/// SEDD's `TimestepEmbedder` followed by its outer SiLU: the conditioning vector
/// `c = silu(W₂ silu(W₁ φ(σ̄) + b₁) + b₂)`, `φ` = [`sinusoidal_features`] of σ̄ itself
/// (`freq_dim` features, period up to 10⁴).
#[derive(Debug, Clone, Copy)]
pub struct SigmaEmbedder {
    /// `freq_dim → cond_dim`.
    pub lin1: Linear,
    /// `cond_dim → cond_dim`.
    pub lin2: Linear,
    /// Number of sinusoidal features.
    pub freq_dim: usize,
}

/// Longest period of the sinusoidal σ̄ features (DiT's 10⁴).
pub const MAX_PERIOD: f64 = 10_000.0;

impl SigmaEmbedder {
    /// Registers `<name>.mlp.0` and `<name>.mlp.2` (SEDD's names) with default [`Linear`] init.
    pub fn new<E: Dtype, D: Device<E>>(
        store: &mut ParamStore<E, D>,
        name: &str,
        freq_dim: usize,
        cond_dim: usize,
    ) -> Result<Self> {
        let normal = |d_in: usize| {
            Some(Init::Normal {
                std: (1.0 / d_in as f64).sqrt(),
            })
        };
        Ok(Self {
            lin1: Linear::new(
                store,
                &format!("{name}.mlp.0"),
                freq_dim,
                cond_dim,
                true,
                normal(freq_dim),
            )?,
            lin2: Linear::new(
                store,
                &format!("{name}.mlp.2"),
                cond_dim,
                cond_dim,
                true,
                normal(cond_dim),
            )?,
            freq_dim,
        })
    }

    /// `c [B, cond_dim]` for `sigma_bar [B]`; the tape starts on the (constant) features, so the first
    /// recorded op is the product with `W₁`. A failed upload is [`crate::Error::Device`].
    pub fn forward<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<Tensor<(usize, usize), E, D, T>> {
        let feats = sinusoidal_features(sigma_bar, self.freq_dim, MAX_PERIOD);
        let feats = upload_f64s(
            store.device(),
            &feats,
            (sigma_bar.len(), self.freq_dim),
            "SigmaEmbedder::forward (features)",
        )?
        .put_tape(tape);
        let h = silu(self.lin1.forward(store, feats));
        Ok(silu(self.lin2.forward(store, h)))
    }

    /// Number of scalar parameters.
    pub fn num_params(freq_dim: usize, cond_dim: usize) -> usize {
        freq_dim * cond_dim + cond_dim + cond_dim * cond_dim + cond_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinusoids_match_the_dit_formula() {
        let f = sinusoidal_features(&[0.0, 2.0], 4, 100.0);
        // ω = [1, 100^{-1/2}] = [1, 0.1].
        let expect = [
            1.0,
            1.0,
            0.0,
            0.0,
            2f64.cos(),
            0.2f64.cos(),
            2f64.sin(),
            0.2f64.sin(),
        ];
        for (a, b) in f.iter().zip(expect) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-15);
        }
    }
}
