//! The output head shared by the networks: raw logits `[B, L, N]` → log concrete scores.

use dfdx::prelude::*;

use crate::nn::from_f64;
use crate::score::{LogScores, Tokens};

/// How a network's logits become log concrete scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScoreHead {
    /// Uniform graph (SEDD): the logits are the log-scores, with `0` written at the current token.
    Uniform,
    /// Absorbing graph, mask = last state. Over the real tokens,
    /// `log s_v = log_softmax(ℓ)_v − log(e^{σ̄} − 1)`, and `0` at the current token and the mask column.
    ///
    /// At a masked position the true score is `p_0(v | x_unmasked)/(e^{σ̄} − 1)` (SEDD's scaling; RADD's
    /// "absorbing scores are scaled clean conditionals"): the softmax makes the conditional exactly
    /// normalised, where SEDD subtracts the constant `log(N − 1)` and lets the network learn the rest.
    /// sepo departs from SEDD here on purpose (docs/sepo.md): with a normalised head, the clean
    /// conditionals that SEPO's estimators read are exactly the network's.
    Absorbing,
}

impl ScoreHead {
    /// Applies the head to `logits [B, L, N]` for inputs `tokens [B, L]` at total noise `sigma_bar [B]`.
    pub fn apply<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        self,
        logits: LogScores<E, D, T>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
    ) -> LogScores<E, D, T> {
        let shape = *logits.shape();
        let (b, l, n) = shape;
        let dev = logits.device().clone();
        let ids = tokens.as_vec();
        // keep[b, l, v] = 1 where the log-score is free, 0 where it is pinned to 0.
        let mut keep = Vec::with_capacity(b * l * n);
        for &x in &ids {
            for v in 0..n {
                let pinned = v == x || (self == ScoreHead::Absorbing && v == n - 1);
                keep.push(from_f64::<E>(if pinned { 0.0 } else { 1.0 }));
            }
        }
        let keep = dev.tensor_from_vec(keep, shape).gt(from_f64::<E>(0.5));
        let zeros: Tensor<(usize, usize, usize), E, D> = dev.zeros_like(&shape);
        let scores = match self {
            ScoreHead::Uniform => logits,
            ScoreHead::Absorbing => {
                // Exclude the mask column from the softmax with a large finite negative logit (−∞ would
                // turn into NaN in the backward pass), then shift by −log(e^{σ̄} − 1).
                let mut bias = Vec::with_capacity(b * l * n);
                for _ in 0..b * l {
                    for v in 0..n {
                        bias.push(if v == n - 1 { -1e9 } else { 0.0 });
                    }
                }
                let bias = dev.tensor_from_vec(crate::nn::from_f64s::<E>(&bias), shape);
                let shift: Vec<E> = sigma_bar.iter().map(|&s| from_f64(-log_expm1(s))).collect();
                let shift = dev
                    .tensor_from_vec(shift, (b,))
                    .broadcast_like::<_, Axes2<1, 2>>(&shape);
                (logits + bias).log_softmax::<Axis<2>>() + shift
            }
        };
        keep.choose(scores, zeros)
    }
}

/// `log(e^x − 1)`, accurate for small and large `x` (`x > 0`).
pub fn log_expm1(x: f64) -> f64 {
    if x > 30.0 {
        x + (-(-x).exp()).ln_1p()
    } else {
        x.exp_m1().ln()
    }
}
