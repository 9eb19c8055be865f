//! Text and sequences in and out: tokenizers, corpus files, infilling prompts and sample metrics.
//!
//! ```text
//!   file (FASTA/FASTQ, text lines) ──records──▶ Tokenizer::encode ──pack──▶ fixed-length chunks ─▶ Corpus
//!   prefix, suffix strings ──Tokenizer::encode──▶ Condition (fixed positions) ─▶ sampler
//!   sampled tokens ──Tokenizer::decode──▶ strings;   sampled tokens ──eval──▶ k-mer r, distinct-n, Hamming
//! ```
//!
//! # Token ids and the mask
//!
//! A tokenizer with vocabulary size `V` emits ids `0..V`. sepo's absorbing graph over those tokens is
//! [`Absorbing::with_tokens(V)`](crate::graph::Absorbing::with_tokens): `V + 1` states whose last, `V`,
//! is the mask ([`Absorbing::mask_token`](crate::graph::Absorbing::mask_token)). So the mask id of every
//! tokenizer is [`Tokenizer::mask_id`] `= V`, outside the tokenizer's own vocabulary, the same
//! convention as SEDD (GPT-2's 50,257 tokens, mask 50257) and MDLM (mask id 50257). A uniform graph
//! has no mask and never produces that id. [`Tokenizer::decode`] renders the mask as
//! [`Tokenizer::mask_text`], so partially denoised states print legibly.

mod bpe;
mod chars;
mod eval;
mod infill;
mod nucleotide;
mod pack;
mod records;

pub use bpe::Bpe;
pub use chars::Chars;
pub use eval::{distinct_n, kmer_correlation, mean_pairwise_hamming};
pub use infill::{condition_from_template, decode_samples, Infill};
pub use nucleotide::Nucleotide;
pub use pack::{load_corpus, Chunks, Packing};
pub use records::{read_records, Format, Record, Records};

use crate::error::{Error, Result};

/// What a tokenizer does with a character it has no token for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnUnknown {
    /// [`Error::UnknownSymbol`] (the default).
    #[default]
    Error,
    /// Drop the character.
    Skip,
    /// Emit the mask id [`Tokenizer::mask_id`] (a free position when the tokens become a
    /// [`condition_from_template`]).
    Mask,
}

/// Text ↔ token ids, behind one interface for nucleotides, characters and GPT-2 BPE.
///
/// Object safe: corpora and infilling take `&dyn Tokenizer`.
pub trait Tokenizer {
    /// Short name used in errors (`nucleotide`, `character`, `bpe`).
    fn name(&self) -> &'static str;

    /// Number of real tokens `V`: every id this tokenizer emits for known text is in `0..V`.
    fn vocab_size(&self) -> usize;

    /// Token ids of `text`; an unknown character is [`Error::UnknownSymbol`] unless the tokenizer was
    /// configured to skip or mask it.
    fn encode(&self, text: &str) -> Result<Vec<usize>>;

    /// Text of real tokens (`ids` all `< V`, checked by [`decode`](Tokenizer::decode) before it calls
    /// this).
    fn decode_real(&self, ids: &[usize]) -> Result<String>;

    /// The absorbing mask id, `V` (the last state of `Absorbing::with_tokens(V)`; see the module docs).
    fn mask_id(&self) -> usize {
        self.vocab_size()
    }

    /// How [`decode`](Tokenizer::decode) renders a mask id.
    fn mask_text(&self) -> &str {
        "[MASK]"
    }

    /// End-of-sequence / document separator token, if the vocabulary has one (GPT-2's
    /// `<|endoftext|>`); [`Packing::Concatenate`] uses it between records.
    fn eos_id(&self) -> Option<usize> {
        None
    }

    /// Text of `ids`: runs of real tokens through [`decode_real`](Tokenizer::decode_real), each mask id
    /// as [`mask_text`](Tokenizer::mask_text). Any id `> V` is [`Error::TokenOutOfVocab`].
    fn decode(&self, ids: &[usize]) -> Result<String> {
        let (vocab, mask) = (self.vocab_size(), self.mask_id());
        if let Some(position) = ids.iter().position(|&t| t > vocab) {
            return Err(Error::TokenOutOfVocab {
                sequence: 0,
                position,
                token: ids[position],
                vocab: vocab + 1,
            });
        }
        let mut out = String::new();
        for (i, run) in ids.split(|&t| t == mask).enumerate() {
            if i > 0 {
                out.push_str(self.mask_text());
            }
            if !run.is_empty() {
                out.push_str(&self.decode_real(run)?);
            }
        }
        Ok(out)
    }
}
