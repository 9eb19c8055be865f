//! A diffusion transformer in the style of SEDD's DiT (Lou, Meng & Ermon 2024; Peebles & Xie 2023).
//!
//! ```text
//! c = silu(MLP(φ(σ̄)))                                  σ conditioning (cond::SigmaEmbedder)
//! x = E[tokens]                                          token embedding [B, L, D]
//! x ← DitBlock_k(x, c)   k = 1..layers                   adaLN-Zero, RoPE attention, GELU MLP (block.rs)
//! ℓ = W_out modulate(LN(x), W_ada c) + b_out             final adaLN layer, zero-initialised
//! log s = ScoreHead(ℓ, tokens, σ̄)                        [B, L, N]
//! ```
//!
//! No positional embedding besides RoPE on q/k; attention is bidirectional. Every weight is runtime-shaped
//! in a [`ParamStore`] under SEDD's parameter names (`blocks.3.attn_qkv.weight`, …; matrices are stored
//! `[d_in, d_out]`, the transpose of torch's). Dropout is not implemented.

pub mod block;
pub mod cond;
#[cfg(test)]
mod tests;

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::kernels::Kernels;
use crate::nn::{Init, ParamId, ParamStore};
use crate::score::{LogScores, ScoreHead, ScoreModel, Tokens};

use block::{DitBlock, FinalLayer, Rope};
use cond::SigmaEmbedder;

/// Sizes of a [`Transformer`]. Build one with a preset ([`TransformerConfig::tiny`],
/// [`TransformerConfig::mid`], [`TransformerConfig::sedd_small`]) and adjust fields; [`Transformer::new`]
/// validates it with [`TransformerConfig::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransformerConfig {
    /// Number of states `N` (vocabulary, including the mask state for an absorbing graph).
    pub vocab: usize,
    /// Longest sequence accepted (RoPE needs no table, so this is only an input check).
    pub max_len: usize,
    /// Model width `D`.
    pub dim: usize,
    /// Attention heads `H`; `D/H` must be even (RoPE rotates pairs).
    pub heads: usize,
    /// Number of DiT blocks.
    pub layers: usize,
    /// Width of the conditioning vector `c`.
    pub cond_dim: usize,
    /// MLP hidden width as a multiple of `D` (4 in SEDD).
    pub mlp_ratio: usize,
    /// Number of sinusoidal features of σ̄ (even; 256 in SEDD).
    pub freq_dim: usize,
    /// How logits become log-scores.
    pub head: ScoreHead,
    /// Add a learned absolute position embedding `[max_len, D]` to the token embedding. SEDD relies on
    /// RoPE alone (relative positions); on short sequences whose positions have very different
    /// marginals, absolute positions make learning much faster. Off in every preset.
    #[serde(default)]
    pub learned_positions: bool,
}

impl TransformerConfig {
    /// CPU-friendly: `D = 64`, 4 heads, 2 layers, `cond_dim = 64`, 64 σ̄ features.
    pub fn tiny(vocab: usize, max_len: usize, head: ScoreHead) -> Self {
        Self {
            vocab,
            max_len,
            dim: 64,
            heads: 4,
            layers: 2,
            cond_dim: 64,
            mlp_ratio: 4,
            freq_dim: 64,
            head,
            learned_positions: false,
        }
    }

    /// `D = 256`, 8 heads, 4 layers, `cond_dim = 128`, 256 σ̄ features.
    pub fn mid(vocab: usize, max_len: usize, head: ScoreHead) -> Self {
        Self {
            vocab,
            max_len,
            dim: 256,
            heads: 8,
            layers: 4,
            cond_dim: 128,
            mlp_ratio: 4,
            freq_dim: 256,
            head,
            learned_positions: false,
        }
    }

    /// SEDD-small (`configs/model/small.yaml`): GPT-2's 50257 tokens plus the mask, length 1024,
    /// `D = 768`, 12 heads, 12 layers, `cond_dim = 128`, absorbing head.
    pub fn sedd_small() -> Self {
        Self {
            vocab: 50_258,
            max_len: 1024,
            dim: 768,
            heads: 12,
            layers: 12,
            cond_dim: 128,
            mlp_ratio: 4,
            freq_dim: 256,
            head: ScoreHead::Absorbing,
            learned_positions: false,
        }
    }

    /// Validates every size; the error names the first offending field.
    pub fn check(&self) -> Result<()> {
        if self.vocab < 2 {
            return Err(Error::invalid("vocab", self.vocab, "must be ≥ 2"));
        }
        for (name, value) in [
            ("max_len", self.max_len),
            ("dim", self.dim),
            ("heads", self.heads),
            ("layers", self.layers),
            ("cond_dim", self.cond_dim),
            ("mlp_ratio", self.mlp_ratio),
            ("freq_dim", self.freq_dim),
        ] {
            crate::check::nonzero(name, value)?;
        }
        if !self.dim.is_multiple_of(self.heads) {
            return Err(Error::invalid(
                "heads",
                self.heads,
                format!("must divide dim = {}", self.dim),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(Error::invalid(
                "heads",
                self.heads,
                format!(
                    "head width dim/heads = {} must be even for rotary embeddings",
                    self.dim / self.heads
                ),
            ));
        }
        if !self.freq_dim.is_multiple_of(2) {
            return Err(Error::invalid(
                "freq_dim",
                self.freq_dim,
                "must be even (cos and sin halves)",
            ));
        }
        // `num_params` in f64 cannot overflow; below the cap, its usize formulas cannot either.
        let [n, l, d, c, f, layers] = [
            self.vocab,
            self.max_len,
            self.dim,
            self.cond_dim,
            self.freq_dim,
            self.layers,
        ]
        .map(|x| x as f64);
        let hidden = self.mlp_ratio as f64 * d;
        let positions = if self.learned_positions { l * d } else { 0.0 };
        let block = 2.0 * d + 4.0 * d * d + 2.0 * d * hidden + hidden + d + 6.0 * c * d + 6.0 * d;
        let count = n * d
            + positions
            + (f * c + 2.0 * c + c * c)
            + layers * block
            + (d + 2.0 * c * d + 2.0 * d + d * n + n);
        if count > crate::check::MAX_ELEMENTS as f64 {
            return Err(Error::invalid(
                "TransformerConfig",
                format!("{self:?}"),
                format!(
                    "{count:.3e} parameters exceed the cap of {} (check::MAX_ELEMENTS)",
                    crate::check::MAX_ELEMENTS
                ),
            ));
        }
        Ok(())
    }

    /// Width of each head, `D/H`.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Number of scalar parameters, from the sizes alone (allocates nothing):
    /// `N·D` (embedding) + σ map + `layers ×` block + final layer, as [`Transformer::new`] registers them.
    pub fn num_params(&self) -> usize {
        let hidden = self.mlp_ratio * self.dim;
        self.vocab * self.dim
            + usize::from(self.learned_positions) * self.max_len * self.dim
            + SigmaEmbedder::num_params(self.freq_dim, self.cond_dim)
            + self.layers * DitBlock::num_params(self.dim, self.cond_dim, hidden)
            + FinalLayer::num_params(self.dim, self.cond_dim, self.vocab)
    }
}

/// SEDD-style diffusion transformer scoring `N` states (module docs), its weights in its own
/// [`ParamStore`].
#[derive(Debug, Clone)]
pub struct Transformer<E: Dtype, D: Device<E>> {
    config: TransformerConfig,
    store: ParamStore<E, D>,
    vocab_embed: ParamId,
    pos_embed: Option<ParamId>,
    sigma_map: SigmaEmbedder,
    blocks: Vec<DitBlock>,
    output_layer: FinalLayer,
}

impl<E: Dtype, D: Device<E>> Transformer<E, D> {
    /// Checks `config` and builds the network on `dev`, initialised deterministically from `seed`:
    /// embedding `U(±1/√D)` (torch's default for SEDD's `EmbeddingLayer`), linear weights `N(0, 1/d_in)`
    /// with zero biases, norm scales 1, and every adaLN modulation and the output linear at 0.
    pub fn new(config: TransformerConfig, dev: &D, seed: u64) -> Result<Self> {
        config.check()?;
        let TransformerConfig {
            vocab,
            dim,
            heads,
            cond_dim,
            ..
        } = config;
        let mut store = ParamStore::new(dev, seed);
        let vocab_embed = store.add(
            "vocab_embed.embedding",
            &[vocab, dim],
            Init::Uniform {
                bound: 1.0 / (dim as f64).sqrt(),
            },
        )?;
        let pos_embed = if config.learned_positions {
            Some(store.add(
                "pos_embed.embedding",
                &[config.max_len, dim],
                Init::Uniform {
                    bound: 1.0 / (dim as f64).sqrt(),
                },
            )?)
        } else {
            None
        };
        let sigma_map = SigmaEmbedder::new(&mut store, "sigma_map", config.freq_dim, cond_dim)?;
        let blocks = (0..config.layers)
            .map(|i| {
                DitBlock::new(
                    &mut store,
                    &format!("blocks.{i}"),
                    dim,
                    heads,
                    cond_dim,
                    config.mlp_ratio * dim,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let output_layer = FinalLayer::new(&mut store, "output_layer", dim, cond_dim, vocab)?;
        debug_assert_eq!(store.num_elements(), config.num_params());
        Ok(Self {
            config,
            store,
            vocab_embed,
            pos_embed,
            sigma_map,
            blocks,
            output_layer,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }
}

impl<E: Dtype, D: Kernels<E>> ScoreModel for Transformer<E, D> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.config.vocab
    }

    fn max_len(&self) -> Option<usize> {
        Some(self.config.max_len)
    }

    fn params(&self) -> &ParamStore<E, D> {
        &self.store
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        &mut self.store
    }

    fn description(&self) -> Option<crate::score::ModelDescription> {
        Some(crate::score::ModelDescription::of(self))
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let len = tokens.shape().1;
        let rope = Rope::new(params.device(), len, self.config.head_dim())?;
        // `tape` starts at the σ map; the embedding starts a second tape, merged at the first adaLN
        // modulation. `c` feeds every block through `with_empty_tape` and the final layer itself.
        let c = self.sigma_map.forward(params, sigma_bar, tape)?;
        let mut x = params
            .matrix(self.vocab_embed)
            .put_tape(T::default())
            .gather(tokens.clone());
        if let Some(pos) = self.pos_embed {
            let (b, dim) = (tokens.shape().0, self.config.dim);
            let positions = crate::nn::upload(
                params.device(),
                (0..len).collect::<Vec<usize>>(),
                (len,),
                "Transformer::forward_with (positions)",
            )?;
            // The table's gather must be recorded too (its own tape, merged by the addition): an
            // untaped gather would hand the gradient to the gathered copy, never to the table.
            x = x + params
                .matrix(pos)
                .put_tape(T::default())
                .gather(positions)
                .broadcast_like::<_, Axis<0>>(&(b, len, dim));
        }
        for block in &self.blocks {
            x = block.forward(params, x, c.with_empty_tape(), &rope);
        }
        let logits = self.output_layer.forward(params, x, c);
        self.config.head.apply(logits, tokens, sigma_bar)
    }
}
