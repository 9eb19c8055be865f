//! The families' output maps on tensors: trunk logits `[B, L, N]` (already `0` at each position's own
//! token: the trunk's [`crate::score::ScoreHead::Uniform`]) → log concrete scores. The formulas are
//! on [`Output`]; docs/models.md derives them.

use dfdx::prelude::*;

use super::config::{Output, NEG_INFINITY};
use crate::error::Result;
use crate::nn::{from_f64, upload, upload_f64s};
use crate::score::head::log_expm1;
use crate::score::{LogScores, Tokens};

impl Output {
    /// Applies the map to `logits [B, L, N]` for inputs `tokens [B, L]` at total noise
    /// `sigma_bar [B]` (already validated; `σ̄ > 0` wherever a σ̄ scaling divides by `e^{σ̄} − 1`). A
    /// failed upload of its constants is [`crate::Error::Device`].
    pub fn apply<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        self,
        logits: LogScores<E, D, T>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
    ) -> Result<LogScores<E, D, T>> {
        let shape = *logits.shape();
        let (_, l, n) = shape;
        let dev = logits.device().clone();
        let ids = tokens.as_vec();
        Ok(match self {
            Output::Sedd {
                scale_by_sigma: false,
            } => logits,
            Output::Sedd {
                scale_by_sigma: true,
            } => {
                // −log(e^{σ̄} − 1) − log(N − 1) off the own token, 0 on it (where the logit is 0).
                let log_states = ((n - 1) as f64).ln();
                let mut shift = Vec::with_capacity(ids.len() * n);
                for (i, &x) in ids.iter().enumerate() {
                    let c = -log_expm1(sigma_bar[i / l]) - log_states;
                    shift.extend((0..n).map(|v| if v == x { 0.0 } else { c }));
                }
                logits + upload_f64s(&dev, &shift, shape, "Output::apply (SEDD shift)")?
            }
            Output::MdlmSubs { .. } => {
                let mask = n - 1;
                // "Zero masking probabilities": the mask logit pushed to NEG_INFINITY before the
                // softmax, as MDLM does (its exp is 0 in f32 and f64 alike).
                let bias: Vec<f64> = (0..ids.len() * n)
                    .map(|k| if k % n == mask { NEG_INFINITY } else { 0.0 })
                    .collect();
                let log_p = (logits
                    + upload_f64s(&dev, &bias, shape, "Output::apply (mask bias)")?)
                .log_softmax::<Axis<2>>();
                // free: a masked position's real tokens, log p − log(e^{σ̄} − 1); elsewhere the
                // constants of the map (0 at the own token and the mask, NEG_INFINITY otherwise).
                let (mut free, mut shift, mut fixed) = (
                    Vec::with_capacity(ids.len() * n),
                    Vec::with_capacity(ids.len() * n),
                    Vec::with_capacity(ids.len() * n),
                );
                for (i, &x) in ids.iter().enumerate() {
                    let masked = x == mask;
                    let c = if masked {
                        -log_expm1(sigma_bar[i / l])
                    } else {
                        0.0
                    };
                    for v in 0..n {
                        let is_free = masked && v != mask;
                        free.push(from_f64::<E>(if is_free { 1.0 } else { 0.0 }));
                        shift.push(c);
                        fixed.push(if masked || v == x || v == mask {
                            0.0
                        } else {
                            NEG_INFINITY
                        });
                    }
                }
                let free =
                    upload(&dev, free, shape, "Output::apply (free)")?.gt(from_f64::<E>(0.5));
                let scores = log_p + upload_f64s(&dev, &shift, shape, "Output::apply (shift)")?;
                let fixed = upload_f64s(&dev, &fixed, shape, "Output::apply (fixed)")?;
                free.choose(scores, fixed)
            }
        })
    }
}
