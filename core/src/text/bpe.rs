//! Byte-pair encoding (GPT-2's tokenizer) from a Hugging Face `tokenizer.json`, through the
//! `tokenizers` crate.

use std::path::{Path, PathBuf};

use tokenizers::models::ModelWrapper;

use super::Tokenizer;
use crate::error::{Error, Result};

/// The token GPT-2 uses between documents, taken as [`Tokenizer::eos_id`] when the vocabulary has it.
pub const GPT2_EOS: &str = "<|endoftext|>";

/// A BPE tokenizer read from a `tokenizer.json` (the format `tokenizers` and `transformers` save; GPT-2's
/// is the one SEDD and MDLM use). Vocabulary `V` = the model's tokens plus added tokens (50,257 for
/// GPT-2), mask id `V`; the end-of-sequence token is `<|endoftext|>` when present.
///
/// Byte-level BPE (GPT-2's) has a token for every byte, so any text encodes and
/// `decode(encode(s)) = s`. A BPE without byte fallback drops characters it has no token for, or
/// emits its `unk` token: both are reported as [`Error::UnknownSymbol`] (found from the encoding's
/// offsets: a non-whitespace character no token covers, or one covered by the `unk` token).
/// Truncation and padding stored in the file are switched off: packing is [`super::Packing`]'s job.
pub struct Bpe {
    inner: tokenizers::Tokenizer,
    origin: PathBuf,
    vocab: usize,
    unk: Option<u32>,
    eos: Option<usize>,
    mask_text: String,
}

impl std::fmt::Debug for Bpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpe")
            .field("vocab", &self.vocab)
            .field("unk", &self.unk)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

impl Bpe {
    /// Reads `path` (a `tokenizer.json`). Unreadable → [`Error::Io`]; not a BPE `tokenizer.json`, or ids
    /// that are not exactly `0..V` → [`Error::BadTokenizer`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&bytes, path)
    }

    /// Parses the contents of a `tokenizer.json`; `origin` names it in errors.
    pub fn from_json(json: &[u8], origin: impl AsRef<Path>) -> Result<Self> {
        let bad = |reason: String| Error::BadTokenizer {
            path: PathBuf::from(origin.as_ref()),
            reason,
        };
        let mut inner = tokenizers::Tokenizer::from_bytes(json).map_err(|e| bad(e.to_string()))?;
        let unk_text = match inner.get_model() {
            ModelWrapper::BPE(bpe) => bpe.get_unk_token().clone(),
            _ => return Err(bad("the model is not BPE".into())),
        };
        inner
            .with_truncation(None)
            .map_err(|e| bad(e.to_string()))?;
        inner.with_padding(None);
        let vocab = inner.get_vocab_size(true);
        if vocab == 0 {
            return Err(bad("the vocabulary is empty".into()));
        }
        // Every id in 0..V must name a token: sepo's graphs have exactly V real states.
        if let Some(hole) = (0..vocab).find(|&i| inner.id_to_token(i as u32).is_none()) {
            return Err(bad(format!(
                "token ids are not contiguous: {vocab} tokens but no token has id {hole}"
            )));
        }
        let unk = unk_text.and_then(|t| inner.token_to_id(&t));
        let eos = inner.token_to_id(GPT2_EOS).map(|i| i as usize);
        Ok(Self {
            inner,
            origin: origin.as_ref().to_path_buf(),
            vocab,
            unk,
            eos,
            mask_text: "[MASK]".into(),
        })
    }

    /// Declares `token` the end-of-sequence separator instead of `<|endoftext|>`; it must be in the
    /// vocabulary.
    pub fn with_eos(mut self, token: &str) -> Result<Self> {
        let id = self.inner.token_to_id(token).ok_or_else(|| {
            Error::invalid("eos", format!("{token:?}"), "is not in the vocabulary")
        })?;
        self.eos = Some(id as usize);
        Ok(self)
    }

    /// How [`decode`](Tokenizer::decode) renders the mask (default `[MASK]`).
    pub fn with_mask_text(mut self, text: impl Into<String>) -> Self {
        self.mask_text = text.into();
        self
    }

    /// The token string of `id` (GPT-2's byte-level form, e.g. `Ġthe` for " the").
    pub fn token(&self, id: usize) -> Option<String> {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.inner.id_to_token(id))
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn failed(&self, what: &str, e: tokenizers::Error) -> Error {
        Error::BadTokenizer {
            path: self.origin.clone(),
            reason: format!("{what} failed: {e}"),
        }
    }

    /// The first non-whitespace character that encodes, alone, to nothing or to `unk`. After a dropped
    /// character the model's offsets shift, so they only say that something is unknown, not what;
    /// `hint` is the position they point at, used if no single character fails alone.
    fn locate_unknown(&self, text: &str, hint: usize) -> Error {
        let fails = |c: char| match self.inner.encode(c.to_string().as_str(), false) {
            Ok(e) => e.get_ids().is_empty() || e.get_ids().iter().any(|&i| Some(i) == self.unk),
            Err(_) => true,
        };
        let (position, symbol) = text
            .chars()
            .enumerate()
            .find(|&(_, c)| !c.is_whitespace() && fails(c))
            .unwrap_or_else(|| (hint, text.chars().nth(hint).unwrap_or('\u{FFFD}')));
        Error::UnknownSymbol {
            tokenizer: self.name(),
            symbol,
            position,
        }
    }
}

impl Tokenizer for Bpe {
    fn name(&self) -> &'static str {
        "bpe"
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn encode(&self, text: &str) -> Result<Vec<usize>> {
        let encoding = self
            .inner
            .encode_char_offsets(text, false)
            .map_err(|e| self.failed("encoding", e))?;
        let chars = text.chars().count();
        let mut covered = vec![false; chars];
        for (&id, &(start, end)) in encoding.get_ids().iter().zip(encoding.get_offsets()) {
            if Some(id) == self.unk {
                return Err(self.locate_unknown(text, start));
            }
            covered[start.min(chars)..end.min(chars)].fill(true);
        }
        if let Some((position, _)) = text
            .chars()
            .zip(&covered)
            .enumerate()
            .find(|(_, (c, &cov))| !cov && !c.is_whitespace())
        {
            return Err(self.locate_unknown(text, position));
        }
        Ok(encoding.get_ids().iter().map(|&i| i as usize).collect())
    }

    fn decode_real(&self, ids: &[usize]) -> Result<String> {
        // `decode` has checked ids < V ≤ u32::MAX (V came from u32 ids).
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.inner
            .decode(&ids, false)
            .map_err(|e| self.failed("decoding", e))
    }

    fn mask_text(&self) -> &str {
        &self.mask_text
    }

    fn eos_id(&self) -> Option<usize> {
        self.eos
    }
}
