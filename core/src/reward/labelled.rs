//! Labelled sequences from a CSV file of `(sequence, label)` rows, for training a classifier reward
//! ([`crate::reward::ConvClassifier`]), and their train/validation split.
//!
//! Format: two fields per row, the sequence (symbols of the given alphabet, case-insensitive) and the
//! label (a number; `0` or `1` for a binary task). A first row whose label is not a number is a header
//! and skipped; lines starting with `#` are comments. Every sequence must have the length of the first
//! one. Each bad row is an [`Error::BadRecord`] naming its line and what is wrong.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};

/// What the label means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LabelKind {
    /// A real value (regression, squared error).
    Regression,
    /// `0` or `1` (binary classification, cross-entropy on the logit).
    Binary,
}

/// Token sequences of one length with one label each.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The sequences, as token ids (`< alphabet.len()`).
    pub sequences: Vec<Vec<usize>>,
    /// One label per sequence.
    pub labels: Vec<f64>,
    /// What the labels mean.
    pub kind: LabelKind,
}

fn bad(path: &Path, record: usize, reason: impl Into<String>) -> Error {
    Error::BadRecord {
        path: path.to_path_buf(),
        record,
        reason: reason.into(),
    }
}

impl Labelled {
    /// Reads `path` (module docs); symbol `alphabet[k]` is token `k`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened, [`Error::BadRecord`] for the first bad row (wrong
    /// field count, unknown symbol, empty sequence, other length, label not a number, not finite, or
    /// not 0/1 for a binary task), [`Error::EmptyCorpus`] when no row remains,
    /// [`Error::InvalidParameter`] for an empty or repeated alphabet.
    pub fn from_csv(path: &Path, alphabet: &str, kind: LabelKind) -> Result<Self> {
        let symbols: Vec<char> = alphabet.chars().map(|c| c.to_ascii_uppercase()).collect();
        let mut unique = symbols.clone();
        unique.sort_unstable();
        unique.dedup();
        if symbols.is_empty() || unique.len() != symbols.len() {
            return Err(Error::invalid(
                "alphabet",
                alphabet,
                "must be non-empty with distinct symbols",
            ));
        }
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(file);
        let mut out = Self {
            sequences: Vec::new(),
            labels: Vec::new(),
            kind,
        };
        let mut first = true;
        for row in reader.records() {
            let row = row.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line() as usize);
                bad(path, line, format!("not readable as CSV: {e}"))
            })?;
            let line = row.position().map_or(0, |p| p.line() as usize);
            let header = std::mem::replace(&mut first, false);
            if row.len() != 2 {
                return Err(bad(
                    path,
                    line,
                    format!("expected 2 fields (sequence, label), found {}", row.len()),
                ));
            }
            let label_text = &row[1];
            let label: f64 = match label_text.parse() {
                Ok(v) => v,
                Err(_) if header => continue,
                Err(_) => {
                    return Err(bad(
                        path,
                        line,
                        format!("label {label_text:?} is not a number"),
                    ))
                }
            };
            if !label.is_finite() {
                return Err(bad(path, line, format!("label {label} is not finite")));
            }
            if kind == LabelKind::Binary && label != 0.0 && label != 1.0 {
                return Err(bad(
                    path,
                    line,
                    format!("a binary label must be 0 or 1, not {label}"),
                ));
            }
            let mut seq = Vec::with_capacity(row[0].len());
            for (p, c) in row[0].chars().enumerate() {
                let c = c.to_ascii_uppercase();
                let token = symbols.iter().position(|&s| s == c).ok_or_else(|| {
                    bad(
                        path,
                        line,
                        format!("unknown symbol {c:?} at position {p} (alphabet {alphabet:?})"),
                    )
                })?;
                seq.push(token);
            }
            if seq.is_empty() {
                return Err(bad(path, line, "empty sequence"));
            }
            if let Some(l) = out.sequences.first().map(Vec::len) {
                if seq.len() != l {
                    return Err(bad(
                        path,
                        line,
                        format!(
                            "sequence of length {}, where the file's sequences have length {l}",
                            seq.len()
                        ),
                    ));
                }
            }
            out.sequences.push(seq);
            out.labels.push(label);
        }
        if out.sequences.is_empty() {
            return Err(Error::EmptyCorpus {
                path: PathBuf::from(path),
                reason: "no (sequence, label) rows".into(),
            });
        }
        Ok(out)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Sequence length (0 when empty).
    pub fn seq_len(&self) -> usize {
        self.sequences.first().map_or(0, Vec::len)
    }

    /// Rows `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Self {
        Self {
            sequences: idx.iter().map(|&i| self.sequences[i].clone()).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            kind: self.kind,
        }
    }

    /// A seeded random split into (train, validation), `round(valid_fraction · n)` rows validating
    /// (at least one in each part).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a fraction outside `(0, 1)` or fewer than 2 rows.
    pub fn split(&self, valid_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
            return Err(Error::invalid(
                "valid_fraction",
                valid_fraction,
                "must be in (0, 1)",
            ));
        }
        let n = self.len();
        if n < 2 {
            return Err(Error::invalid("rows", n, "a split needs at least 2 rows"));
        }
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let n_valid = ((valid_fraction * n as f64).round() as usize).clamp(1, n - 1);
        let (valid, train) = idx.split_at(n_valid);
        Ok((self.subset(train), self.subset(valid)))
    }
}
