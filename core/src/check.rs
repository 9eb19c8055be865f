//! Validation at sepo's API boundary: every check names the offender.

use crate::error::{Error, Result};

/// Checks a flat `[rows, cols]` token buffer: length, non-emptiness, and every id `< vocab`.
pub fn tokens(tokens: &[usize], rows: usize, cols: usize, vocab: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Empty {
            op: "tokens",
            what: "a batch needs at least one sequence of length ≥ 1",
        });
    }
    if tokens.len() != rows * cols {
        return Err(Error::ShapeMismatch {
            op: "tokens",
            expected: vec![rows, cols],
            got: vec![tokens.len()],
        });
    }
    if let Some(i) = tokens.iter().position(|&t| t >= vocab) {
        return Err(Error::TokenOutOfVocab {
            sequence: i / cols,
            position: i % cols,
            token: tokens[i],
            vocab,
        });
    }
    Ok(())
}

/// Checks per-sequence noise levels: one per row, finite, `≥ 0`.
pub fn sigmas(sigma_bar: &[f64], rows: usize) -> Result<()> {
    if sigma_bar.len() != rows {
        return Err(Error::ShapeMismatch {
            op: "sigma_bar",
            expected: vec![rows],
            got: vec![sigma_bar.len()],
        });
    }
    for (i, &s) in sigma_bar.iter().enumerate() {
        if !s.is_finite() || s < 0.0 {
            return Err(Error::NonFinite {
                what: "total noise σ̄ (must be finite and ≥ 0)",
                index: i,
                value: s,
            });
        }
    }
    Ok(())
}

/// Checks `0 < x` (and finite), naming the parameter.
pub fn positive(name: &'static str, x: f64) -> Result<f64> {
    if x > 0.0 && x.is_finite() {
        Ok(x)
    } else {
        Err(Error::invalid(name, x, "must be finite and > 0"))
    }
}

/// Checks `n ≥ 1`, naming the parameter.
pub fn nonzero(name: &'static str, n: usize) -> Result<usize> {
    if n >= 1 {
        Ok(n)
    } else {
        Err(Error::invalid(name, n, "must be ≥ 1"))
    }
}
