//! Synthetic corpora for examples and tests: a DNA-like generator with known statistics, and k-mer
//! statistics for naturalness checks.
//!
//! The generator is a second-order Markov chain over `A, C, G, T` (tokens `0..4`) with random but
//! fixed transition probabilities (seeded), into which short motifs are planted at a given rate. It stands
//! in for real enhancer sequences, which cannot be downloaded here: it has local structure a model must
//! learn (3-mer statistics) and a motif reward has something to find.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma};

use crate::error::Result;

/// Names of the four nucleotides, by token.
pub const NUCLEOTIDES: [char; 4] = ['A', 'C', 'G', 'T'];

/// A seeded DNA-like sequence generator.
#[derive(Debug, Clone)]
pub struct DnaLike {
    /// `P(x_i | x_{i−2}, x_{i−1})`, indexed `[(a·4 + b)·4 + c]`.
    pub transition: Vec<f64>,
    /// Motifs planted into sequences.
    pub motifs: Vec<Vec<usize>>,
    /// Expected number of planted motifs per 100 positions.
    pub motif_rate: f64,
}

impl DnaLike {
    /// A generator whose transition rows are `Dirichlet(0.5)` draws from `seed` (peaked, so 3-mer
    /// statistics are far from uniform), with the motif `TATA` planted at 0.5 per 100 positions.
    pub fn new(seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let gamma = Gamma::new(0.5, 1.0).expect("valid gamma");
        let mut transition = Vec::with_capacity(64);
        for _ in 0..16 {
            let row: Vec<f64> = (0..4).map(|_| gamma.sample(&mut rng) + 1e-3).collect();
            let z: f64 = row.iter().sum();
            transition.extend(row.iter().map(|x| x / z));
        }
        Self {
            transition,
            motifs: vec![vec![3, 0, 3, 0]],
            motif_rate: 0.5,
        }
    }

    /// Draws one sequence of length `len`.
    pub fn sample<R: Rng>(&self, len: usize, rng: &mut R) -> Vec<usize> {
        let mut seq = Vec::with_capacity(len);
        for i in 0..len {
            let t = if i < 2 {
                rng.gen_range(0..4)
            } else {
                let row = &self.transition[(seq[i - 2] * 4 + seq[i - 1]) * 4..][..4];
                crate::categorical::draw(row, rng)
            };
            seq.push(t);
        }
        for motif in &self.motifs {
            if motif.len() > len {
                continue;
            }
            let expected = self.motif_rate * len as f64 / 100.0;
            let count =
                expected.floor() as usize + usize::from(rng.gen::<f64>() < expected.fract());
            for _ in 0..count {
                let start = rng.gen_range(0..=len - motif.len());
                seq[start..start + motif.len()].copy_from_slice(motif);
            }
        }
        seq
    }

    /// Draws `count` sequences of length `len` from `seed`.
    pub fn corpus(&self, count: usize, len: usize, seed: u64) -> Vec<Vec<usize>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..count).map(|_| self.sample(len, &mut rng)).collect()
    }
}

/// Normalised k-mer frequencies (`alphabet^k` entries, lexicographic, at most
/// [`MAX_KMER_TABLE`](crate::check::MAX_KMER_TABLE)) over a set of sequences.
pub fn kmer_frequencies(sequences: &[Vec<usize>], k: usize, alphabet: usize) -> Result<Vec<f64>> {
    crate::check::nonzero("k", k)?;
    let mut counts = vec![0.0; crate::check::kmer_table_len(alphabet, k, "k")?];
    for s in sequences {
        if !s.is_empty() {
            crate::check::tokens(s, 1, s.len(), alphabet)?;
        }
        for w in s.windows(k) {
            counts[w.iter().fold(0, |acc, &t| acc * alphabet + t)] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    if total > 0.0 {
        counts.iter_mut().for_each(|c| *c /= total);
    }
    Ok(counts)
}

/// Pearson correlation of two equally long vectors (NaN if either is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    sab / (saa * sbb).sqrt()
}

/// Renders tokens `0..4` as a nucleotide string (other tokens as `N`).
pub fn to_dna_string(seq: &[usize]) -> String {
    seq.iter()
        .map(|&t| NUCLEOTIDES.get(t).copied().unwrap_or('N'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_has_structure_and_statistics_are_reproducible() {
        let g = DnaLike::new(1);
        let a = g.corpus(200, 64, 5);
        let b = g.corpus(200, 64, 5);
        assert_eq!(a, b);
        let f = kmer_frequencies(&a, 3, 4).unwrap();
        approx::assert_abs_diff_eq!(f.iter().sum::<f64>(), 1.0, epsilon = 1e-12);
        // Far from uniform (1/64 each): the most frequent 3-mer is several times the uniform rate.
        assert!(f.iter().cloned().fold(0.0, f64::max) > 3.0 / 64.0);
        // Two independent corpora from the same generator agree closely; a uniform corpus does not.
        let c = g.corpus(200, 64, 6);
        assert!(pearson(&f, &kmer_frequencies(&c, 3, 4).unwrap()) > 0.9);
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let uniform: Vec<Vec<usize>> = (0..200)
            .map(|_| (0..64).map(|_| rng.gen_range(0..4)).collect())
            .collect();
        assert!(pearson(&f, &kmer_frequencies(&uniform, 3, 4).unwrap()) < 0.5);
        assert_eq!(to_dna_string(&[0, 1, 2, 3, 4]), "ACGTN");
    }
}
