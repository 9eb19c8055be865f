//! The output head shared by the networks: raw logits `[B, L, N]` → log concrete scores.

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::{from_f64, upload, upload_f64s};
use crate::score::{LogScores, Tokens};

/// How a network's logits become log concrete scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScoreHead {
    /// Uniform graph (SEDD): the logits are the log-scores, with `0` written at the current token.
    Uniform,
    /// Absorbing graph, mask = last state. With `q = softmax(ℓ)` over the real tokens at each position,
    ///
    /// - at a masked position, `log s_v = log q_v − log(e^{σ̄} − 1)`;
    /// - at an unmasked position holding `x_l`, `log s_v = log q_v − log q_{x_l}`;
    ///
    /// and `0` at the current token and on the mask column.
    ///
    /// At a masked position the true score is `p_0(v | x_unmasked)/(e^{σ̄} − 1)` (SEDD's scaling; RADD's
    /// "absorbing scores are scaled clean conditionals"): the softmax makes the conditional exactly
    /// normalised, where SEDD subtracts the constant `log(N − 1)` and lets the network learn the rest.
    /// sepo departs from SEDD here on purpose (docs/sepo.md): with a normalised head, the clean
    /// conditionals that SEPO's estimators read are exactly the network's.
    ///
    /// At an unmasked position the true score is `p_0(v | x_{U∖l})/p_0(x_l | x_{U∖l})` (`U` the unmasked
    /// positions) at every `σ̄`: a ratio of a normalised conditional, with no `σ̄` factor. The head gives it
    /// that form with the network's own softmax `q` at the position. DWDSE never supervises these
    /// outputs (their weight `Q(y, x_t)` is 0) and no sampler reads them (a clean token never moves in
    /// reverse), so `q` there is whatever the trunk produces; but read at a clean sequence
    /// (`CleanScores::Unmasked`) it is a proper ratio, `Σ_v s_v = 1/q_{x_l}`, where the former head's
    /// `q_v/(e^{σ̄} − 1)` implied `q̂(x_l) ≈ σ̄/(1 − q_{x_l})` (about `1e-5` at `t₀ = 1e-5`).
    Absorbing,
}

impl ScoreHead {
    /// Applies the head to `logits [B, L, N]` for inputs `tokens [B, L]` at total noise `sigma_bar [B]`.
    /// A failed upload of its masks is [`crate::Error::Device`].
    pub fn apply<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        self,
        logits: LogScores<E, D, T>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
    ) -> Result<LogScores<E, D, T>> {
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
        let keep =
            upload(&dev, keep, shape, "ScoreHead::apply (keep mask)")?.gt(from_f64::<E>(0.5));
        let zeros: Tensor<(usize, usize, usize), E, D> = dev.zeros_like(&shape);
        let scores = match self {
            ScoreHead::Uniform => logits,
            ScoreHead::Absorbing => {
                // Exclude the mask column from the softmax with a large finite negative logit (−∞ would
                // turn into NaN in the backward pass). Then shift masked positions by −log(e^{σ̄} − 1)
                // and unmasked ones by −log q_{x_l}: log s = log q − u·log q_{x_l} + shift, with
                // u = 1 at unmasked positions (0 at masked ones, where the gathered mask entry ≈ −1e9
                // is multiplied by 0) and shift = −log(e^{σ̄} − 1) at masked positions (0 elsewhere).
                let mask = n - 1;
                let mut bias = Vec::with_capacity(b * l * n);
                for _ in 0..b * l {
                    for v in 0..n {
                        bias.push(if v == mask { -1e9 } else { 0.0 });
                    }
                }
                let bias = upload_f64s(&dev, &bias, shape, "ScoreHead::apply (mask bias)")?;
                let mut unmasked = Vec::with_capacity(b * l);
                let mut shift = Vec::with_capacity(b * l);
                for (i, &x) in ids.iter().enumerate() {
                    let masked = x == mask;
                    unmasked.push(from_f64::<E>(if masked { 0.0 } else { 1.0 }));
                    shift.push(from_f64::<E>(if masked {
                        -log_expm1(sigma_bar[i / l])
                    } else {
                        0.0
                    }));
                }
                let unmasked = upload(&dev, unmasked, (b, l), "ScoreHead::apply (unmasked)")?
                    .broadcast_like::<_, Axis<2>>(&shape);
                let shift = upload(&dev, shift, (b, l), "ScoreHead::apply (shift)")?
                    .broadcast_like::<_, Axis<2>>(&shape);
                let log_q = (logits + bias).log_softmax::<Axis<2>>();
                let own = log_q
                    .with_empty_tape()
                    .select(tokens.clone())
                    .broadcast_like::<_, Axis<2>>(&shape);
                log_q - own * unmasked + shift
            }
        };
        Ok(keep.choose(scores, zeros))
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
