//! A small MLP score model for tiny state spaces (a handful of states, a handful of positions).
//!
//! ```text
//! x₀ = [onehot(x_1), …, onehot(x_L), φ(σ̄)]                     [B, L·N + 1 + 2K]
//! h₁ = a(x₀ W₀ + b₀),  h_{k+1} = a(h_k W_k + b_k)  (depth layers, width H)
//! ℓ = h W_out + b_out  reshaped to [B, L, N]                    (W_out, b_out zero at init)
//! log s = ScoreHead(ℓ, x, σ̄)
//! ```
//!
//! The noise features of `u = ln max(σ̄, 10⁻⁹)` are `φ(σ̄) = [u/8, sin(u/2^k), cos(u/2^k)]` for
//! `k = 0..K`: log-scale, because the uniform graph's scores scale like `σ̄` as `σ̄ → 0`, and the log-score
//! must follow `ln σ̄` over decades; a few slow sinusoids add smooth non-monotone features.

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::{upload_f64s, Init, Linear, ParamStore};
use crate::score::{LogScores, ScoreHead, ScoreModel, Tokens};

/// Smallest σ̄ the noise features resolve: `ln` is taken of `max(σ̄, SIGMA_FLOOR)`.
pub const SIGMA_FLOOR: f64 = 1e-9;

/// Smooth activation of the hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// `gelu(x) ≈ x/2·(1 + tanh(√(2/π)(x + 0.044715x³)))` (the tanh form, as SEDD).
    Gelu,
    /// `tanh(x)`.
    Tanh,
    /// `silu(x) = x·sigmoid(x)`.
    Silu,
}

impl Activation {
    fn apply<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        self,
        x: Tensor<(usize, usize), E, D, T>,
    ) -> Tensor<(usize, usize), E, D, T> {
        match self {
            Activation::Gelu => x.fast_gelu(),
            Activation::Tanh => x.tanh(),
            Activation::Silu => super::transformer::cond::silu(x),
        }
    }
}

/// Sizes of an [`Mlp`]: presets [`MlpConfig::tiny`] and [`MlpConfig::small`], validated by
/// [`MlpConfig::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MlpConfig {
    /// Number of states `N` (including the mask state for an absorbing graph).
    pub vocab: usize,
    /// The one sequence length `L` it accepts.
    pub len: usize,
    /// Hidden width `H`.
    pub hidden: usize,
    /// Number of hidden layers (≥ 1).
    pub depth: usize,
    /// Number `K` of sinusoid pairs in the noise features (module docs); 0 keeps only `u/8`.
    pub sigma_freqs: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// How logits become log-scores.
    pub head: ScoreHead,
}

impl MlpConfig {
    /// `H = 128`, 2 hidden layers, `K = 4`, GELU.
    pub fn tiny(vocab: usize, len: usize, head: ScoreHead) -> Self {
        Self {
            vocab,
            len,
            hidden: 128,
            depth: 2,
            sigma_freqs: 4,
            activation: Activation::Gelu,
            head,
        }
    }

    /// `H = 256`, 3 hidden layers, `K = 4`, GELU.
    pub fn small(vocab: usize, len: usize, head: ScoreHead) -> Self {
        Self {
            hidden: 256,
            depth: 3,
            ..Self::tiny(vocab, len, head)
        }
    }

    /// Validates every size; the error names the offending field.
    pub fn check(&self) -> Result<()> {
        if self.vocab < 2 {
            return Err(Error::invalid("vocab", self.vocab, "must be ≥ 2"));
        }
        crate::check::nonzero("len", self.len)?;
        crate::check::nonzero("hidden", self.hidden)?;
        crate::check::nonzero("depth", self.depth)?;
        // The count in f64 cannot overflow; below the cap, the usize formulas cannot either.
        let (n, l, h) = (self.vocab as f64, self.len as f64, self.hidden as f64);
        let input = l * n + 1.0 + 2.0 * self.sigma_freqs as f64;
        let count = input * h + h + (self.depth as f64 - 1.0) * (h * h + h) + h * l * n + l * n;
        if count > crate::check::MAX_ELEMENTS as f64 {
            return Err(Error::invalid(
                "MlpConfig",
                format!("{self:?}"),
                format!(
                    "{count:.3e} parameters exceed the cap of {} (check::MAX_ELEMENTS)",
                    crate::check::MAX_ELEMENTS
                ),
            ));
        }
        Ok(())
    }

    /// Number of noise features `1 + 2K`.
    pub fn num_sigma_features(&self) -> usize {
        1 + 2 * self.sigma_freqs
    }

    /// Input width `L·N + 1 + 2K`.
    pub fn input_width(&self) -> usize {
        self.len * self.vocab + self.num_sigma_features()
    }

    /// Number of scalar parameters, from the sizes alone.
    pub fn num_params(&self) -> usize {
        let (i, h, o) = (self.input_width(), self.hidden, self.len * self.vocab);
        i * h + h + (self.depth - 1) * (h * h + h) + h * o + o
    }
}

/// The noise features `φ(σ̄)` of one σ̄ (module docs).
pub fn sigma_features(sigma_bar: f64, freqs: usize) -> Vec<f64> {
    let u = sigma_bar.max(SIGMA_FLOOR).ln();
    let mut out = Vec::with_capacity(1 + 2 * freqs);
    out.push(u / 8.0);
    for k in 0..freqs {
        let w = 0.5f64.powi(k as i32);
        out.push((u * w).sin());
        out.push((u * w).cos());
    }
    out
}

/// MLP score model over fixed-length sequences (module docs), its weights in its own [`ParamStore`]
/// (`layers.{k}.weight/bias`, `output.weight/bias`).
#[derive(Debug, Clone)]
pub struct Mlp<E: Dtype, D: Device<E>> {
    config: MlpConfig,
    store: ParamStore<E, D>,
    layers: Vec<Linear>,
    output: Linear,
}

impl<E: Dtype, D: Device<E>> Mlp<E, D> {
    /// Checks `config` and builds the network on `dev`, initialised from `seed`: hidden weights
    /// `N(0, 1/d_in)`, zero biases, zero output layer (the untrained model outputs zero logits).
    pub fn new(config: MlpConfig, dev: &D, seed: u64) -> Result<Self> {
        config.check()?;
        let mut store = ParamStore::new(dev, seed);
        let mut layers = Vec::with_capacity(config.depth);
        let mut d_in = config.input_width();
        for k in 0..config.depth {
            let init = Init::Normal {
                std: (1.0 / d_in as f64).sqrt(),
            };
            layers.push(Linear::new(
                &mut store,
                &format!("layers.{k}"),
                d_in,
                config.hidden,
                true,
                Some(init),
            )?);
            d_in = config.hidden;
        }
        let output = Linear::new(
            &mut store,
            "output",
            config.hidden,
            config.len * config.vocab,
            true,
            Some(Init::Zeros),
        )?;
        Ok(Self {
            config,
            store,
            layers,
            output,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }
}

impl<E: Dtype, D: Device<E>> ScoreModel for Mlp<E, D> {
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

    fn description(&self) -> Option<crate::score::ModelDescription> {
        Some(crate::score::ModelDescription::of(self))
    }

    /// As the trait's, and the length must be exactly `len` (the input layer is position-wise).
    fn check_input(
        &self,
        tokens: &[usize],
        batch: usize,
        seq_len: usize,
        sigma_bar: &[f64],
    ) -> Result<()> {
        crate::check::tokens(tokens, batch, seq_len, self.config.vocab)?;
        crate::check::sigmas(sigma_bar, batch)?;
        if seq_len != self.config.len {
            return Err(Error::ShapeMismatch {
                op: "Mlp::check_input (sequence length)",
                expected: vec![self.config.len],
                got: vec![seq_len],
            });
        }
        Ok(())
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let logits = self.logits_with(params, tokens, sigma_bar, tape)?;
        self.config.head.apply(logits, tokens, sigma_bar)
    }
}

impl<E: Dtype, D: Device<E>> Mlp<E, D> {
    /// The raw logits `ℓ [B, L, N]` before the [`ScoreHead`] (`forward_with = head(logits_with)`): the
    /// network's own per-position distribution `softmax(ℓ)` over the real tokens, read directly by
    /// the tests that check what the head and the clean-score readers make of it. A failed upload of
    /// the input is [`Error::Device`].
    pub fn logits_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let (b, l) = *tokens.shape();
        let n = self.config.vocab;
        let width = self.config.input_width();
        let mut input = vec![0.0; b * width];
        for (i, &x) in tokens.as_vec().iter().enumerate() {
            let (row, pos) = (i / l, i % l);
            input[row * width + pos * n + x] = 1.0;
        }
        for (row, &s) in sigma_bar.iter().enumerate() {
            let feats = sigma_features(s, self.config.sigma_freqs);
            input[row * width + l * n..(row + 1) * width].copy_from_slice(&feats);
        }
        // The tape starts on the constant input, the left operand of the first product.
        let mut h = upload_f64s(
            params.device(),
            &input,
            (b, width),
            "Mlp::logits_with (input)",
        )?
        .put_tape(tape);
        for lin in &self.layers {
            h = self.config.activation.apply(lin.forward(params, h));
        }
        Ok(self.output.forward(params, h).reshape_like(&(b, l, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_gradient;
    use crate::nn::{AdamW, Grads};
    use crate::score::head::log_expm1;
    use crate::score::testing::{perturb, WeightedScores};

    fn micro(head: ScoreHead) -> MlpConfig {
        MlpConfig {
            vocab: 5,
            len: 3,
            hidden: 6,
            depth: 2,
            sigma_freqs: 2,
            activation: Activation::Gelu,
            head,
        }
    }

    #[test]
    fn shape_pinned_zeros_finite_and_absorbing_normalisation() {
        let dev = Cpu::default();
        let (n, l, mask) = (5, 3, 4);
        let tokens = [0, 4, 2, 4, 4, 1, 3, 3, 0];
        for head in [ScoreHead::Absorbing, ScoreHead::Uniform] {
            let mut model = Mlp::<f64, Cpu>::new(micro(head), &dev, 1).unwrap();
            perturb(model.params_mut(), 2, 0.5);
            for sigma in [1e-4, 0.5, 10.0] {
                let ids = dev.tensor_from_vec(tokens.to_vec(), (3, l));
                let out = model.forward(&ids, &[sigma; 3], NoneTape).unwrap();
                assert_eq!(*out.shape(), (3, l, n));
                let s = out.as_vec();
                for (i, &x) in tokens.iter().enumerate() {
                    let row = &s[i * n..(i + 1) * n];
                    assert!(row.iter().all(|v| v.is_finite()), "{head:?} σ̄={sigma}");
                    assert_eq!(row[x], 0.0);
                    if head == ScoreHead::Absorbing {
                        assert_eq!(row[mask], 0.0);
                        if x == mask {
                            let total: f64 = row[..mask].iter().map(|v| v.exp()).sum();
                            approx::assert_relative_eq!(
                                total * log_expm1(sigma).exp(),
                                1.0,
                                max_relative = 1e-10
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Cpu::default();
        for (head, activation) in [
            (ScoreHead::Absorbing, Activation::Gelu),
            (ScoreHead::Uniform, Activation::Silu),
            (ScoreHead::Uniform, Activation::Tanh),
        ] {
            let config = MlpConfig {
                activation,
                ..micro(head)
            };
            let model = Mlp::<f64, Cpu>::new(config, &dev, 3).unwrap();
            let mut store = model.params().clone();
            perturb(&mut store, 4, 0.5);
            let objective = WeightedScores {
                model,
                tokens: vec![4, 1, 4, 0, 3, 2],
                sigma: vec![0.3, 1.7],
            };
            let err = check_gradient(&mut store, &objective, 1e-6);
            assert!(
                err < 1e-6,
                "{head:?} {activation:?}: max relative error {err}"
            );
        }
    }

    #[test]
    fn determinism_param_count_and_flat_start() {
        let dev = Cpu::default();
        let config = MlpConfig::tiny(5, 4, ScoreHead::Absorbing);
        let a = Mlp::<f32, Cpu>::new(config, &dev, 9).unwrap();
        let b = Mlp::<f32, Cpu>::new(config, &dev, 9).unwrap();
        let c = Mlp::<f32, Cpu>::new(config, &dev, 10).unwrap();
        assert_eq!(a.params().flat_f64(), b.params().flat_f64());
        assert_ne!(a.params().flat_f64(), c.params().flat_f64());
        // (4·5 + 9)·128 + 128 + 128·128 + 128 + 128·20 + 20 = 22_932.
        assert_eq!(config.num_params(), 22_932);
        assert_eq!(a.params().num_elements(), config.num_params());
        let small = MlpConfig::small(5, 4, ScoreHead::Uniform);
        let s = Mlp::<f32, Cpu>::new(small, &dev, 0).unwrap();
        assert_eq!(s.params().num_elements(), small.num_params());
        // Zero output layer: at a masked position the untrained model is uniform over the 4 real tokens.
        let scores = a.log_scores_host(&[4, 4, 4, 4], 1, 4, &[1.0]).unwrap();
        let expect = (0.25 / log_expm1(1.0).exp()).ln();
        approx::assert_abs_diff_eq!(scores[0], expect, epsilon = 1e-6);
    }

    #[test]
    fn invalid_configs_and_inputs_are_refused() {
        let ok = micro(ScoreHead::Uniform);
        for (config, field) in [
            (MlpConfig { vocab: 1, ..ok }, "vocab"),
            (MlpConfig { len: 0, ..ok }, "len"),
            (MlpConfig { hidden: 0, ..ok }, "hidden"),
            (MlpConfig { depth: 0, ..ok }, "depth"),
        ] {
            assert!(matches!(
                Mlp::<f32, Cpu>::new(config, &Cpu::default(), 0),
                Err(Error::InvalidParameter { name, .. }) if name == field
            ));
        }
        let model = Mlp::<f32, Cpu>::new(ok, &Cpu::default(), 0).unwrap();
        // Only the configured length is accepted: shorter is refused too.
        assert!(matches!(
            model.log_scores_host(&[0, 1], 1, 2, &[1.0]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            model.log_scores_host(&[0, 1, 5], 1, 3, &[1.0]),
            Err(Error::TokenOutOfVocab { token: 5, .. })
        ));
        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<MlpConfig>(&json).unwrap(), ok);
    }

    #[test]
    fn adamw_fits_a_fixed_target() {
        // Smoke test: regress the log-scores of all 9 sequences over 3 states (length 2, two noise
        // levels each) onto a fixed target by mean squared error; 300 AdamW steps cut the loss ≥ 20×.
        let dev = Cpu::default();
        let config = MlpConfig {
            hidden: 32,
            ..MlpConfig::tiny(3, 2, ScoreHead::Uniform)
        };
        let mut model = Mlp::<f32, Cpu>::new(config, &dev, 0).unwrap();
        let mut tokens = Vec::new();
        let mut sigma = Vec::new();
        for s in [0.1, 2.0] {
            for i in 0..9 {
                tokens.extend([i / 3, i % 3]);
                sigma.push(s);
            }
        }
        let b = sigma.len();
        let ids = dev.tensor_from_vec(tokens.clone(), (b, 2));
        let target: Vec<f32> = (0..b * 2 * 3)
            .map(|i| {
                let (pos, v) = (i / 3, i % 3);
                if tokens[pos] == v {
                    0.0
                } else {
                    (i as f32 * 0.37).sin() + if i < b * 3 { -1.0 } else { 0.5 }
                }
            })
            .collect();
        let target = dev.tensor_from_vec(target, (b, 2, 3));
        let opt = AdamW::with_lr(1e-2);
        let mut state = opt.init(model.params());
        let loss_of = |model: &Mlp<f32, Cpu>| {
            let out = model.forward(&ids, &sigma, NoneTape).unwrap();
            (out - target.clone()).square().mean::<Rank0, _>().array()
        };
        let initial = loss_of(&model);
        for _ in 0..300 {
            let out = model.forward(&ids, &sigma, OwnedTape::default()).unwrap();
            let loss = (out - target.clone()).square().mean::<Rank0, _>();
            let grads = Grads::collect(model.params(), &mut loss.backward()).unwrap();
            opt.step(opt.lr, model.params_mut(), &mut state, &grads)
                .unwrap();
        }
        let last = loss_of(&model);
        assert!(last < initial / 20.0, "loss {initial} → {last}");
    }
}
