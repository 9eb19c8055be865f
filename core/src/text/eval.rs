//! Sample metrics a paper reports over token sequences: naturalness (k-mer correlation against a
//! reference set) and diversity (distinct-n, mean pairwise Hamming distance).

use std::collections::HashSet;

use crate::data::{kmer_frequencies, pearson};
use crate::error::{Error, Result};

/// Pearson correlation between the k-mer spectra of `samples` and of `reference`:
///
/// `r = Σ_w (f_s(w) − f̄_s)(f_r(w) − f̄_r) / √(Σ_w (f_s(w) − f̄_s)² · Σ_w (f_r(w) − f̄_r)²)`
///
/// over all `alphabet^k` k-mers `w`, where `f(w)` is the fraction of length-`k` windows (over all
/// sequences of the set) equal to `w` ([`kmer_frequencies`]) and `f̄ = 1/alphabet^k` its mean. 1 is
/// a perfect match (the 3-mer correlation of DRAKES/SEPO's DNA experiments). The table must fit
/// [`MAX_KMER_TABLE`](crate::reward::MAX_KMER_TABLE) (so for GPT-2's vocabulary only `k = 1`). A spectrum
/// with no windows or all k-mers equally frequent leaves `r` undefined: [`Error::InvalidParameter`].
pub fn kmer_correlation(
    samples: &[Vec<usize>],
    reference: &[Vec<usize>],
    k: usize,
    alphabet: usize,
) -> Result<f64> {
    let fs = kmer_frequencies(samples, k, alphabet)?;
    let fr = kmer_frequencies(reference, k, alphabet)?;
    let r = pearson(&fs, &fr);
    if r.is_finite() {
        Ok(r)
    } else {
        let constant = |f: &[f64]| f.iter().all(|&x| x == f[0]);
        let which = if constant(&fs) {
            "samples"
        } else {
            "reference"
        };
        Err(Error::invalid(
            which,
            format!("{} sequences", if constant(&fs) { samples.len() } else { reference.len() }),
            format!("their {k}-mer spectrum is constant (no windows, or all k-mers equally frequent): the correlation is undefined"),
        ))
    }
}

/// Distinct-n (Li et al., 2016): the fraction of the n-grams of all sequences that are distinct,
///
/// `distinct-n = |⋃_i G_n(x_i)| / Σ_i max(0, |x_i| − n + 1)`,
///
/// where `G_n(x)` is the set of length-`n` windows of `x`. 1 when no n-gram repeats; near `1/N` when the
/// `N` n-grams are all the same. `n ≥ 1`; no sequence of length `≥ n` is [`Error::Empty`].
pub fn distinct_n(sequences: &[Vec<usize>], n: usize) -> Result<f64> {
    crate::check::nonzero("n", n)?;
    let mut seen: HashSet<&[usize]> = HashSet::new();
    let mut total = 0usize;
    for s in sequences {
        for w in s.windows(n) {
            seen.insert(w);
            total += 1;
        }
    }
    if total == 0 {
        return Err(Error::Empty {
            op: "distinct_n",
            what: "no sequence is at least n tokens long",
        });
    }
    Ok(seen.len() as f64 / total as f64)
}

/// Mean Hamming distance over the `C(m, 2)` pairs of `m ≥ 2` equally long sequences of length `L`:
///
/// `d̄ = C(m,2)⁻¹ Σ_{i<j} Σ_l [x_{il} ≠ x_{jl}] = Σ_l (1 − C(m,2)⁻¹ Σ_v C(c_{lv}, 2))`,
///
/// where `c_{lv}` counts the sequences with token `v` at position `l` (the second form is how it is
/// computed, in `O(m·L)`). In tokens; divide by `L` for a fraction. Fewer than two sequences is
/// [`Error::Empty`]; unequal lengths [`Error::ShapeMismatch`].
pub fn mean_pairwise_hamming(sequences: &[Vec<usize>]) -> Result<f64> {
    let m = sequences.len();
    if m < 2 {
        return Err(Error::Empty {
            op: "mean_pairwise_hamming",
            what: "a pairwise distance needs at least two sequences",
        });
    }
    let len = sequences[0].len();
    if let Some((i, s)) = sequences.iter().enumerate().find(|(_, s)| s.len() != len) {
        return Err(Error::ShapeMismatch {
            op: "mean_pairwise_hamming (sequence length)",
            expected: vec![len],
            got: vec![i, s.len()],
        });
    }
    let pairs = (m * (m - 1) / 2) as f64;
    let mut column: Vec<usize> = Vec::with_capacity(m);
    let mut total = 0.0;
    for l in 0..len {
        column.clear();
        column.extend(sequences.iter().map(|s| s[l]));
        column.sort_unstable();
        let same: usize = column
            .chunk_by(|a, b| a == b)
            .map(|run| run.len() * (run.len() - 1) / 2)
            .sum();
        total += 1.0 - same as f64 / pairs;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn kmer_correlation_matches_a_hand_computed_value() {
        // 1-mer spectra over 3 letters: samples (2/3, 1/3, 0), reference (1/2, 1/6, 1/3). Deviations from
        // 1/3: (1/3, 0, −1/3) and (1/6, −1/6, 0); r = (1/18) / √(2/9 · 1/18) = 1/2.
        let r = kmer_correlation(&[vec![0, 0, 1]], &[vec![0, 0, 0, 1, 2, 2]], 1, 3).unwrap();
        assert_abs_diff_eq!(r, 0.5, epsilon = 1e-12);
        // 2-mers over 2 letters: samples {00, 01} each 1/2 → (1/2, 1/2, 0, 0); reference {01, 11} →
        // (0, 1/2, 0, 1/2). Deviations from 1/4: (¼, ¼, −¼, −¼) and (−¼, ¼, −¼, ¼): r = 0.
        let r = kmer_correlation(&[vec![0, 0, 1]], &[vec![0, 1, 1]], 2, 2).unwrap();
        assert_abs_diff_eq!(r, 0.0, epsilon = 1e-12);
        // Identical spectra: 1.
        let r = kmer_correlation(&[vec![0, 1, 1, 2]], &[vec![1, 2, 0, 1]], 1, 3).unwrap();
        assert_abs_diff_eq!(r, 1.0, epsilon = 1e-12);
        // Uniform spectrum (or no windows): undefined, a typed error.
        assert!(kmer_correlation(&[vec![0, 1]], &[vec![0, 0, 1]], 1, 2).is_err());
        assert!(kmer_correlation(&[vec![0]], &[vec![0, 0, 1]], 2, 2).is_err());
        // Tokens outside the alphabet are refused by the k-mer counter.
        assert!(kmer_correlation(&[vec![0, 3]], &[vec![0, 0, 1]], 1, 2).is_err());
    }

    #[test]
    fn distinct_n_matches_hand_counts() {
        // abab, abba: bigrams 01 10 01 | 01 11 10 → 6 in all, 3 distinct.
        let s = [vec![0, 1, 0, 1], vec![0, 1, 1, 0]];
        assert_abs_diff_eq!(distinct_n(&s, 2).unwrap(), 0.5, epsilon = 1e-15);
        // 8 unigrams, 2 distinct.
        assert_abs_diff_eq!(distinct_n(&s, 1).unwrap(), 0.25, epsilon = 1e-15);
        // Trigrams 010 101 | 011 110: all distinct. A too-short sequence contributes none.
        let t = [vec![0, 1, 0, 1], vec![0, 1, 1, 0], vec![2, 2]];
        assert_abs_diff_eq!(distinct_n(&t, 3).unwrap(), 1.0, epsilon = 1e-15);
        assert!(distinct_n(&s, 5).is_err());
        assert!(distinct_n(&s, 0).is_err());
    }

    #[test]
    fn mean_pairwise_hamming_matches_hand_counts() {
        // d(012, 022) = 1, d(012, 111) = 2, d(022, 111) = 3: mean 2.
        let s = [vec![0, 1, 2], vec![0, 2, 2], vec![1, 1, 1]];
        assert_abs_diff_eq!(mean_pairwise_hamming(&s).unwrap(), 2.0, epsilon = 1e-12);
        // Four copies of one sequence and one differing everywhere: 4 of 10 pairs at distance 3.
        let mut t = vec![vec![0, 0, 0]; 4];
        t.push(vec![1, 2, 3]);
        assert_abs_diff_eq!(mean_pairwise_hamming(&t).unwrap(), 1.2, epsilon = 1e-12);
        assert!(mean_pairwise_hamming(&s[..1]).is_err());
        assert!(mean_pairwise_hamming(&[vec![0, 1], vec![0]]).is_err());
    }
}
