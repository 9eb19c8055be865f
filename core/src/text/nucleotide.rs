//! The nucleotide tokenizer: `A, C, G, T` ↔ `0, 1, 2, 3`, as [`NUCLEOTIDES`](crate::data::NUCLEOTIDES).

use super::{OnUnknown, Tokenizer};
use crate::data::NUCLEOTIDES;
use crate::error::{Error, Result};

/// IUPAC ambiguity codes (`N` = any base; `R`, `Y`, … two or three bases), upper case.
const AMBIGUOUS: &str = "NRYSWKMBDHV";

/// `A, C, G, T` → `0, 1, 2, 3` (the order of [`NUCLEOTIDES`](crate::data::NUCLEOTIDES), so the DNA
/// rewards and [`to_dna_string`](crate::data::to_dna_string) agree with it); vocabulary 4, mask id 4,
/// decoded as `N`.
///
/// Strict by default: lower case and the IUPAC ambiguity codes (`N`, `R`, `Y`, …) are
/// [`Error::UnknownSymbol`]. [`fold_case`](Nucleotide::fold_case) accepts lower case;
/// [`ambiguous`](Nucleotide::ambiguous) skips or masks ambiguity codes. Any other character (a digit,
/// whitespace, `U`) is always an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Nucleotide {
    fold_case: bool,
    ambiguous: OnUnknown,
}

impl Nucleotide {
    /// The strict tokenizer (upper-case `ACGT` only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `a, c, g, t` (and lower-case ambiguity codes) as their upper-case forms.
    pub fn fold_case(mut self, fold: bool) -> Self {
        self.fold_case = fold;
        self
    }

    /// What to do with the IUPAC ambiguity codes `N R Y S W K M B D H V`.
    pub fn ambiguous(mut self, action: OnUnknown) -> Self {
        self.ambiguous = action;
        self
    }
}

impl Tokenizer for Nucleotide {
    fn name(&self) -> &'static str {
        "nucleotide"
    }

    fn vocab_size(&self) -> usize {
        NUCLEOTIDES.len()
    }

    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(text.len());
        for (position, symbol) in text.chars().enumerate() {
            let c = if self.fold_case {
                symbol.to_ascii_uppercase()
            } else {
                symbol
            };
            if let Some(t) = NUCLEOTIDES.iter().position(|&n| n == c) {
                out.push(t);
                continue;
            }
            let unknown = Error::UnknownSymbol {
                tokenizer: self.name(),
                symbol,
                position,
            };
            if !AMBIGUOUS.contains(c) {
                return Err(unknown);
            }
            match self.ambiguous {
                OnUnknown::Error => return Err(unknown),
                OnUnknown::Skip => {}
                OnUnknown::Mask => out.push(self.mask_id()),
            }
        }
        Ok(out)
    }

    fn decode_real(&self, ids: &[usize]) -> Result<String> {
        Ok(ids.iter().map(|&t| NUCLEOTIDES[t]).collect())
    }

    fn mask_text(&self) -> &str {
        "N"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_nucleotides_and_strictness_is_the_default() {
        let t = Nucleotide::new();
        assert_eq!(t.encode("ACGTTGCA").unwrap(), [0, 1, 2, 3, 3, 2, 1, 0]);
        assert_eq!(t.decode(&[3, 0, 4, 2]).unwrap(), "TANG");
        for (text, symbol, position) in [("ACgT", 'g', 2), ("ANC", 'N', 1), ("AC GT", ' ', 2)] {
            match t.encode(text) {
                Err(Error::UnknownSymbol {
                    symbol: s,
                    position: p,
                    tokenizer: "nucleotide",
                }) => assert_eq!((s, p), (symbol, position)),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            t.decode(&[5]),
            Err(Error::TokenOutOfVocab { token: 5, .. })
        ));
    }

    #[test]
    fn options_fold_case_and_skip_or_mask_ambiguity_codes() {
        let t = Nucleotide::new().fold_case(true);
        assert_eq!(t.encode("acgT").unwrap(), [0, 1, 2, 3]);
        assert!(t.encode("acnT").is_err());
        let skip = t.ambiguous(OnUnknown::Skip);
        assert_eq!(skip.encode("AnRT").unwrap(), [0, 3]);
        let mask = t.ambiguous(OnUnknown::Mask);
        assert_eq!(mask.encode("ANyT").unwrap(), [0, 4, 4, 3]);
        assert_eq!(mask.decode(&mask.encode("ANYT").unwrap()).unwrap(), "ANNT");
        // `U` is not an ambiguity code: still an error however ambiguity is handled.
        assert!(matches!(
            mask.encode("AU"),
            Err(Error::UnknownSymbol { symbol: 'U', .. })
        ));
    }
}
