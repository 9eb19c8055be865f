//! Conditioning by fixed positions: prompts (a fixed prefix) and infilling (any fixed set).

use crate::error::{Error, Result};
use crate::graph::Graph;

/// Positions held at given clean tokens for the whole reverse process.
///
/// Fixed positions start at their tokens and never move; their per-step transition probability is
/// exactly 1, so they add nothing to a trajectory's log-probability.
///
/// - Absorbing graph: the fixed tokens are clean, and the model's scores at the free masked positions are
///   `e^{−σ̄}/(1 − e^{−σ̄})·p_0(y | fixed and unmasked tokens)`, so with exact scores the sampler draws
///   from the exact conditional `p_0(x_free | x_fixed)`.
/// - Uniform graph: the fixed positions are forced (SEDD's infilling by projection). The model still
///   reads them as if they were noisy at `σ̄(t)`, so this is an approximation of the conditional, not
///   exact even for exact scores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Condition {
    fixed: Vec<Option<usize>>,
    per_sequence: bool,
}

impl Condition {
    /// One pattern for every sequence: `fixed[l] = Some(token)` holds position `l` at `token`
    /// (`fixed.len()` must equal the sequence length).
    pub fn shared(fixed: Vec<Option<usize>>) -> Self {
        Self {
            fixed,
            per_sequence: false,
        }
    }

    /// One pattern per sequence, flat `[batch · seq_len]`.
    pub fn per_sequence(fixed: Vec<Option<usize>>) -> Self {
        Self {
            fixed,
            per_sequence: true,
        }
    }

    /// A shared prompt: positions `0..prompt.len()` fixed, the rest free.
    pub fn prefix(prompt: &[usize], seq_len: usize) -> Self {
        let mut fixed = vec![None; seq_len.max(prompt.len())];
        for (slot, &token) in fixed.iter_mut().zip(prompt) {
            *slot = Some(token);
        }
        Self::shared(fixed)
    }

    /// The raw pattern (length `seq_len` if shared, `batch · seq_len` if per sequence).
    pub fn pattern(&self) -> &[Option<usize>] {
        &self.fixed
    }

    /// Expands to one entry per token of the batch, checking the length and that every fixed token is
    /// a clean token of `graph` (`< num_tokens`: the mask cannot be fixed).
    pub(crate) fn resolve<G: Graph>(
        &self,
        graph: &G,
        batch: usize,
        seq_len: usize,
    ) -> Result<Vec<Option<usize>>> {
        let expected = if self.per_sequence {
            batch * seq_len
        } else {
            seq_len
        };
        if self.fixed.len() != expected {
            return Err(Error::ShapeMismatch {
                op: "Condition (fixed positions)",
                expected: if self.per_sequence {
                    vec![batch, seq_len]
                } else {
                    vec![seq_len]
                },
                got: vec![self.fixed.len()],
            });
        }
        let vocab = graph.num_tokens();
        for (i, slot) in self.fixed.iter().enumerate() {
            if let Some(token) = *slot {
                if token >= vocab {
                    return Err(Error::TokenOutOfVocab {
                        sequence: if self.per_sequence { i / seq_len } else { 0 },
                        position: i % seq_len,
                        token,
                        vocab,
                    });
                }
            }
        }
        Ok(if self.per_sequence {
            self.fixed.clone()
        } else {
            self.fixed
                .iter()
                .cycle()
                .take(batch * seq_len)
                .copied()
                .collect()
        })
    }
}

/// Overwrites the fixed positions of a flat state.
pub(crate) fn apply(tokens: &mut [usize], fixed: &[Option<usize>]) {
    for (x, f) in tokens.iter_mut().zip(fixed) {
        if let Some(token) = *f {
            *x = token;
        }
    }
}
