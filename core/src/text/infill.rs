//! Prompts and infilling from strings (SEDD's `run_sample_cond.py`), and detokenised samples.

use std::ops::Range;

use super::Tokenizer;
use crate::error::{Error, Result};
use crate::sample::{Condition, Samples};

/// A prefix and a suffix, tokenised, placed at the two ends of a sequence of `seq_len` tokens: positions
/// `0..p` hold the prefix's `p` tokens, `seq_len − s..seq_len` the suffix's `s`, and the `seq_len − p − s`
/// between them are free for the sampler. This is SEDD's conditional sampling
/// (`input_locs = range(p) ∪ range(L − s, L)`); an empty suffix is plain prompting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infill {
    /// Token ids of the prefix.
    pub prefix: Vec<usize>,
    /// Token ids of the suffix.
    pub suffix: Vec<usize>,
    /// Total sequence length.
    pub seq_len: usize,
    mask: usize,
}

impl Infill {
    /// Tokenises `prefix` and `suffix` with `tokenizer`. Errors: an unknown symbol
    /// ([`Error::UnknownSymbol`]), or `p + s > seq_len` ([`Error::InvalidParameter`]).
    pub fn new(
        tokenizer: &dyn Tokenizer,
        prefix: &str,
        suffix: &str,
        seq_len: usize,
    ) -> Result<Self> {
        let prefix_ids = tokenizer.encode(prefix)?;
        let suffix_ids = tokenizer.encode(suffix)?;
        let fixed = prefix_ids.len() + suffix_ids.len();
        if fixed > seq_len {
            return Err(Error::invalid(
                "seq_len",
                seq_len,
                format!(
                    "the prefix ({} tokens) and suffix ({} tokens) need {fixed} positions",
                    prefix_ids.len(),
                    suffix_ids.len()
                ),
            ));
        }
        Ok(Self {
            prefix: prefix_ids,
            suffix: suffix_ids,
            seq_len,
            mask: tokenizer.mask_id(),
        })
    }

    /// The positions the sampler fills, `p..seq_len − s`.
    pub fn free(&self) -> Range<usize> {
        self.prefix.len()..self.seq_len - self.suffix.len()
    }

    /// The starting state: prefix, mask ids on the free positions, suffix.
    pub fn template(&self) -> Vec<usize> {
        let mut t = self.prefix.clone();
        t.resize(self.seq_len - self.suffix.len(), self.mask);
        t.extend_from_slice(&self.suffix);
        t
    }

    /// The sampler's [`Condition`]: prefix and suffix fixed, the rest free (mask ids in the prompt,
    /// from [`OnUnknown::Mask`](super::OnUnknown::Mask), are free too). A tokenizer that emitted an id
    /// above its mask is [`Error::TokenOutOfVocab`].
    pub fn condition(&self) -> Result<Condition> {
        condition_from_template(&self.template(), self.mask)
    }

    /// The generated middle of a sampled sequence (its free positions).
    pub fn middle<'a>(&self, sequence: &'a [usize]) -> Result<&'a [usize]> {
        if sequence.len() != self.seq_len {
            return Err(Error::ShapeMismatch {
                op: "Infill::middle",
                expected: vec![self.seq_len],
                got: vec![sequence.len()],
            });
        }
        Ok(&sequence[self.free()])
    }
}

/// A shared [`Condition`] from a token template: every id `< mask` is fixed there, every `mask` is
/// free. An id `> mask` is [`Error::TokenOutOfVocab`].
pub fn condition_from_template(template: &[usize], mask: usize) -> Result<Condition> {
    if let Some(position) = template.iter().position(|&t| t > mask) {
        return Err(Error::TokenOutOfVocab {
            sequence: 0,
            position,
            token: template[position],
            vocab: mask + 1,
        });
    }
    Ok(Condition::shared(
        template.iter().map(|&t| (t != mask).then_some(t)).collect(),
    ))
}

/// Each sampled sequence as text ([`Tokenizer::decode`], masks rendered as its mask text). An id
/// outside the tokenizer's vocabulary and mask is [`Error::TokenOutOfVocab`] naming the sequence.
pub fn decode_samples(tokenizer: &dyn Tokenizer, samples: &Samples) -> Result<Vec<String>> {
    samples
        .sequences()
        .enumerate()
        .map(|(i, s)| {
            tokenizer.decode(s).map_err(|e| match e {
                Error::TokenOutOfVocab {
                    position,
                    token,
                    vocab,
                    ..
                } => Error::TokenOutOfVocab {
                    sequence: i,
                    position,
                    token,
                    vocab,
                },
                other => other,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Absorbing;
    use crate::text::{Nucleotide, OnUnknown};

    #[test]
    fn prefix_and_suffix_fix_both_ends() {
        let t = Nucleotide::new();
        let infill = Infill::new(&t, "ACG", "TT", 8).unwrap();
        assert_eq!(infill.free(), 3..6);
        assert_eq!(infill.template(), [0, 1, 2, 4, 4, 4, 3, 3]);
        let c = infill.condition().unwrap();
        assert_eq!(
            c.pattern(),
            [
                Some(0),
                Some(1),
                Some(2),
                None,
                None,
                None,
                Some(3),
                Some(3)
            ]
        );
        // The mask id is the absorbing graph's mask state.
        assert_eq!(Absorbing::with_tokens(4).unwrap().mask_token(), t.mask_id());
        assert_eq!(infill.middle(&[0, 1, 2, 3, 2, 1, 3, 3]).unwrap(), [3, 2, 1]);
        assert!(infill.middle(&[0; 7]).is_err());
        // Exactly full is allowed; one token over is not.
        assert_eq!(Infill::new(&t, "ACG", "TT", 5).unwrap().free(), 3..3);
        assert!(matches!(
            Infill::new(&t, "ACG", "TT", 4),
            Err(Error::InvalidParameter {
                name: "seq_len",
                ..
            })
        ));
        assert!(matches!(
            Infill::new(&t, "AXG", "", 4),
            Err(Error::UnknownSymbol { symbol: 'X', .. })
        ));
    }

    #[test]
    fn masked_prompt_positions_are_free_and_samples_decode() {
        let t = Nucleotide::new().ambiguous(OnUnknown::Mask);
        let infill = Infill::new(&t, "ANG", "", 4).unwrap();
        assert_eq!(
            infill.condition().unwrap().pattern(),
            [Some(0), None, Some(2), None]
        );
        assert!(condition_from_template(&[0, 5], 4).is_err());
        let samples = Samples {
            tokens: vec![0, 1, 2, 3, 3, 4, 2, 0],
            batch: 2,
            seq_len: 4,
            trajectory: None,
        };
        assert_eq!(decode_samples(&t, &samples).unwrap(), ["ACGT", "TNGA"]);
        let bad = Samples {
            tokens: vec![0, 1, 2, 3, 3, 9, 2, 0],
            ..samples
        };
        assert!(matches!(
            decode_samples(&t, &bad),
            Err(Error::TokenOutOfVocab {
                sequence: 1,
                position: 1,
                token: 9,
                ..
            })
        ));
    }
}
