//! "Did you mean" for a misspelt key, option or name: the same rule as the macros' (`sepo-macros`'
//! `suggest.rs`, mirrored here because a proc-macro crate cannot export plain functions).

/// The candidate closest to `word` by optimal string alignment distance (insertions, deletions,
/// substitutions and swaps of two adjacent characters each cost 1), if it is within a third of the
/// word's length (at least 1): a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let budget = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (osa(word, c), *c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"`, or the list of candidates when none is close.
pub fn hint(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => format!(
            "; expected one of {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `d[i][j] = min(d[i−1][j] + 1, d[i][j−1] + 1, d[i−1][j−1] + [a_i ≠ b_j], d[i−2][j−2] + 1` when
/// `a_i a_{i−1}` is `b_j b_{j−1}` swapped`)`.
fn osa(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_words_only() {
        let keys = super::super::keys::KEYS;
        assert_eq!(did_you_mean("iteartions", keys), Some("iterations"));
        assert_eq!(did_you_mean("sede", keys), Some("seed"));
        assert_eq!(did_you_mean("gard_clip", keys), Some("grad_clip"));
        assert_eq!(did_you_mean("parallelism", keys), None);
        assert_eq!(osa("kitten", "sitting"), 3);
        assert_eq!(osa("ca", "abc"), 3);
    }
}
