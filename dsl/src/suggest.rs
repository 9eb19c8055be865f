//! "Did you mean" hints for misspelt keys, options, functions and identifiers, in the macros' errors and
//! in run files'.

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo
/// (at most a third of the word's length, and at least one edit allowed). The distance is the optimal
/// string alignment distance: insertions, deletions, substitutions and transpositions of two adjacent
/// characters each cost 1, so `iteartions` is one edit from `iterations` (Levenshtein counts two).
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let budget = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (osa(word, c), *c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did_you_mean` as a sentence fragment: "; did you mean `batched`?" or "".
pub fn hint(word: &str, candidates: &[&str]) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// [`hint`], or "; expected one of `a`, `b`, `c`" when no candidate is close (run files, where the reader
/// has no docs table beside the error).
pub fn hint_or_list(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => format!("; expected one of {}", list(candidates)),
    }
}

/// `a`, `b`, `c` (each in backticks, comma-separated).
pub fn list(candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Optimal string alignment distance: `d[i][j] = min(d[i−1][j] + 1, d[i][j−1] + 1,
/// d[i−1][j−1] + [a_i ≠ b_j], d[i−2][j−2] + 1 if a_i = b_{j−1} and a_{i−1} = b_j)`.
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
    fn suggests_close_words_only() {
        let options = ["batched", "range", "name"];
        assert_eq!(did_you_mean("bathced", &options), Some("batched"));
        assert_eq!(did_you_mean("rang", &options), Some("range"));
        assert_eq!(did_you_mean("parallel", &options), None);
        assert_eq!(osa("kitten", "sitting"), 3);
        // Adjacent transpositions cost one edit: short keys with one are still caught.
        assert_eq!(osa("iteartions", "iterations"), 1);
        assert_eq!(osa("ab", "ba"), 1);
        assert_eq!(osa("ca", "abc"), 3); // OSA, not the unrestricted Damerau distance (2)
        let keys = crate::keys::POLICY_KEYS;
        assert_eq!(did_you_mean("sede", keys), Some("seed"));
        assert_eq!(did_you_mean("iteartions", keys), Some("iterations"));
        assert_eq!(did_you_mean("gard_clip", keys), Some("grad_clip"));
        assert_eq!(did_you_mean("parallelism", keys), None);
        assert_eq!(hint("bathced", &options), "; did you mean `batched`?");
        assert_eq!(hint("parallel", &options), "");
        assert_eq!(
            hint_or_list("parallel", &options),
            "; expected one of `batched`, `range`, `name`"
        );
    }
}
