//! `dnaconv`: the convolutional backbone of the DNA enhancer diffusion models of DRAKES/SEPO (an MDLM
//! over 200-bp sequences, "subs" parameterisation, not time-conditioned), as a sepo [`ScoreModel`].
//!
//! ```text
//! x = onehot(tokens) over N = 5 states (A, C, G, T, mask)                       [B, L, N]
//! e = ReLU(W_t · [sin(2π t ω), cos(2π t ω)] + b_t)      (ω: H/2 fixed frequencies) [B, H]
//! f = ReLU(conv_in(x))                                   (kernel 9, padding 4)    [B, L, H]
//! for i in 0..5S:  h = LayerNorm_i(f + A_i e + a_i);  f = f + ReLU(conv_i(h))
//!                  (kernel 9, dilation 1,1,4,16,64, each repeated S times in a row)
//! ℓ = conv_out2(ReLU(conv_out1(f)))                      (kernel 1)               [B, L, N]
//! log s = ScoreHead::Absorbing(ℓ, x, σ̄)
//! ```
//!
//! `t` is 0 when the model is not time-conditioned (MDLM zeroes σ before the backbone), else σ̄.
//!
//! **"subs" → concrete score.** MDLM's "subs" output is `log p_θ(x₀ = v | x_t)`: the logits with the
//! mask column at −∞, log-softmaxed, and the carry-over `δ_{x_l}` at unmasked positions. The absorbing
//! process with total noise σ̄ keeps a token with probability `α = e^{−σ̄}`, so at a masked position
//! `p_t(x^{l←v}) / p_t(x) = α·p₀(v | x_U) / (1 − α) = p₀(v | x_U)/(e^{σ̄} − 1)`:
//! `log s_v = log p_θ(x₀ = v | x_t) − log(e^{σ̄} − 1)`, exactly what [`ScoreHead::Absorbing`] computes
//! at masked positions from the same logits (softmax over the real tokens). At unmasked positions
//! MDLM's carry-over implies no move (score `e^{−10⁶}`); sepo's head reports the trunk's own ratio
//! `q_v/q_{x_l}` there instead (see [`ScoreHead::Absorbing`]): no loss supervises and no sampler
//! reads these entries. The network is not time-conditioned, so `p_θ(x₀ | x_t)` does not depend on σ̄
//! and σ̄ enters only through `−log(e^{σ̄} − 1)`.
//!
//! Parameters carry PyTorch's names and layouts (`linear.weight [H, 5, 9]`, `convs.{i}.weight`,
//! `time_layers.{i}.dense.weight [H, H]` as `[out, in]`, `norms.{i}.weight`, `final_conv.{0,2}.*`), so
//! a published state dict loads without renaming ([`DnaConv::load`]).

mod conv;
mod io;

pub use conv::{im2col_rows, Conv1d};
pub use io::DNACONV_DILATIONS;

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::{upload_f64s, Init, LayerNorm, ParamId, ParamStore};
use crate::score::{LogScores, ScoreHead, ScoreModel, Tokens};

/// Sizes of a [`DnaConv`] (the names of the published `dnaconv` config in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DnaConvConfig {
    /// Number of states `N`, the mask included (`alphabet_size`, 5 for DNA); the mask is the last.
    pub vocab: usize,
    /// Longest sequence accepted (`length`, 200).
    pub len: usize,
    /// Channels `H` (`hidden_dim`, 128); even (the Fourier features are `H/2` sines and cosines).
    pub hidden: usize,
    /// Repeats `S` of each of the five dilated layers (`num_cnn_stacks`, 4): `5·S` layers.
    pub stacks: usize,
    /// Whether the backbone sees `t = σ̄` (`time_conditioning`; `false`: it sees `t = 0`).
    pub time_conditioning: bool,
}

impl DnaConvConfig {
    /// The published DRAKES/SEPO enhancer model: 5 states, 200 bp, `H = 128`, 4 stacks, not
    /// time-conditioned.
    pub fn drakes() -> Self {
        Self {
            vocab: 5,
            len: 200,
            hidden: 128,
            stacks: 4,
            time_conditioning: false,
        }
    }

    /// Validates the sizes; the error names the offending field.
    pub fn check(&self) -> Result<()> {
        if self.vocab < 2 {
            return Err(Error::invalid("vocab", self.vocab, "must be ≥ 2"));
        }
        crate::check::nonzero("len", self.len)?;
        crate::check::nonzero("stacks", self.stacks)?;
        if self.hidden < 2 || !self.hidden.is_multiple_of(2) {
            return Err(Error::invalid(
                "hidden",
                self.hidden,
                "must be even and ≥ 2 (H/2 Fourier frequencies)",
            ));
        }
        if self.num_params() as f64 > crate::check::MAX_ELEMENTS as f64 {
            return Err(Error::invalid(
                "DnaConvConfig",
                format!("{self:?}"),
                "too many parameters (check::MAX_ELEMENTS)",
            ));
        }
        Ok(())
    }

    /// Number of conv layers `5·S`.
    pub fn layers(&self) -> usize {
        5 * self.stacks
    }

    /// Number of trainable scalars (the fixed Fourier frequencies excluded).
    pub fn num_params(&self) -> usize {
        let (n, h) = (self.vocab, self.hidden);
        let conv9 = h * h * 9 + h;
        let per_layer = conv9 + (h * h + h) + 2 * h;
        (h * n * 9 + h) + (h * h + h) + self.layers() * per_layer + (h * h + h) + (n * h + n)
    }
}

/// The `dnaconv` score model (module docs). Its trainable weights live in its [`ParamStore`]; the
/// Gaussian Fourier frequencies `ω` (`time_embedder.0.W`, not trainable in the original) are a fixed
/// buffer.
#[derive(Debug, Clone)]
pub struct DnaConv<E: Dtype, D: Device<E>> {
    config: DnaConvConfig,
    store: ParamStore<E, D>,
    fourier: Vec<f64>,
    input: Conv1d,
    time_weight: ParamId,
    time_bias: ParamId,
    convs: Vec<Conv1d>,
    time_layers: Vec<(ParamId, ParamId)>,
    norms: Vec<LayerNorm>,
    out1: Conv1d,
    out2: Conv1d,
}

/// Registers a `Conv1d` under PyTorch's names, `U(−1/√(C·K), 1/√(C·K))` weights and zero bias.
fn conv<E: Dtype, D: Device<E>>(
    store: &mut ParamStore<E, D>,
    name: &str,
    (c_in, c_out, kernel, dilation): (usize, usize, usize, usize),
) -> Result<Conv1d> {
    let bound = 1.0 / ((c_in * kernel) as f64).sqrt();
    Ok(Conv1d {
        weight: store.add(
            format!("{name}.weight"),
            &[c_out, c_in, kernel],
            Init::Uniform { bound },
        )?,
        bias: store.add(format!("{name}.bias"), &[c_out], Init::Zeros)?,
        c_in,
        c_out,
        kernel,
        dilation,
    })
}

/// Registers a PyTorch `Linear(h, h)` (`weight [out, in]`, `bias [out]`).
fn linear<E: Dtype, D: Device<E>>(
    store: &mut ParamStore<E, D>,
    name: &str,
    h: usize,
) -> Result<(ParamId, ParamId)> {
    let bound = 1.0 / (h as f64).sqrt();
    Ok((
        store.add(format!("{name}.weight"), &[h, h], Init::Uniform { bound })?,
        store.add(format!("{name}.bias"), &[h], Init::Zeros)?,
    ))
}

impl<E: Dtype, D: Device<E>> DnaConv<E, D> {
    /// Checks `config` and builds an untrained network on `dev`, initialised from `seed` (uniform
    /// weights of PyTorch's default scale, zero biases, unit LayerNorms, `ω ~ N(0, 30²)` as the
    /// original's Fourier projection).
    pub fn new(config: DnaConvConfig, dev: &D, seed: u64) -> Result<Self> {
        config.check()?;
        let (n, h) = (config.vocab, config.hidden);
        let mut store = ParamStore::new(dev, seed);
        let input = conv(&mut store, "linear", (n, h, 9, 1))?;
        let (time_weight, time_bias) = linear(&mut store, "time_embedder.1", h)?;
        let mut convs = Vec::with_capacity(config.layers());
        for (t, &d) in io::DNACONV_DILATIONS.iter().enumerate() {
            for s in 0..config.stacks {
                let i = t * config.stacks + s;
                convs.push(conv(&mut store, &format!("convs.{i}"), (h, h, 9, d))?);
            }
        }
        let mut time_layers = Vec::with_capacity(config.layers());
        let mut norms = Vec::with_capacity(config.layers());
        for i in 0..config.layers() {
            time_layers.push(linear(&mut store, &format!("time_layers.{i}.dense"), h)?);
            norms.push(LayerNorm::new(&mut store, &format!("norms.{i}"), h, true)?);
        }
        let out1 = conv(&mut store, "final_conv.0", (h, h, 1, 1))?;
        let out2 = conv(&mut store, "final_conv.2", (h, n, 1, 1))?;
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        let fourier = (0..h / 2)
            .map(|_| {
                30.0 * rand_distr::Distribution::<f64>::sample(
                    &rand_distr::StandardNormal,
                    &mut rng,
                )
            })
            .collect();
        Ok(Self {
            config,
            store,
            fourier,
            input,
            time_weight,
            time_bias,
            convs,
            time_layers,
            norms,
            out1,
            out2,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &DnaConvConfig {
        &self.config
    }

    /// The fixed Fourier frequencies `ω` (`time_embedder.0.W`, `H/2` of them).
    pub fn fourier(&self) -> &[f64] {
        &self.fourier
    }

    /// The time features `[sin(2π t ω_k)]_k ++ [cos(2π t ω_k)]_k` of each sequence, `t = σ̄` when
    /// time-conditioned and `0` otherwise, flat `[B, H]`.
    pub fn time_features(&self, sigma_bar: &[f64]) -> Vec<f64> {
        let h = self.config.hidden;
        let mut out = Vec::with_capacity(sigma_bar.len() * h);
        for &s in sigma_bar {
            let t = if self.config.time_conditioning {
                s
            } else {
                0.0
            };
            let angles: Vec<f64> = self
                .fourier
                .iter()
                .map(|w| 2.0 * std::f64::consts::PI * t * w)
                .collect();
            out.extend(angles.iter().map(|a| a.sin()));
            out.extend(angles.iter().map(|a| a.cos()));
        }
        out
    }

    /// The backbone's logits `ℓ [B, L, N]` (module docs) before the head: MDLM's "subs" reads
    /// `log_softmax` of them with the mask column removed. A failed upload is [`Error::Device`].
    pub fn logits_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let (b, l) = *tokens.shape();
        let (n, h) = (self.config.vocab, self.config.hidden);
        let rows = b * l;
        let dev = params.device().clone();
        // Two tapes, merged at the first addition (as the transformer's σ path and embedding): `tape`
        // on the time path, a fresh one on the constant one-hot input.
        let feats = upload_f64s(
            &dev,
            &self.time_features(sigma_bar),
            (b, h),
            "DnaConv::logits_with (time features)",
        )?;
        let w_t = params.matrix(self.time_weight).permute::<_, Axes2<1, 0>>();
        let emb = (feats.put_tape(tape).matmul(w_t)
            + params
                .vector(self.time_bias)
                .broadcast_like::<_, Axis<0>>(&(b, h)))
        .relu();
        let mut onehot = vec![0.0; rows * n];
        for (i, &x) in tokens.as_vec().iter().enumerate() {
            onehot[i * n + x] = 1.0;
        }
        let x = upload_f64s(&dev, &onehot, (rows, n), "DnaConv::logits_with (one-hot)")?
            .put_tape(T::default());
        // The per-layer shifts `A_i e + a_i` `[B, H]`: every layer reads `e` through a fresh-tape copy
        // except the last, which consumes it, so the time path's own tape (holding `time_embedder`'s
        // ops) reaches the output.
        let shift = |e: Tensor<(usize, usize), E, D, T>, (w, bias): (ParamId, ParamId)| {
            e.matmul(params.matrix(w).permute::<_, Axes2<1, 0>>())
                + params.vector(bias).broadcast_like::<_, Axis<0>>(&(b, h))
        };
        let (init, last) = self.time_layers.split_at(self.time_layers.len() - 1);
        let mut shifts: Vec<_> = init
            .iter()
            .map(|&layer| shift(emb.with_empty_tape(), layer))
            .collect();
        shifts.push(shift(emb, last[0]));
        let mut f = self.input.forward(params, x, b, l)?.relu();
        for ((conv, norm), shift) in self.convs.iter().zip(&self.norms).zip(shifts) {
            let shift = shift
                .broadcast_like::<_, Axis<1>>(&(b, l, h))
                .reshape_like(&(rows, h));
            let y = norm.forward(params, f.with_empty_tape() + shift);
            f = f + conv.forward(params, y, b, l)?.relu();
        }
        let f = self.out1.forward(params, f, b, l)?.relu();
        Ok(self.out2.forward(params, f, b, l)?.reshape_like(&(b, l, n)))
    }
}

impl<E: Dtype, D: Device<E>> ScoreModel for DnaConv<E, D> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.config.vocab
    }

    fn max_len(&self) -> Option<usize> {
        Some(self.config.len)
    }

    fn params(&self) -> &ParamStore<E, D> {
        &self.store
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        &mut self.store
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let logits = self.logits_with(params, tokens, sigma_bar, tape)?;
        ScoreHead::Absorbing.apply(logits, tokens, sigma_bar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro() -> DnaConvConfig {
        DnaConvConfig {
            vocab: 3,
            len: 6,
            hidden: 2,
            stacks: 1,
            time_conditioning: true,
        }
    }

    #[test]
    fn parameter_count_and_names_follow_the_published_layout() {
        let dev = Cpu::default();
        let m = DnaConv::<f32, Cpu>::new(
            DnaConvConfig {
                len: 20,
                hidden: 8,
                ..DnaConvConfig::drakes()
            },
            &dev,
            0,
        )
        .unwrap();
        assert_eq!(m.params().num_elements(), m.config().num_params());
        assert!(m.params().find("convs.19.weight").is_some());
        assert!(m.params().find("time_layers.0.dense.weight").is_some());
        assert!(m.params().find("final_conv.2.bias").is_some());
        // Layer-major order: layers 0..4 have dilation 1 (templates 0 and 1), 8..12 dilation 4.
        let d: Vec<usize> = m.convs.iter().map(|c| c.dilation).collect();
        assert_eq!(&d[..4], &[1, 1, 1, 1]);
        assert_eq!(&d[8..12], &[4, 4, 4, 4]);
        assert_eq!(&d[16..], &[64, 64, 64, 64]);
        assert_eq!(DnaConvConfig::drakes().num_params(), {
            let (h, n) = (128usize, 5usize);
            (h * n * 9 + h)
                + (h * h + h)
                + 20 * (h * h * 9 + h + h * h + h + 2 * h)
                + (h * h + h)
                + (n * h + n)
        });
        assert!(matches!(
            DnaConv::<f32, Cpu>::new(
                DnaConvConfig {
                    hidden: 7,
                    ..micro()
                },
                &dev,
                0
            ),
            Err(Error::InvalidParameter { name: "hidden", .. })
        ));
    }
}
