//! A borrowed batch of token sequences of one length, stored flat: the shape every estimator reads.

use crate::error::{Error, Result};

/// `B` token sequences of one length `L`, stored flat and row-major: sequence `b` is
/// `tokens[b·L .. (b+1)·L]`. Construction checks the shape (`B ≥ 1`, `L ≥ 1`, `B·L` tokens); the
/// vocabulary is checked by whoever knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequences<'a> {
    tokens: &'a [usize],
    batch: usize,
}

impl<'a> Sequences<'a> {
    /// Views `tokens` as `batch` sequences of length `tokens.len() / batch`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for `batch = 0`; [`Error::ShapeMismatch`] when `tokens` is empty or
    /// its length is not a multiple of `batch`.
    pub fn new(tokens: &'a [usize], batch: usize) -> Result<Self> {
        crate::check::nonzero("batch", batch)?;
        let l = tokens.len() / batch;
        if l == 0 || tokens.len() != batch * l {
            return Err(Error::ShapeMismatch {
                op: "Sequences::new (tokens vs batch)",
                expected: vec![batch, l.max(1)],
                got: vec![tokens.len()],
            });
        }
        Ok(Self { tokens, batch })
    }

    /// The flat tokens `[B·L]`.
    pub fn tokens(&self) -> &'a [usize] {
        self.tokens
    }

    /// Number of sequences `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Length `L` of each sequence.
    pub fn seq_len(&self) -> usize {
        self.tokens.len() / self.batch
    }

    /// Sequence `b`.
    pub fn row(&self, b: usize) -> &'a [usize] {
        let l = self.seq_len();
        &self.tokens[b * l..(b + 1) * l]
    }

    /// Sequences `start..end` as a view of their own.
    ///
    /// # Panics
    /// If `start ≥ end` or `end > B`.
    pub fn rows(&self, start: usize, end: usize) -> Sequences<'a> {
        assert!(start < end && end <= self.batch, "Sequences::rows: range");
        let l = self.seq_len();
        Sequences {
            tokens: &self.tokens[start * l..end * l],
            batch: end - start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_checked_and_rows_are_slices() {
        let x = [0, 1, 2, 3, 4, 5];
        let s = Sequences::new(&x, 3).unwrap();
        assert_eq!((s.batch(), s.seq_len()), (3, 2));
        assert_eq!(s.row(1), &[2, 3]);
        assert_eq!(s.rows(1, 3).tokens(), &[2, 3, 4, 5]);
        assert!(Sequences::new(&x, 0).is_err());
        assert!(Sequences::new(&x, 4).is_err());
        assert!(Sequences::new(&[], 1).is_err());
    }
}
