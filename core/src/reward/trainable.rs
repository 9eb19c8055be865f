//! A convolutional sequence classifier trained in-library on labelled sequences
//! ([`crate::reward::Labelled`], e.g. read from a CSV), saved and reloaded, and used as a [`Reward`].
//!
//! ```text
//! u_{b,p} = [onehot(x_{b,p}), …, onehot(x_{b,p+w−1})]                    [B·P, w·A], P = L − w + 1
//! h = pool_p ReLU(u W_c + b_c)               (pool = max or mean over positions)   [B, C]
//! z = ReLU(h W_1 + b_1) W_2 + b_2                                                    [B]
//! ```
//!
//! Regression: the prediction is `μ + s·z` (μ, s the training labels' mean and standard deviation,
//! so `z` is fit to standardised labels with the squared error). Binary: `z` is the logit, fit with
//! the cross-entropy `softplus(z) − y·z`; the reward is `σ(z) ∈ [0, 1]`. Trained with AdamW in
//! minibatches on the host CPU in f32.

use std::collections::BTreeMap;
use std::path::Path;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::labelled::{LabelKind, Labelled};
use super::Reward;
use crate::error::{Error, Result};
use crate::nn::io::{read_safetensors, to_safetensors, write_atomic};
use crate::nn::{upload, AdamW, Grads, Linear, ParamStore};

/// Pooling over positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// `max_p` (motif presence).
    Max,
    /// `mean_p` (motif counts, composition).
    Mean,
}

/// Sizes of a [`ConvClassifier`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConvClassifierConfig {
    /// Number of tokens `A`.
    pub alphabet: usize,
    /// Sequence length `L` it scores.
    pub len: usize,
    /// Filter width `w` (`≤ L`).
    pub width: usize,
    /// Filters `C`.
    pub channels: usize,
    /// Hidden width `H` of the read-out.
    pub hidden: usize,
    /// Pooling over positions.
    pub pooling: Pooling,
    /// Regression or binary.
    pub kind: LabelKind,
}

impl ConvClassifierConfig {
    /// Validates the sizes.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("alphabet", self.alphabet)?;
        crate::check::nonzero("width", self.width)?;
        crate::check::nonzero("channels", self.channels)?;
        crate::check::nonzero("hidden", self.hidden)?;
        if self.width > self.len {
            return Err(Error::invalid(
                "width",
                self.width,
                format!("must be ≤ the sequence length {}", self.len),
            ));
        }
        Ok(())
    }

    fn positions(&self) -> usize {
        self.len - self.width + 1
    }
}

/// How to train a [`ConvClassifier`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: AdamW,
    /// Fraction of rows held out for validation.
    pub valid_fraction: f64,
    /// Seed of the initialisation, the split and the shuffles.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// 30 epochs of 64 rows, AdamW lr 3e-3, 20 % held out, seed 0.
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 64,
            optimizer: AdamW::with_lr(3e-3),
            valid_fraction: 0.2,
            seed: 0,
        }
    }
}

/// Held-out quality after training.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Rows held out.
    pub rows: usize,
    /// Mean loss on them (squared error on standardised labels, or cross-entropy).
    pub loss: f64,
    /// Binary: fraction classified right (`σ(z) > 1/2` ⇔ label 1).
    pub accuracy: Option<f64>,
    /// Regression: Pearson correlation of prediction and label.
    pub correlation: Option<f64>,
}

/// The trained classifier (module docs).
#[derive(Debug, Clone)]
pub struct ConvClassifier {
    config: ConvClassifierConfig,
    store: ParamStore<f32, Cpu>,
    conv: Linear,
    hidden: Linear,
    out: Linear,
    /// Label mean μ and standard deviation s (regression; `(0, 1)` for binary).
    scale: (f64, f64),
    /// Name in errors and metrics.
    pub name: String,
}

impl ConvClassifier {
    /// An untrained classifier, weights `N(0, 1/d_in)` from `seed`, zero biases.
    pub fn new(config: ConvClassifierConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let mut store = ParamStore::new(&Cpu::default(), seed);
        let c = config;
        let conv = Linear::new(
            &mut store,
            "conv",
            c.width * c.alphabet,
            c.channels,
            true,
            None,
        )?;
        let hidden = Linear::new(&mut store, "hidden", c.channels, c.hidden, true, None)?;
        let out = Linear::new(&mut store, "out", c.hidden, 1, true, None)?;
        Ok(Self {
            config,
            store,
            conv,
            hidden,
            out,
            scale: (0.0, 1.0),
            name: "conv_classifier".into(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ConvClassifierConfig {
        &self.config
    }

    /// The one-hot windows `u` of `seqs` (all of length `L`, tokens `< A`), flat `[B·P, w·A]`.
    fn windows(&self, seqs: &[&[usize]]) -> Vec<f32> {
        let (a, w, p) = (
            self.config.alphabet,
            self.config.width,
            self.config.positions(),
        );
        let mut u = vec![0.0f32; seqs.len() * p * w * a];
        for (b, s) in seqs.iter().enumerate() {
            for q in 0..p {
                let row = (b * p + q) * w * a;
                for j in 0..w {
                    u[row + j * a + s[q + j]] = 1.0;
                }
            }
        }
        u
    }

    /// `z [B]` for `seqs` (checked by the caller), recording on `tape`.
    fn logits<T: Tape<f32, Cpu>>(
        &self,
        store: &ParamStore<f32, Cpu>,
        seqs: &[&[usize]],
        tape: T,
    ) -> Result<Tensor<(usize,), f32, Cpu, T>> {
        let c = self.config;
        let (b, p) = (seqs.len(), c.positions());
        let u = upload(
            store.device(),
            self.windows(seqs),
            (b * p, c.width * c.alphabet),
            "ConvClassifier (windows)",
        )?
        .put_tape(tape);
        let h = self
            .conv
            .forward(store, u)
            .relu()
            .reshape_like(&(b, p, c.channels));
        let pooled: Tensor<(usize, usize), f32, Cpu, T> = match c.pooling {
            Pooling::Max => h.max::<_, Axis<1>>(),
            Pooling::Mean => h.mean::<_, Axis<1>>(),
        };
        let z = self.hidden.forward(store, pooled).relu();
        Ok(self.out.forward(store, z).reshape_like(&(b,)))
    }

    /// The first problem with `seq`: a token `≥ A` or a length other than `L`.
    fn check_sequence(&self, index: usize, seq: &[usize]) -> Result<()> {
        if seq.len() != self.config.len {
            return Err(Error::ShapeMismatch {
                op: "ConvClassifier (sequence length)",
                expected: vec![self.config.len],
                got: vec![seq.len()],
            });
        }
        if let Some((position, &token)) = seq
            .iter()
            .enumerate()
            .find(|(_, &t)| t >= self.config.alphabet)
        {
            return Err(Error::TokenOutOfVocab {
                sequence: index,
                position,
                token,
                vocab: self.config.alphabet,
            });
        }
        Ok(())
    }

    /// Predictions for `seqs`: `μ + s·z` (regression) or `σ(z)` (binary).
    ///
    /// # Errors
    /// [`Error::TokenOutOfVocab`] or [`Error::ShapeMismatch`] for a bad sequence.
    pub fn predict(&self, seqs: &[&[usize]]) -> Result<Vec<f64>> {
        for (i, s) in seqs.iter().enumerate() {
            self.check_sequence(i, s)?;
        }
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(1024) {
            let z = self.logits(&self.store, chunk, NoneTape)?.as_vec();
            out.extend(z.iter().map(|&z| self.read(z as f64)));
        }
        Ok(out)
    }

    fn read(&self, z: f64) -> f64 {
        match self.config.kind {
            LabelKind::Regression => self.scale.0 + self.scale.1 * z,
            LabelKind::Binary => 1.0 / (1.0 + (-z).exp()),
        }
    }

    /// Mean loss of a batch: squared error to standardised labels, or binary cross-entropy.
    fn loss<T: Tape<f32, Cpu>>(
        &self,
        store: &ParamStore<f32, Cpu>,
        seqs: &[&[usize]],
        labels: &[f64],
        tape: T,
    ) -> Result<Tensor<Rank0, f32, Cpu, T>> {
        let z = self.logits(store, seqs, tape)?;
        let target: Vec<f32> = labels
            .iter()
            .map(|&y| match self.config.kind {
                LabelKind::Regression => ((y - self.scale.0) / self.scale.1) as f32,
                LabelKind::Binary => y as f32,
            })
            .collect();
        let target = upload(
            store.device(),
            target,
            (seqs.len(),),
            "ConvClassifier (labels)",
        )?;
        Ok(match self.config.kind {
            LabelKind::Regression => dfdx::losses::mse_loss(z, target),
            LabelKind::Binary => dfdx::losses::binary_cross_entropy_with_logits_loss(z, target),
        })
    }

    /// Fits a new classifier to `data` (split by `train.valid_fraction`) and reports the held-out
    /// quality.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for bad sizes or settings, the data's own errors (a token `≥ A`, a
    /// length other than `config.len`, a label kind other than `config.kind`), [`Error::Diverged`] if
    /// a gradient is not finite.
    pub fn fit(
        config: ConvClassifierConfig,
        data: &Labelled,
        train: &TrainConfig,
    ) -> Result<(Self, Validation)> {
        let mut model = Self::new(config, train.seed)?;
        if data.kind != config.kind {
            return Err(Error::invalid(
                "ConvClassifierConfig::kind",
                format!("{:?}", config.kind),
                format!("the data's labels are {:?}", data.kind),
            ));
        }
        for (i, s) in data.sequences.iter().enumerate() {
            model.check_sequence(i, s)?;
        }
        crate::check::nonzero("epochs", train.epochs)?;
        crate::check::nonzero("batch_size", train.batch_size)?;
        train.optimizer.check()?;
        let (fit, valid) = data.split(train.valid_fraction, train.seed)?;
        if config.kind == LabelKind::Regression {
            let n = fit.len() as f64;
            let mean = fit.labels.iter().sum::<f64>() / n;
            let var = fit.labels.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n;
            model.scale = (mean, if var > 0.0 { var.sqrt() } else { 1.0 });
        }
        let mut state = train.optimizer.init(&model.store);
        let mut rng = rand::rngs::StdRng::seed_from_u64(train.seed ^ 0x0c1a55);
        let mut order: Vec<usize> = (0..fit.len()).collect();
        for _ in 0..train.epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(train.batch_size) {
                let seqs: Vec<&[usize]> =
                    batch.iter().map(|&i| fit.sequences[i].as_slice()).collect();
                let labels: Vec<f64> = batch.iter().map(|&i| fit.labels[i]).collect();
                let loss = model.loss(&model.store, &seqs, &labels, OwnedTape::default())?;
                let grads = Grads::collect(&model.store, &mut loss.backward())?;
                let lr = train.optimizer.lr;
                train
                    .optimizer
                    .step(lr, &mut model.store, &mut state, &grads)?;
            }
        }
        let validation = model.validate(&valid)?;
        Ok((model, validation))
    }

    /// Held-out loss and accuracy (binary) or correlation (regression) on `data`.
    ///
    /// # Errors
    /// As [`ConvClassifier::predict`].
    pub fn validate(&self, data: &Labelled) -> Result<Validation> {
        let seqs: Vec<&[usize]> = data.sequences.iter().map(Vec::as_slice).collect();
        let pred = self.predict(&seqs)?;
        let n = data.len() as f64;
        let loss = self
            .loss(&self.store, &seqs, &data.labels, NoneTape)?
            .array() as f64;
        let (accuracy, correlation) = match self.config.kind {
            LabelKind::Binary => {
                let right = pred
                    .iter()
                    .zip(&data.labels)
                    .filter(|(p, y)| (**p > 0.5) == (**y > 0.5))
                    .count();
                (Some(right as f64 / n), None)
            }
            LabelKind::Regression => (None, Some(pearson(&pred, &data.labels))),
        };
        Ok(Validation {
            rows: data.len(),
            loss,
            accuracy,
            correlation,
        })
    }

    /// Saves weights (f32) and configuration (metadata `sepo_conv_classifier`) atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, Vec<usize>, Vec<f64>)> = self
            .store
            .to_host()
            .into_iter()
            .map(|(n, s, v)| (n, s, v.iter().map(|&x| x as f64).collect()))
            .collect();
        let meta =
            serde_json::json!({ "config": self.config, "scale": [self.scale.0, self.scale.1] });
        let metadata = BTreeMap::from([("sepo_conv_classifier".to_string(), meta.to_string())]);
        write_atomic(path, &to_safetensors(&tensors, true, &metadata)?)
    }

    /// Loads what [`ConvClassifier::save`] wrote.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::CorruptCheckpoint`] (not safetensors, no or bad metadata),
    /// [`Error::CheckpointMismatch`] (a missing or misshapen tensor).
    pub fn load(path: &Path) -> Result<Self> {
        let (tensors, metadata) = read_safetensors(path)?;
        let corrupt = |reason: String| Error::CorruptCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let meta = metadata
            .get("sepo_conv_classifier")
            .ok_or_else(|| corrupt("no `sepo_conv_classifier` metadata".into()))?;
        #[derive(serde::Deserialize)]
        struct Meta {
            config: ConvClassifierConfig,
            scale: (f64, f64),
        }
        let meta: Meta = serde_json::from_str(meta).map_err(|e| corrupt(e.to_string()))?;
        let mut model = Self::new(meta.config, 0)?;
        model.scale = meta.scale;
        let layout: Vec<(String, Vec<usize>)> = model
            .store
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        for (name, shape) in layout {
            let t = tensors
                .get(&name)
                .filter(|t| t.shape == shape)
                .ok_or_else(|| Error::CheckpointMismatch {
                    path: path.to_path_buf(),
                    what: format!("tensor {name}"),
                    expected: format!("{shape:?}"),
                    found: tensors
                        .get(&name)
                        .map_or("nothing".into(), |t| format!("{:?}", t.shape)),
                })?;
            let id = model.store.find(&name).expect("listed from the store");
            model
                .store
                .set_values(id, t.values.iter().map(|&v| v as f32).collect())?;
        }
        model.name = path
            .file_stem()
            .map_or(model.name, |s| s.to_string_lossy().into_owned());
        Ok(model)
    }
}

/// Pearson correlation `cov(a, b)/(sd(a)·sd(b))` (0 when either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa == 0.0 || sbb == 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

impl Reward for ConvClassifier {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// [`ConvClassifier::predict`]; a bad sequence makes every value NaN, which
    /// [`crate::reward::evaluate`] reports as a typed error.
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        self.predict(batch)
            .unwrap_or_else(|_| vec![f64::NAN; batch.len()])
    }

    fn range(&self) -> Option<(f64, f64)> {
        (self.config.kind == LabelKind::Binary).then_some((0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_is_the_textbook_formula() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-15);
        assert!((pearson(&a, &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-15);
        // cov = 0 by symmetry.
        assert_eq!(pearson(&[-1.0, 0.0, 1.0], &[1.0, 0.0, 1.0]), 0.0);
        assert_eq!(pearson(&a, &[1.0; 4]), 0.0);
    }

    #[test]
    fn windows_are_the_one_hot_im2col() {
        let config = ConvClassifierConfig {
            alphabet: 3,
            len: 4,
            width: 2,
            channels: 1,
            hidden: 1,
            pooling: Pooling::Max,
            kind: LabelKind::Binary,
        };
        let m = ConvClassifier::new(config, 0).unwrap();
        let u = m.windows(&[&[0, 2, 1, 1]]);
        // Windows (0,2), (2,1), (1,1): one-hot blocks of 3.
        let want = [
            1., 0., 0., 0., 0., 1., //
            0., 0., 1., 0., 1., 0., //
            0., 1., 0., 0., 1., 0.,
        ];
        assert_eq!(u, want);
        assert!(ConvClassifier::new(ConvClassifierConfig { width: 5, ..config }, 0).is_err());
    }
}
