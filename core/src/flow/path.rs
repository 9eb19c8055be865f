//! A state function that stands for `log π_θ(x)` up to a constant: the clean-end log-scores summed
//! along a canonical Hamming path from a fixed anchor (docs/gradient_flow.md §3, "path log-ratio").
//!
//! For a sequence `x` and the anchor `a`, let `l_1 < … < l_d` be the positions where they differ and
//! `z_k` the sequence equal to `x` on `l_1..l_k` and to `a` elsewhere (`z_0 = a`, `z_d = x`). Then
//!
//! ```text
//! ℓ(x) = Σ_{k=1..d} log s(z_{k−1})_{l_k, x_{l_k}}.
//! ```
//!
//! It depends on `x`, the weights and `a` only, never on how a particle reached `x`. For consistent
//! scores (`s(x)_{l,v} = π(x^{l←v})/π(x)`) each term is `φ(z_k) − φ(z_{k−1})`, so the sum telescopes to
//! `ℓ(x) = φ(x) − φ(a)`: the log-potential up to a constant shared by every sequence. Cost: `d` score
//! reads (forwards on one sequence), one per changed position.
//!
//! **Subset.** With a set `S` of `m` of the `L` positions, drawn uniformly and shared by every sequence,
//! `ℓ_S(x) = (L/m)·Σ_{k: l_k ∈ S} log s(z_{k−1})_{l_k, x_{l_k}}` keeps the same contexts `z_{k−1}` and
//! reads only the steps whose position is in `S`. Each step is kept with probability `m/L`, so
//! `E_S ℓ_S(x) = ℓ(x)`; for a given `S` it is still a function of `x`. Cost: about `d·m/L` reads.

use crate::error::{Error, Result};
use crate::flow::chain::PositionScores;

/// `ℓ(x_b)` (or `ℓ_S(x_b)` when `subset` is given) for every sequence of `x` (flat `[batch, L]`) against
/// `anchor` (length `L`), with scores from `scores`; see the module documentation. The reads of all
/// sequences go to `scores` in one call (it batches them).
///
/// # Errors
/// Sizes that do not match, tokens out of range (the anchor must hold real tokens, not the mask), an
/// empty subset or one with repeated or out-of-range positions.
pub fn path_log_potential<S: PositionScores + ?Sized>(
    scores: &mut S,
    x: &[usize],
    batch: usize,
    anchor: &[usize],
    subset: Option<&[usize]>,
) -> Result<Vec<f64>> {
    crate::check::nonzero("batch", batch)?;
    let l = anchor.len();
    crate::check::nonzero("anchor length", l)?;
    if x.len() != batch * l {
        return Err(Error::ShapeMismatch {
            op: "path_log_potential",
            expected: vec![batch, l],
            got: vec![x.len()],
        });
    }
    let n = scores.num_states();
    let real = n - usize::from(scores.mask().is_some());
    crate::check::tokens(x, batch, l, real)?;
    crate::check::tokens(anchor, 1, l, real)?;
    let (include, scale) = match subset {
        None => (vec![true; l], 1.0),
        Some(s) => {
            crate::check::nonzero("path subset size", s.len())?;
            let mut include = vec![false; l];
            for &p in s {
                if p >= l || include[p] {
                    return Err(Error::invalid(
                        "path subset",
                        p,
                        format!("positions must be distinct and < {l}"),
                    ));
                }
                include[p] = true;
            }
            (include, l as f64 / s.len() as f64)
        }
    };
    let mut contexts = Vec::new();
    let mut positions = Vec::new();
    let mut reads = Vec::new();
    for b in 0..batch {
        let xb = &x[b * l..(b + 1) * l];
        let mut z = anchor.to_vec();
        for p in 0..l {
            if xb[p] != anchor[p] {
                if include[p] {
                    contexts.extend_from_slice(&z);
                    positions.push(p);
                    reads.push((b, xb[p]));
                }
                z[p] = xb[p];
            }
        }
    }
    let mut out = vec![0.0; batch];
    if positions.is_empty() {
        return Ok(out);
    }
    let rows = scores.position_log_scores(&contexts, positions.len(), &positions)?;
    for (i, &(b, v)) in reads.iter().enumerate() {
        out[b] += rows[i * n + v];
    }
    for o in &mut out {
        *o *= scale;
    }
    Ok(out)
}

/// The anchor used by the single loop: the most frequent token at each position of `x` (flat
/// `[batch, L]`; ties go to the smaller token). Close to most particles, it keeps the path short
/// (`d` is the Hamming distance to it).
pub fn consensus(x: &[usize], batch: usize, num_tokens: usize) -> Vec<usize> {
    let l = x.len() / batch.max(1);
    (0..l)
        .map(|p| {
            let mut counts = vec![0usize; num_tokens];
            for b in 0..batch {
                if let Some(c) = counts.get_mut(x[b * l + p]) {
                    *c += 1;
                }
            }
            // The first maximum: ties go to the smaller token.
            let mut best = 0;
            for (v, &c) in counts.iter().enumerate() {
                if c > counts[best] {
                    best = v;
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::chain::ExactScores;
    use crate::flow::potential::{LogPotential, Potts, Space};
    use rand::{Rng, SeedableRng};

    fn fixture() -> (ExactScores<Potts>, Space, Vec<f64>) {
        let space = Space::new(3, 4).unwrap();
        let model = Potts(space);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let theta: Vec<f64> = (0..model.num_params())
            .map(|_| rng.gen::<f64>() * 2.0 - 1.0)
            .collect();
        let phi = model.table(&theta);
        (ExactScores::new(model, &theta), space, phi)
    }

    /// Consistent scores: the path sum telescopes to `φ(x) − φ(a)` for every `x` of 3^4, and it costs
    /// one read per position where `x` and `a` differ.
    #[test]
    fn path_sum_is_the_log_potential_difference_for_consistent_scores() {
        let (mut scores, space, phi) = fixture();
        let anchor = vec![2, 0, 1, 1];
        let a = space.index(&anchor);
        let x: Vec<usize> = (0..space.size()).flat_map(|i| space.sequence(i)).collect();
        let ell = path_log_potential(&mut scores, &x, space.size(), &anchor, None).unwrap();
        let mut reads = 0;
        for (i, e) in ell.iter().enumerate() {
            assert!((e - (phi[i] - phi[a])).abs() < 1e-12, "{i}: {e}");
            reads += space
                .sequence(i)
                .iter()
                .zip(&anchor)
                .filter(|(u, v)| u != v)
                .count() as u64;
        }
        assert_eq!(scores.spent, reads);
    }

    /// The subset estimate averaged over every 2-subset of the 4 positions is the full path sum exactly
    /// (each step is kept in 3 of the 6 subsets and scaled by 4/2), for every `x`.
    #[test]
    fn subset_estimate_averages_to_the_full_path_sum() {
        let (mut scores, space, _) = fixture();
        let anchor = vec![0, 1, 2, 0];
        let x: Vec<usize> = (0..space.size()).flat_map(|i| space.sequence(i)).collect();
        let full = path_log_potential(&mut scores, &x, space.size(), &anchor, None).unwrap();
        let mut mean = vec![0.0; space.size()];
        let mut subsets = 0.0;
        for p in 0..4 {
            for q in p + 1..4 {
                let e = path_log_potential(&mut scores, &x, space.size(), &anchor, Some(&[q, p]))
                    .unwrap();
                mean.iter_mut().zip(&e).for_each(|(m, e)| *m += e);
                subsets += 1.0;
            }
        }
        for (m, f) in mean.iter().zip(&full) {
            assert!((m / subsets - f).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let (mut scores, _, _) = fixture();
        let x = vec![0, 1, 2, 0];
        assert!(path_log_potential(&mut scores, &x, 1, &[0, 1, 2], None).is_err());
        assert!(path_log_potential(&mut scores, &x, 1, &[0, 1, 2, 3], None).is_err());
        assert!(path_log_potential(&mut scores, &x, 1, &[0; 4], Some(&[])).is_err());
        assert!(path_log_potential(&mut scores, &x, 1, &[0; 4], Some(&[1, 1])).is_err());
        assert!(path_log_potential(&mut scores, &x, 1, &[0; 4], Some(&[4])).is_err());
        assert_eq!(
            path_log_potential(&mut scores, &x, 1, &x, None).unwrap(),
            vec![0.0]
        );
    }

    #[test]
    fn consensus_takes_the_most_frequent_token_per_position() {
        let x = vec![0, 1, 2, 1, 1, 2, 1, 0, 0];
        assert_eq!(consensus(&x, 3, 3), vec![1, 1, 2]);
    }
}
