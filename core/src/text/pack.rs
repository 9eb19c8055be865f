//! Tokenised records packed into the fixed-length sequences a model trains on.

use std::path::{Path, PathBuf};

use super::{read_records, Format, Record, Records, Tokenizer};
use crate::error::{Error, Result};

/// How tokenised records become sequences of exactly `len` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// SEDD's packing of text: every record's tokens followed by `separator` (if any; GPT-2's
    /// `<|endoftext|>` for text), all concatenated and cut into consecutive chunks of `len`. From
    /// records of `n_i` tokens that makes `⌊Σ_i (n_i + [separator]) / len⌋` chunks; the remainder,
    /// shorter than `len`, is dropped. Chunks cross record boundaries.
    Concatenate {
        /// Token appended after each record.
        separator: Option<usize>,
    },
    /// One sequence per record: its first `len` tokens, or all of them followed by `pad` up to `len`.
    Pad {
        /// Token filling short records.
        pad: usize,
    },
    /// One sequence per record, which must have exactly `len` tokens (fixed-length data such as 200-bp
    /// enhancers); any other length is [`Error::BadRecord`].
    Exact,
}

/// Fixed-length token sequences from a stream of records, produced lazily (see [`Packing`]).
///
/// Errors name the file and the record: an unknown symbol, a mask id in a record (training data must be
/// clean), or a length [`Packing::Exact`] refuses are [`Error::BadRecord`]. The iterator stops after its
/// first error.
pub struct Chunks<'t, I> {
    records: I,
    path: PathBuf,
    tokenizer: &'t dyn Tokenizer,
    len: usize,
    packing: Packing,
    buffer: Vec<usize>,
    start: usize,
    records_read: usize,
    tokens_read: usize,
    done: bool,
}

impl<'t> Chunks<'t, Records> {
    /// Chunks of the records of `path` (see [`read_records`]).
    pub fn from_file(
        path: impl AsRef<Path>,
        format: Format,
        tokenizer: &'t dyn Tokenizer,
        len: usize,
        packing: Packing,
    ) -> Result<Self> {
        let records = read_records(path.as_ref(), format)?;
        Self::new(records, path.as_ref(), tokenizer, len, packing)
    }
}

impl<'t, I: Iterator<Item = Result<Record>>> Chunks<'t, I> {
    /// Chunks of `records` (read from `path`, which errors name). `len ≥ 1`; a separator or pad token must
    /// be a real token (`< vocab_size`), else [`Error::InvalidParameter`].
    pub fn new(
        records: I,
        path: impl Into<PathBuf>,
        tokenizer: &'t dyn Tokenizer,
        len: usize,
        packing: Packing,
    ) -> Result<Self> {
        crate::check::nonzero("len", len)?;
        let vocab = tokenizer.vocab_size();
        let (name, token) = match packing {
            Packing::Concatenate { separator } => ("separator", separator),
            Packing::Pad { pad } => ("pad", Some(pad)),
            Packing::Exact => ("", None),
        };
        if let Some(t) = token.filter(|&t| t >= vocab) {
            return Err(Error::invalid(
                name,
                t,
                format!("must be a token of the vocabulary (< {vocab})"),
            ));
        }
        Ok(Self {
            records,
            path: path.into(),
            tokenizer,
            len,
            packing,
            buffer: Vec::new(),
            start: 0,
            records_read: 0,
            tokens_read: 0,
            done: false,
        })
    }

    /// Records read so far.
    pub fn records_read(&self) -> usize {
        self.records_read
    }

    /// Tokens those records encoded to (separators not counted).
    pub fn tokens_read(&self) -> usize {
        self.tokens_read
    }

    /// Tokens held back for the next chunk (after the iterator ends: the dropped remainder of
    /// [`Packing::Concatenate`]).
    pub fn pending(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next record's tokens, `None` at the end of the file.
    fn next_record(&mut self) -> Option<Result<(usize, Vec<usize>)>> {
        let record = match self.records.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        let bad = |reason: String| Error::BadRecord {
            path: self.path.clone(),
            record: record.number,
            reason: match &record.id {
                Some(id) => format!("`{id}`: {reason}"),
                None => reason,
            },
        };
        let ids = match self.tokenizer.encode(&record.text) {
            Ok(ids) => ids,
            Err(e) => return Some(Err(bad(e.to_string()))),
        };
        let mask = self.tokenizer.mask_id();
        if let Some(p) = ids.iter().position(|&t| t == mask) {
            return Some(Err(bad(format!(
                "token {p} is the mask id {mask}; corpus records must encode to real tokens"
            ))));
        }
        self.records_read += 1;
        self.tokens_read += ids.len();
        Some(Ok((record.number, ids)))
    }

    fn next_chunk(&mut self) -> Option<Result<Vec<usize>>> {
        let len = self.len;
        match self.packing {
            Packing::Concatenate { separator } => {
                while self.buffer.len() - self.start < len {
                    let (_, ids) = match self.next_record()? {
                        Ok(r) => r,
                        Err(e) => return Some(Err(e)),
                    };
                    self.buffer.drain(..self.start);
                    self.start = 0;
                    self.buffer.extend(ids);
                    self.buffer.extend(separator);
                }
                let chunk = self.buffer[self.start..self.start + len].to_vec();
                self.start += len;
                Some(Ok(chunk))
            }
            Packing::Pad { pad } => Some(self.next_record()?.map(|(_, mut ids)| {
                ids.resize(len, pad);
                ids
            })),
            Packing::Exact => Some(self.next_record()?.and_then(|(number, ids)| {
                if ids.len() == len {
                    Ok(ids)
                } else {
                    Err(Error::BadRecord {
                        path: self.path.clone(),
                        record: number,
                        reason: format!(
                            "{} tokens, but Packing::Exact needs exactly {len}",
                            ids.len()
                        ),
                    })
                }
            })),
        }
    }
}

impl<I: Iterator<Item = Result<Record>>> Iterator for Chunks<'_, I> {
    type Item = Result<Vec<usize>>;

    fn next(&mut self) -> Option<Result<Vec<usize>>> {
        if self.done {
            return None;
        }
        let next = self.next_chunk();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

impl<I> std::fmt::Debug for Chunks<'_, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("packing", &self.packing)
            .field("records_read", &self.records_read)
            .finish_non_exhaustive()
    }
}

/// Reads, tokenises and packs a whole corpus file into sequences of `len` tokens (ready for
/// [`Corpus::new`](crate::train::Corpus::new) with `vocab = tokenizer.vocab_size()`). A file that yields
/// no full sequence is [`Error::EmptyCorpus`]; other errors as [`Chunks`] and [`read_records`].
pub fn load_corpus(
    path: impl AsRef<Path>,
    format: Format,
    tokenizer: &dyn Tokenizer,
    len: usize,
    packing: Packing,
) -> Result<Vec<Vec<usize>>> {
    let mut chunks = Chunks::from_file(path.as_ref(), format, tokenizer, len, packing)?;
    let out = chunks.by_ref().collect::<Result<Vec<_>>>()?;
    if out.is_empty() {
        return Err(Error::EmptyCorpus {
            path: path.as_ref().to_path_buf(),
            reason: format!(
                "{} records of {} tokens in all make no full sequence of {len}",
                chunks.records_read(),
                chunks.tokens_read()
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{Chars, Nucleotide};

    fn records(texts: &[&str]) -> Vec<Result<Record>> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Ok(Record {
                    number: i + 1,
                    id: None,
                    text: t.to_string(),
                })
            })
            .collect()
    }

    fn pack(texts: &[&str], len: usize, packing: Packing) -> Result<Vec<Vec<usize>>> {
        let t = Chars::new("abcdefg|").unwrap();
        Chunks::new(records(texts).into_iter(), "mem", &t, len, packing)?.collect()
    }

    #[test]
    fn concatenation_cuts_records_and_separators_into_full_chunks() {
        // Records of 3, 1 and 4 tokens, each followed by `|` (7): 3+1+1+1+4+1 = 11 tokens, so
        // ⌊11/3⌋ = 3 chunks and 2 tokens dropped.
        let sep = Packing::Concatenate { separator: Some(7) };
        let out = pack(&["abc", "d", "efga"], 3, sep).unwrap();
        assert_eq!(out, [vec![0, 1, 2], vec![7, 3, 7], vec![4, 5, 6]]);
        let t = Chars::new("abcdefg|").unwrap();
        let mut chunks = Chunks::new(
            records(&["abc", "d", "efga"]).into_iter(),
            "mem",
            &t,
            3,
            sep,
        )
        .unwrap();
        assert_eq!(chunks.by_ref().count(), 3);
        assert_eq!((chunks.records_read(), chunks.tokens_read()), (3, 8));
        assert_eq!(chunks.pending(), 2);
        // Without a separator: 8 tokens → 2 chunks of 4, nothing dropped.
        let none = Packing::Concatenate { separator: None };
        let out = pack(&["abc", "d", "efga"], 4, none).unwrap();
        assert_eq!(out, [vec![0, 1, 2, 3], vec![4, 5, 6, 0]]);
        // One long record spans many chunks.
        assert_eq!(pack(&["abcdefgabc"], 2, none).unwrap().len(), 5);
    }

    #[test]
    fn padding_truncates_or_fills_each_record_and_exact_refuses_other_lengths() {
        let out = pack(&["abcde", "f", ""], 3, Packing::Pad { pad: 7 }).unwrap();
        assert_eq!(out, [vec![0, 1, 2], vec![5, 7, 7], vec![7, 7, 7]]);
        assert_eq!(
            pack(&["ab", "cd"], 2, Packing::Exact).unwrap(),
            [vec![0, 1], vec![2, 3]]
        );
        match pack(&["ab", "cde"], 2, Packing::Exact) {
            Err(Error::BadRecord { record: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_parameters_and_records_are_typed_errors() {
        assert!(pack(&["ab"], 0, Packing::Exact).is_err());
        assert!(pack(&["ab"], 2, Packing::Pad { pad: 8 }).is_err());
        let sep = Packing::Concatenate {
            separator: Some(99),
        };
        assert!(pack(&["ab"], 2, sep).is_err());
        match pack(&["ab", "axb"], 2, Packing::Exact) {
            Err(Error::BadRecord {
                record: 2, reason, ..
            }) => assert!(reason.contains("'x'")),
            other => panic!("{other:?}"),
        }
        // A masked symbol is not training data.
        let t = Nucleotide::new().ambiguous(crate::text::OnUnknown::Mask);
        let r = Chunks::new(records(&["ACNT"]).into_iter(), "mem", &t, 4, Packing::Exact)
            .unwrap()
            .collect::<Result<Vec<_>>>();
        assert!(matches!(r, Err(Error::BadRecord { record: 1, .. })));
    }
}
