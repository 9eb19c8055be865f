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
        if !s.is_finite() {
            return Err(Error::NonFinite {
                what: "total noise σ̄",
                index: i,
                value: s,
            });
        }
        if s < 0.0 {
            return Err(Error::invalid(
                "σ̄",
                s,
                format!("total noise must be ≥ 0 (sequence {i}); is the noise schedule negative?"),
            ));
        }
    }
    Ok(())
}

/// Largest number of elements sepo allocates for one buffer whose size is a product of user-given
/// sizes (parameters of a model, tokens of a batch, entries of a table): `2^31`, i.e. 8 GiB of `f32`
/// or 16 GiB of `f64`/`usize`. A larger request is refused by [`size`] with a typed error before
/// anything is allocated, instead of overflowing `usize` or aborting the process in the allocator.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The product of `factors` (each `(name, value)`), checked: an overflow of `usize`, or a product
/// above `cap`, is an [`Error::InvalidParameter`] naming the largest factor and listing them all.
pub fn size(what: &str, factors: &[(&'static str, usize)], cap: usize) -> Result<usize> {
    let product = factors
        .iter()
        .try_fold(1usize, |acc, &(_, n)| acc.checked_mul(n))
        .filter(|&p| p <= cap);
    product.ok_or_else(|| {
        let (name, value) = factors
            .iter()
            .copied()
            .max_by_key(|&(_, n)| n)
            .unwrap_or(("size", 0));
        let listed: Vec<String> = factors.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let approx: f64 = factors.iter().map(|&(_, n)| n as f64).product();
        Error::invalid(
            name,
            value,
            format!(
                "{what} needs {} ≈ {approx:.3e} elements, above the cap of {cap}",
                listed.join(" × ")
            ),
        )
    })
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

/// Largest k-mer table ([`crate::reward::KmerLogLikelihood::fit`]'s `alphabet^(order+1)` probabilities,
/// [`crate::data::kmer_frequencies`]' `alphabet^k` counts): `2^24` entries, 128 MiB of `f64`. It holds
/// every order ≤ 8 over DNA's 4 letters and order 2 over 256 symbols; a larger request is a typed error
/// before anything is allocated.
pub const MAX_KMER_TABLE: usize = 1 << 24;

/// `alphabet^k`, checked against [`MAX_KMER_TABLE`] (the error names `what`, the exponent's name).
pub(crate) fn kmer_table_len(alphabet: usize, k: usize, what: &'static str) -> Result<usize> {
    u32::try_from(k)
        .ok()
        .and_then(|k| alphabet.checked_pow(k))
        .filter(|&n| n <= MAX_KMER_TABLE)
        .ok_or_else(|| {
            Error::invalid(
                what,
                k,
                format!(
                    "a table of alphabet^{what} = {alphabet}^{k} ≈ {:.3e} entries exceeds MAX_KMER_TABLE = {MAX_KMER_TABLE}",
                    (alphabet as f64).powf(k as f64)
                ),
            )
        })
}
