//! One DiT block with adaLN-Zero (SEDD's `DDiTBlock`), rotary position embedding and the final layer.
//!
//! With `c` the conditioning vector and `(shift₁, scale₁, gate₁, shift₂, scale₂, gate₂) = W_ada c + b_ada`
//! (`W_ada`, `b_ada` zero at init, so every block starts as the identity):
//!
//! ```text
//! x ← x + gate₁ ⊙ W_o · Attn(RoPE(q), RoPE(k), v),  [q k v] = W_qkv · modulate(LN₁(x), shift₁, scale₁)
//! x ← x + gate₂ ⊙ MLP(modulate(LN₂(x), shift₂, scale₂)),  MLP(h) = W₂ gelu_tanh(W₁ h + b₁) + b₂
//! ```
//!
//! with `modulate(h, a, s) = h ⊙ (1 + s) + a` and non-causal softmax attention
//! `Attn(Q, K, V) = softmax(Q Kᵀ/√d_h) V` per head.

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::{upload_f64s, Init, Linear, ParamId, ParamStore};

use crate::nn::kernels::Kernels;

use super::cond::linear3;

/// ε of SEDD's layer norms.
const LN_EPS: f64 = 1e-5;

/// `[B, L, D]` activations.
pub type Act<E, D, T> = Tensor<(usize, usize, usize), E, D, T>;

/// Base of the rotary frequencies (RoFormer, SEDD).
pub const ROPE_BASE: f64 = 10_000.0;

/// Rotary position embedding tables for one sequence length: `cos, sin [L, d_h]`.
///
/// With `h = d_h/2`, `θ_j = base^{−2j/d_h}` and `rot(x) = [−x_{h..}, x_{..h}]` (GPT-NeoX / SEDD "rotate
/// half" layout), position `p` maps `x ↦ x ⊙ cos(p θ) + rot(x) ⊙ sin(p θ)`, the angles repeated over both
/// halves. The map is a rotation of each pair `(x_j, x_{j+h})`, so `⟨RoPE_p(q), RoPE_r(k)⟩` depends on
/// positions only through `p − r`.
#[derive(Debug, Clone)]
pub struct Rope<E: Dtype, D: Device<E>> {
    cos: Tensor<(usize, usize), E, D>,
    sin: Tensor<(usize, usize), E, D>,
}

impl<E: Dtype, D: Device<E>> Rope<E, D> {
    /// Tables for `len` positions and head width `head_dim` (even), computed on the host in f64; a
    /// failed upload is [`crate::Error::Device`].
    pub fn new(dev: &D, len: usize, head_dim: usize) -> Result<Self> {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (
            Vec::with_capacity(len * head_dim),
            Vec::with_capacity(len * head_dim),
        );
        for p in 0..len {
            for _ in 0..2 {
                for j in 0..half {
                    let theta = ROPE_BASE.powf(-2.0 * j as f64 / head_dim as f64);
                    let angle = p as f64 * theta;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        Ok(Self {
            cos: upload_f64s(dev, &cos, (len, head_dim), "Rope::new (cos)")?,
            sin: upload_f64s(dev, &sin, (len, head_dim), "Rope::new (sin)")?,
        })
    }
}

impl<E: Dtype, D: Kernels<E>> Rope<E, D> {
    /// Rotates `x [B, L, H, d_h]` (the tables' `L` and `d_h`) with [`Kernels::rope`].
    pub fn apply<T: Tape<E, D>>(
        &self,
        x: Tensor<(usize, usize, usize, usize), E, D, T>,
    ) -> Tensor<(usize, usize, usize, usize), E, D, T> {
        D::rope(x, &self.cos, &self.sin)
    }
}

/// Parameter ids of one DiT block.
#[derive(Debug, Clone, Copy)]
pub struct DitBlock {
    /// LN₁ scale γ `[D]` (ones).
    pub norm1: ParamId,
    /// `W_qkv: D → 3D`, no bias; output columns `[q | k | v]`, each head-major.
    pub attn_qkv: Linear,
    /// `W_o: D → D`, no bias.
    pub attn_out: Linear,
    /// LN₂ scale γ `[D]` (ones).
    pub norm2: ParamId,
    /// `W₁: D → mlp_ratio·D` with bias.
    pub mlp_in: Linear,
    /// `W₂: mlp_ratio·D → D` with bias.
    pub mlp_out: Linear,
    /// adaLN-Zero `cond_dim → 6D` (zero weight and bias).
    pub ada: Linear,
    /// Number of heads `H`.
    pub heads: usize,
}

impl DitBlock {
    /// Registers the block's parameters under `<name>.*` (SEDD's names).
    pub fn new<E: Dtype, D: Device<E>>(
        store: &mut ParamStore<E, D>,
        name: &str,
        dim: usize,
        heads: usize,
        cond_dim: usize,
        mlp_hidden: usize,
    ) -> Result<Self> {
        let normal = |d_in: usize| {
            Some(Init::Normal {
                std: (1.0 / d_in as f64).sqrt(),
            })
        };
        Ok(Self {
            norm1: store.add(format!("{name}.norm1.weight"), &[dim], Init::Ones)?,
            attn_qkv: Linear::new(
                store,
                &format!("{name}.attn_qkv"),
                dim,
                3 * dim,
                false,
                normal(dim),
            )?,
            attn_out: Linear::new(
                store,
                &format!("{name}.attn_out"),
                dim,
                dim,
                false,
                normal(dim),
            )?,
            norm2: store.add(format!("{name}.norm2.weight"), &[dim], Init::Ones)?,
            mlp_in: Linear::new(
                store,
                &format!("{name}.mlp.0"),
                dim,
                mlp_hidden,
                true,
                normal(dim),
            )?,
            mlp_out: Linear::new(
                store,
                &format!("{name}.mlp.2"),
                mlp_hidden,
                dim,
                true,
                normal(mlp_hidden),
            )?,
            ada: Linear::new(
                store,
                &format!("{name}.adaLN_modulation"),
                cond_dim,
                6 * dim,
                true,
                Some(Init::Zeros),
            )?,
            heads,
        })
    }

    /// Number of scalar parameters of a block.
    pub fn num_params(dim: usize, cond_dim: usize, mlp_hidden: usize) -> usize {
        let norms = 2 * dim;
        let attn = dim * 3 * dim + dim * dim;
        let mlp = dim * mlp_hidden + mlp_hidden + mlp_hidden * dim + dim;
        let ada = cond_dim * 6 * dim + 6 * dim;
        norms + attn + mlp + ada
    }

    /// `x [B, L, D] → x [B, L, D]` conditioned on `c [B, cond_dim]` (module docs).
    pub fn forward<E: Dtype, D: Kernels<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        x: Act<E, D, T>,
        c: Tensor<(usize, usize), E, D, T>,
        rope: &Rope<E, D>,
    ) -> Act<E, D, T> {
        let dim = self.attn_out.d_out;
        let m = self.ada.forward(store, c);
        let (shift1, scale1, gate1) = (chunk(&m, 0, dim), chunk(&m, 1, dim), chunk(&m, 2, dim));
        let (shift2, scale2) = (chunk(&m, 3, dim), chunk(&m, 4, dim));
        // The last piece takes `m` itself, carrying the tape of the modulation's own ops.
        let gate2 = m.slice((.., 5 * dim..));
        let shape = *x.shape();

        let h = D::norm_modulate(
            x.with_empty_tape(),
            store.vector(self.norm1),
            shift1,
            scale1,
            LN_EPS,
        );
        let a = linear3(store, &self.attn_out, self.attention(store, h, rope));
        let x = x + a * gate1.broadcast_like::<_, Axis<1>>(&shape);

        let h = D::norm_modulate(
            x.with_empty_tape(),
            store.vector(self.norm2),
            shift2,
            scale2,
            LN_EPS,
        );
        let h = D::gelu(linear3(store, &self.mlp_in, h));
        let h = linear3(store, &self.mlp_out, h);
        x + h * gate2.broadcast_like::<_, Axis<1>>(&shape)
    }

    /// Multi-head non-causal self-attention `[B, L, D] → [B, L, D]` before the output projection.
    fn attention<E: Dtype, D: Kernels<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        h: Act<E, D, T>,
        rope: &Rope<E, D>,
    ) -> Act<E, D, T> {
        let (b, l, dim) = *h.shape();
        let (heads, head_dim) = (self.heads, dim / self.heads);
        let qkv = linear3(store, &self.attn_qkv, h);
        let split = (b, l, heads, head_dim);
        // Three disjoint slices are the only readers of `qkv` (see `chunk` on dfdx's slice backward).
        let q = qkv.with_empty_tape().slice((.., .., 0..dim));
        let k = qkv.with_empty_tape().slice((.., .., dim..2 * dim));
        let v = qkv.slice((.., .., 2 * dim..));
        let q = rope.apply(q.reshape_like(&split));
        let k = rope.apply(k.reshape_like(&split));
        D::attention(q, k, v.reshape_like(&split), 1.0 / (head_dim as f64).sqrt())
    }
}

/// SEDD's `DDitFinalLayer`: `logits = W_out · modulate(LN(x), shift, scale) + b_out` with
/// `(shift, scale) = W_ada c + b_ada`; `W_ada, b_ada, W_out, b_out` are zero at init, so the network
/// starts at all-zero logits.
#[derive(Debug, Clone, Copy)]
pub struct FinalLayer {
    /// LN scale γ `[D]` (ones).
    pub norm: ParamId,
    /// adaLN `cond_dim → 2D` (zeros).
    pub ada: Linear,
    /// `D → N` (zeros).
    pub linear: Linear,
}

impl FinalLayer {
    /// Registers `<name>.norm_final`, `<name>.adaLN_modulation` and `<name>.linear`.
    pub fn new<E: Dtype, D: Device<E>>(
        store: &mut ParamStore<E, D>,
        name: &str,
        dim: usize,
        cond_dim: usize,
        vocab: usize,
    ) -> Result<Self> {
        Ok(Self {
            norm: store.add(format!("{name}.norm_final.weight"), &[dim], Init::Ones)?,
            ada: Linear::new(
                store,
                &format!("{name}.adaLN_modulation"),
                cond_dim,
                2 * dim,
                true,
                Some(Init::Zeros),
            )?,
            linear: Linear::new(
                store,
                &format!("{name}.linear"),
                dim,
                vocab,
                true,
                Some(Init::Zeros),
            )?,
        })
    }

    /// Number of scalar parameters.
    pub fn num_params(dim: usize, cond_dim: usize, vocab: usize) -> usize {
        dim + cond_dim * 2 * dim + 2 * dim + dim * vocab + vocab
    }

    /// `x [B, L, D] → logits [B, L, N]`.
    pub fn forward<E: Dtype, D: Kernels<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        x: Act<E, D, T>,
        c: Tensor<(usize, usize), E, D, T>,
    ) -> Act<E, D, T> {
        let dim = self.linear.d_in;
        let m = self.ada.forward(store, c);
        let shift = chunk(&m, 0, dim);
        let scale = m.slice((.., dim..));
        let h = D::norm_modulate(x, store.vector(self.norm), shift, scale, LN_EPS);
        linear3(store, &self.linear, h)
    }
}

/// Column block `i` of width `w` of `m [B, n·w]`, read through `with_empty_tape` (same id, so its
/// gradient accumulates on `m`). The caller takes the last block from `m` itself, whose tape holds the
/// ops that produced `m`. The blocks must be disjoint and the only readers of `m`: dfdx 0.13's CPU
/// `slice` backward assigns rather than adds (see [`crate::nn::kernels::composed::rope`]).
fn chunk<E: Dtype, D: Device<E>, T: Tape<E, D>>(
    m: &Tensor<(usize, usize), E, D, T>,
    i: usize,
    w: usize,
) -> Tensor<(usize, usize), E, D, T> {
    m.with_empty_tape().slice((.., i * w..(i + 1) * w))
}
