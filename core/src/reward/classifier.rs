//! A tiny convolutional classifier as a batched reward, loaded from safetensors.
//!
//! `logit(x) = w_out · maxpool_i ReLU(Σ_{a,k} W[c, a, k]·onehot(x)_{a, i+k} + b_c) + b_out`: one 1-D
//! convolution over the one-hot sequence, ReLU, global max-pooling, a linear read-out. The reward is the
//! logit (or the probability `σ(logit)` with [`CnnClassifier::probability`]). Host arithmetic in f64,
//! sequences scored in parallel: a stand-in for the trained oracles of the field.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;

use super::Reward;
use crate::error::{Error, Result};
use crate::nn::io::{read_safetensors, to_safetensors, write_atomic};

/// A 1-D CNN classifier over one-hot tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnClassifier {
    /// Number of input tokens `A`.
    pub alphabet: usize,
    /// Convolution `[C, A, K]`.
    pub conv_weight: Vec<f64>,
    /// Convolution bias `[C]`.
    pub conv_bias: Vec<f64>,
    /// Read-out `[C]`.
    pub out_weight: Vec<f64>,
    /// Read-out bias.
    pub out_bias: f64,
    /// Kernel width `K`.
    pub width: usize,
    /// Report `σ(logit)` instead of the logit.
    pub probability: bool,
    /// Name in errors and metrics.
    pub name: String,
}

impl CnnClassifier {
    /// A detector with one channel per motif: each channel's filter is `+1` on the motif's token at each
    /// offset and `−1` elsewhere, with bias `1 − len`, so it fires (value 1) exactly on an occurrence.
    /// The read-out sums the channels. Useful as a hand-built "oracle" with a known answer.
    pub fn motif_detector(alphabet: usize, motifs: &[Vec<usize>]) -> Result<Self> {
        let width = motifs.iter().map(Vec::len).max().unwrap_or(0);
        crate::check::nonzero("motif length", width)?;
        let channels = motifs.len();
        let mut conv_weight = vec![0.0; channels * alphabet * width];
        let mut conv_bias = vec![0.0; channels];
        for (c, m) in motifs.iter().enumerate() {
            for (k, &t) in m.iter().enumerate() {
                if t >= alphabet {
                    return Err(Error::TokenOutOfVocab {
                        sequence: c,
                        position: k,
                        token: t,
                        vocab: alphabet,
                    });
                }
                for a in 0..alphabet {
                    conv_weight[(c * alphabet + a) * width + k] = if a == t { 1.0 } else { -1.0 };
                }
            }
            conv_bias[c] = 1.0 - m.len() as f64;
        }
        Ok(Self {
            alphabet,
            conv_weight,
            conv_bias,
            out_weight: vec![1.0; channels],
            out_bias: 0.0,
            width,
            probability: false,
            name: "cnn".into(),
        })
    }

    /// Loads `conv.weight [C, A, K]`, `conv.bias [C]`, `out.weight [C]`, `out.bias [1]`.
    pub fn load(path: &Path) -> Result<Self> {
        let (t, _) = read_safetensors(path)?;
        let get = |name: &str| {
            t.get(name).ok_or_else(|| Error::CheckpointMismatch {
                path: path.to_path_buf(),
                what: format!("tensor {name}"),
                expected: "present".into(),
                found: "nothing".into(),
            })
        };
        let conv = get("conv.weight")?;
        let [channels, alphabet, width] = conv.shape[..] else {
            return Err(Error::CheckpointMismatch {
                path: path.to_path_buf(),
                what: "rank of conv.weight".into(),
                expected: "3".into(),
                found: format!("{:?}", conv.shape),
            });
        };
        let expect = |name: &str, shape: Vec<usize>| -> Result<Vec<f64>> {
            let x = get(name)?;
            if x.shape != shape {
                return Err(Error::CheckpointMismatch {
                    path: path.to_path_buf(),
                    what: format!("shape of {name}"),
                    expected: format!("{shape:?}"),
                    found: format!("{:?}", x.shape),
                });
            }
            Ok(x.values.clone())
        };
        Ok(Self {
            alphabet,
            conv_weight: conv.values.clone(),
            conv_bias: expect("conv.bias", vec![channels])?,
            out_weight: expect("out.weight", vec![channels])?,
            out_bias: expect("out.bias", vec![1])?[0],
            width,
            probability: false,
            name: path
                .file_stem()
                .map_or("cnn".into(), |s| s.to_string_lossy().into_owned()),
        })
    }

    /// Saves the weights atomically (f32 storage).
    pub fn save(&self, path: &Path) -> Result<()> {
        let c = self.conv_bias.len();
        let tensors = vec![
            (
                "conv.weight".to_string(),
                vec![c, self.alphabet, self.width],
                self.conv_weight.clone(),
            ),
            ("conv.bias".to_string(), vec![c], self.conv_bias.clone()),
            ("out.weight".to_string(), vec![c], self.out_weight.clone()),
            ("out.bias".to_string(), vec![1], vec![self.out_bias]),
        ];
        write_atomic(path, &to_safetensors(&tensors, true, &BTreeMap::new())?)
    }

    /// Reports probabilities `σ(logit)` instead of logits.
    pub fn probability(mut self) -> Self {
        self.probability = true;
        self
    }

    /// The logit of one sequence (sequences shorter than the kernel have no window: logit = bias).
    pub fn logit(&self, seq: &[usize]) -> f64 {
        let channels = self.conv_bias.len();
        let (a, k) = (self.alphabet, self.width);
        let mut out = self.out_bias;
        if seq.len() < k {
            return out;
        }
        for c in 0..channels {
            let mut best = f64::NEG_INFINITY;
            for i in 0..=seq.len() - k {
                let mut z = self.conv_bias[c];
                for (j, &t) in seq[i..i + k].iter().enumerate() {
                    if t < a {
                        z += self.conv_weight[(c * a + t) * k + j];
                    }
                }
                best = best.max(z.max(0.0));
            }
            out += self.out_weight[c] * best;
        }
        out
    }
}

impl Reward for CnnClassifier {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        batch
            .par_iter()
            .map(|s| {
                let z = self.logit(s);
                if self.probability {
                    1.0 / (1.0 + (-z).exp())
                } else {
                    z
                }
            })
            .collect()
    }
    fn range(&self) -> Option<(f64, f64)> {
        self.probability.then_some((0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motif_detector_fires_on_occurrences_and_round_trips() {
        let cnn = CnnClassifier::motif_detector(4, &[vec![3, 0, 3, 0], vec![1, 1]]).unwrap();
        assert_eq!(cnn.logit(&[0, 3, 0, 3, 0, 2]), 1.0);
        assert_eq!(cnn.logit(&[1, 1, 3, 0, 3, 0]), 2.0);
        assert_eq!(cnn.logit(&[0, 0, 0, 0]), 0.0);
        let path =
            std::env::temp_dir().join(format!("sepo-cnn-{}.safetensors", std::process::id()));
        cnn.save(&path).unwrap();
        let back = CnnClassifier::load(&path).unwrap();
        assert_eq!(back.conv_weight, cnn.conv_weight);
        assert_eq!(back.logit(&[1, 1, 3, 0, 3, 0]), 2.0);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            CnnClassifier::load(&path),
            Err(Error::CorruptCheckpoint { .. })
        ));
    }
}
