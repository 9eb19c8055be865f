//! The character tokenizer: one token per character of a given alphabet.

use std::collections::HashMap;

use super::{OnUnknown, Tokenizer};
use crate::error::{Error, Result};

/// The `i`-th character of an alphabet ↔ token `i`; vocabulary = the alphabet's length, mask id = that
/// length.
///
/// A character outside the alphabet is [`Error::UnknownSymbol`] unless
/// [`on_unknown`](Chars::on_unknown) says to skip or mask it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chars {
    alphabet: Vec<char>,
    index: HashMap<char, usize>,
    on_unknown: OnUnknown,
    eos: Option<usize>,
    mask_text: String,
}

impl Chars {
    /// A tokenizer over the characters of `alphabet`, in order. Empty or repeated characters are
    /// [`Error::InvalidParameter`].
    pub fn new(alphabet: &str) -> Result<Self> {
        let alphabet: Vec<char> = alphabet.chars().collect();
        if alphabet.is_empty() {
            return Err(Error::invalid(
                "alphabet",
                "\"\"",
                "a character tokenizer needs at least one character",
            ));
        }
        let mut index = HashMap::with_capacity(alphabet.len());
        for (i, &c) in alphabet.iter().enumerate() {
            if let Some(first) = index.insert(c, i) {
                return Err(Error::invalid(
                    "alphabet",
                    format!("{c:?}"),
                    format!("appears twice, at characters {first} and {i}"),
                ));
            }
        }
        Ok(Self {
            alphabet,
            index,
            on_unknown: OnUnknown::Error,
            eos: None,
            mask_text: "[MASK]".into(),
        })
    }

    /// What to do with characters outside the alphabet.
    pub fn on_unknown(mut self, action: OnUnknown) -> Self {
        self.on_unknown = action;
        self
    }

    /// Declares the alphabet's character `eos` the end-of-sequence separator (for
    /// [`Packing::Concatenate`](super::Packing::Concatenate)); it must be in the alphabet.
    pub fn with_eos(mut self, eos: char) -> Result<Self> {
        let id =
            self.index.get(&eos).copied().ok_or_else(|| {
                Error::invalid("eos", format!("{eos:?}"), "is not in the alphabet")
            })?;
        self.eos = Some(id);
        Ok(self)
    }

    /// How [`decode`](Tokenizer::decode) renders the mask (default `[MASK]`).
    pub fn with_mask_text(mut self, text: impl Into<String>) -> Self {
        self.mask_text = text.into();
        self
    }

    /// The alphabet, by token id.
    pub fn alphabet(&self) -> &[char] {
        &self.alphabet
    }
}

impl Tokenizer for Chars {
    fn name(&self) -> &'static str {
        "character"
    }

    fn vocab_size(&self) -> usize {
        self.alphabet.len()
    }

    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(text.len());
        for (position, symbol) in text.chars().enumerate() {
            match (self.index.get(&symbol), self.on_unknown) {
                (Some(&t), _) => out.push(t),
                (None, OnUnknown::Skip) => {}
                (None, OnUnknown::Mask) => out.push(self.mask_id()),
                (None, OnUnknown::Error) => {
                    return Err(Error::UnknownSymbol {
                        tokenizer: self.name(),
                        symbol,
                        position,
                    })
                }
            }
        }
        Ok(out)
    }

    fn decode_real(&self, ids: &[usize]) -> Result<String> {
        Ok(ids.iter().map(|&t| self.alphabet[t]).collect())
    }

    fn mask_text(&self) -> &str {
        &self.mask_text
    }

    fn eos_id(&self) -> Option<usize> {
        self.eos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_order_is_the_id_and_bad_alphabets_are_refused() {
        let t = Chars::new("ab c\n").unwrap().with_eos('\n').unwrap();
        assert_eq!(t.vocab_size(), 5);
        assert_eq!(t.encode("cab a\n").unwrap(), [3, 0, 1, 2, 0, 4]);
        assert_eq!(t.eos_id(), Some(4));
        assert_eq!(t.mask_id(), 5);
        assert_eq!(t.decode(&[1, 5, 0]).unwrap(), "b[MASK]a");
        match t.encode("abd") {
            Err(Error::UnknownSymbol {
                symbol: 'd',
                position: 2,
                tokenizer: "character",
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(Chars::new("").is_err());
        assert!(Chars::new("aba").is_err());
        assert!(Chars::new("ab").unwrap().with_eos('z').is_err());
    }

    #[test]
    fn unknown_characters_can_be_skipped_or_masked() {
        let t = Chars::new("xyé").unwrap();
        assert_eq!(t.encode("éx").unwrap(), [2, 0]);
        let skip = t.clone().on_unknown(OnUnknown::Skip);
        assert_eq!(skip.encode("x?y").unwrap(), [0, 1]);
        let mask = t.on_unknown(OnUnknown::Mask).with_mask_text("_");
        assert_eq!(mask.encode("x?y").unwrap(), [0, 3, 1]);
        assert_eq!(mask.decode(&[0, 3, 1]).unwrap(), "x_y");
    }
}
