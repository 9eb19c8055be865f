//! Built-in rewards for tutorials and tests: motifs, GC content, k-mer log-likelihood.

use super::SequenceReward;
use crate::error::{Error, Result};

/// Number of (overlapping) occurrences of `motif`, divided by `per` (1 by default).
#[derive(Debug, Clone, PartialEq)]
pub struct MotifCount {
    /// The motif.
    pub motif: Vec<usize>,
    /// Divisor (e.g. the expected count) to keep rewards O(1).
    pub per: f64,
}

impl MotifCount {
    /// Counts `motif` (non-empty).
    pub fn new(motif: Vec<usize>) -> Self {
        Self { motif, per: 1.0 }
    }
}

fn count(seq: &[usize], motif: &[usize]) -> usize {
    if motif.is_empty() || motif.len() > seq.len() {
        return 0;
    }
    seq.windows(motif.len()).filter(|w| *w == motif).count()
}

impl SequenceReward for MotifCount {
    fn name(&self) -> String {
        format!("motif_count{:?}", self.motif)
    }
    fn score_one(&self, seq: &[usize]) -> f64 {
        count(seq, &self.motif) as f64 / self.per
    }
}

/// 1 if `motif` occurs, 0 otherwise. Range `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MotifPresence {
    /// The motif.
    pub motif: Vec<usize>,
}

impl SequenceReward for MotifPresence {
    fn name(&self) -> String {
        format!("has_motif{:?}", self.motif)
    }
    fn score_one(&self, seq: &[usize]) -> f64 {
        f64::from(u8::from(count(seq, &self.motif) > 0))
    }
    fn range(&self) -> Option<(f64, f64)> {
        Some((0.0, 1.0))
    }
}

/// Fraction of positions holding one of `tokens` (G or C: tokens 1 and 2 for `ACGT`). Range `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GcContent {
    /// Tokens that count.
    pub tokens: Vec<usize>,
}

impl Default for GcContent {
    fn default() -> Self {
        Self { tokens: vec![1, 2] }
    }
}

impl SequenceReward for GcContent {
    fn name(&self) -> String {
        "gc_content".into()
    }
    fn score_one(&self, seq: &[usize]) -> f64 {
        if seq.is_empty() {
            return 0.0;
        }
        seq.iter().filter(|t| self.tokens.contains(t)).count() as f64 / seq.len() as f64
    }
    fn range(&self) -> Option<(f64, f64)> {
        Some((0.0, 1.0))
    }
}

/// Mean per-position log-likelihood under an order-`k` Markov model:
/// `r(x) = (1/(L−k)) Σ_{i≥k} log P(x_i | x_{i−k..i})`.
#[derive(Debug, Clone, PartialEq)]
pub struct KmerLogLikelihood {
    order: usize,
    alphabet: usize,
    /// `log P(c | context)`, indexed `context·alphabet + c`.
    log_prob: Vec<f64>,
}

pub use crate::check::MAX_KMER_TABLE;

impl KmerLogLikelihood {
    /// Fits the Markov model to `corpus` with add-`alpha` smoothing (`alpha > 0`). The table has
    /// `alphabet^(order+1)` entries, at most [`MAX_KMER_TABLE`].
    pub fn fit(corpus: &[Vec<usize>], order: usize, alphabet: usize, alpha: f64) -> Result<Self> {
        crate::check::nonzero("alphabet", alphabet)?;
        crate::check::positive("alpha", alpha)?;
        if order > 8 {
            return Err(Error::invalid("order", order, "must be ≤ 8"));
        }
        let entries = crate::check::kmer_table_len(alphabet, order + 1, "order + 1")?;
        let contexts = entries / alphabet;
        let mut counts = vec![alpha; entries];
        for (i, s) in corpus.iter().enumerate() {
            if let Some(p) = s.iter().position(|&t| t >= alphabet) {
                return Err(Error::TokenOutOfVocab {
                    sequence: i,
                    position: p,
                    token: s[p],
                    vocab: alphabet,
                });
            }
            for w in s.windows(order + 1) {
                counts[w.iter().fold(0, |acc, &t| acc * alphabet + t)] += 1.0;
            }
        }
        let mut log_prob = counts.clone();
        for c in 0..contexts {
            let row = &mut log_prob[c * alphabet..(c + 1) * alphabet];
            let z: f64 = row.iter().sum();
            row.iter_mut().for_each(|x| *x = (*x / z).ln());
        }
        Ok(Self {
            order,
            alphabet,
            log_prob,
        })
    }
}

impl SequenceReward for KmerLogLikelihood {
    fn name(&self) -> String {
        format!("kmer_loglik(order={})", self.order)
    }
    fn score_one(&self, seq: &[usize]) -> f64 {
        if seq.len() <= self.order || seq.iter().any(|&t| t >= self.alphabet) {
            // Out-of-vocabulary tokens have probability 0 under the model.
            return if seq.len() <= self.order {
                0.0
            } else {
                f64::NEG_INFINITY
            };
        }
        let total: f64 = seq
            .windows(self.order + 1)
            .map(|w| self.log_prob[w.iter().fold(0, |acc, &t| acc * self.alphabet + t)])
            .sum();
        total / (seq.len() - self.order) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::{evaluate, Reward};

    #[test]
    fn motif_and_gc_values() {
        let s: &[usize] = &[1, 2, 2, 1, 2, 2, 3];
        assert_eq!(MotifCount::new(vec![1, 2, 2]).score_one(s), 2.0);
        assert_eq!(
            MotifCount::new(vec![2, 2]).score_one(&[2, 2, 2]),
            2.0,
            "overlapping"
        );
        assert_eq!(MotifPresence { motif: vec![3, 3] }.score_one(s), 0.0);
        assert!((GcContent::default().score_one(s) - 6.0 / 7.0).abs() < 1e-15);
        assert_eq!(Reward::range(&GcContent::default()), Some((0.0, 1.0)));
    }

    #[test]
    fn kmer_loglik_prefers_the_corpus_statistics() {
        let corpus = vec![vec![0, 1, 0, 1, 0, 1, 0, 1]; 10];
        let r = KmerLogLikelihood::fit(&corpus, 1, 2, 0.5).unwrap();
        let typical = r.score_one(&[0, 1, 0, 1]);
        let atypical = r.score_one(&[0, 0, 0, 0]);
        assert!(typical > atypical);
        // P(1 | 0) = (40 + 0.5)/(40 + 1) exactly.
        assert!((r.score_one(&[0, 1]) - (40.5f64 / 41.0).ln()).abs() < 1e-12);
        assert!(matches!(
            evaluate(&r, &[&[0, 7]]),
            Err(Error::NonFiniteReward { .. })
        ));
        assert!(matches!(
            KmerLogLikelihood::fit(&[vec![0, 3]], 1, 2, 1.0),
            Err(Error::TokenOutOfVocab { .. })
        ));
    }
}
