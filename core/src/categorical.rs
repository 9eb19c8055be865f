//! Categorical draws in f64 by inverse CDF.
//!
//! Gumbel-max in f32 truncates the Gumbel tail (`−ln(−ln u)` with `u` a 24-bit float) and measurably
//! biases masked-diffusion samples towards likely tokens; here the uniform is a 53-bit f64 and the
//! cumulative sum is f64, so a token of probability `p` is drawn with probability `p` up to f64 rounding.

use rand::Rng;

/// Draws an index with probability proportional to `weights` (non-negative, not all zero; unnormalised
/// is fine). Negative or NaN entries count as zero. If every weight is zero, returns the largest index
/// whose weight is not NaN, as a last resort the callers never reach with valid input.
pub fn draw<R: Rng + ?Sized>(weights: &[f64], rng: &mut R) -> usize {
    let clean = |w: f64| if w > 0.0 { w } else { 0.0 };
    let total: f64 = weights.iter().map(|&w| clean(w)).sum();
    if total == f64::INFINITY {
        return draw_overflowing(weights, rng);
    }
    if total.is_nan() || total <= 0.0 {
        return weights
            .iter()
            .rposition(|&w| w > 0.0)
            .unwrap_or(weights.len().saturating_sub(1));
    }
    let u = rng.gen::<f64>() * total;
    let mut acc = 0.0;
    let mut last = 0;
    for (i, &w) in weights.iter().enumerate() {
        let w = clean(w);
        if w > 0.0 {
            acc += w;
            last = i;
            if u < acc {
                return i;
            }
        }
    }
    last
}

/// [`draw`] for weights whose sum overflows: infinite weights share the mass equally; otherwise every
/// weight is divided by the largest first, which leaves the law unchanged and the sum at most `len`.
fn draw_overflowing<R: Rng + ?Sized>(weights: &[f64], rng: &mut R) -> usize {
    let infinite: Vec<usize> = (0..weights.len())
        .filter(|&i| weights[i] == f64::INFINITY)
        .collect();
    if !infinite.is_empty() {
        return infinite[rng.gen_range(0..infinite.len())];
    }
    let max = weights.iter().cloned().fold(0.0, f64::max);
    let scaled: Vec<f64> = weights.iter().map(|&w| w / max).collect();
    draw(&scaled, rng)
}

/// Draws from `log_weights` (unnormalised log-probabilities) by subtracting the maximum first, so that
/// no weight underflows unless it is negligible relative to the largest. NaN entries count as `−∞`;
/// `+∞` entries share the mass equally (as in [`draw`]).
pub fn draw_log<R: Rng + ?Sized>(log_weights: &[f64], rng: &mut R) -> usize {
    let max = log_weights
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = if max == f64::INFINITY {
        // `∞ − ∞` is NaN: the infinite entries take all the mass.
        let infinite = |l: f64| if l == f64::INFINITY { 1.0 } else { 0.0 };
        log_weights.iter().map(|&l| infinite(l)).collect()
    } else {
        log_weights.iter().map(|&l| (l - max).exp()).collect()
    };
    draw(&w, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// A distribution with a 1e-5 tail: the tail token's count must match `n·p` within 4 standard
    /// deviations `sqrt(n p (1 − p))`. (f32 Gumbel-max would draw it at a visibly different rate only for
    /// much smaller `p`; this test pins the f64 sampler's correctness on tails.)
    #[test]
    fn small_probability_tails_are_drawn_at_their_rate() {
        let probs = [1.0 - 1e-3 - 1e-5, 1e-3, 1e-5];
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let n = 4_000_000usize;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            counts[draw(&probs, &mut rng)] += 1;
        }
        for (k, &p) in probs.iter().enumerate() {
            let mean = n as f64 * p;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (counts[k] as f64 - mean).abs() < 4.0 * sd,
                "token {k}: {} draws, expected {mean} ± {sd}",
                counts[k]
            );
        }
    }

    /// Weights whose sum overflows f64 are drawn in proportion (it used to return the last index), and
    /// infinite weights share the mass. Counts within 4 standard deviations of `n·p`.
    #[test]
    fn huge_weights_are_drawn_in_proportion() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let n = 30_000usize;
        let mut hits = [0usize; 3];
        for _ in 0..n {
            hits[draw(&[f64::MAX, f64::MAX / 2.0, 0.0], &mut rng)] += 1;
        }
        let sd = (n as f64 * (2.0 / 9.0)).sqrt();
        assert!(
            (hits[0] as f64 - n as f64 * 2.0 / 3.0).abs() < 4.0 * sd,
            "{hits:?}"
        );
        assert_eq!(hits[2], 0);
        let mut inf = [0usize; 3];
        for _ in 0..n {
            inf[draw(&[f64::INFINITY, 1.0, f64::INFINITY], &mut rng)] += 1;
        }
        let sd = (n as f64 / 4.0).sqrt();
        assert_eq!(inf[1], 0);
        assert!((inf[0] as f64 - n as f64 / 2.0).abs() < 4.0 * sd, "{inf:?}");
    }

    #[test]
    fn zero_weights_are_never_drawn() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        for _ in 0..10_000 {
            let i = draw(&[0.0, 2.0, 0.0, -1.0, 1.0], &mut rng);
            assert!(i == 1 || i == 4);
        }
        // Log-weights far below zero still draw in proportion (no underflow); −∞ is never drawn.
        let mut hits = [0usize; 3];
        for _ in 0..30_000 {
            hits[draw_log(&[f64::NEG_INFINITY, -1e4, -1e4 + 2f64.ln()], &mut rng)] += 1;
        }
        assert_eq!(hits[0], 0);
        let frac = hits[2] as f64 / 30_000.0; // expected 2/3, sd = sqrt(2/9/30000) ≈ 0.0027
        assert!((frac - 2.0 / 3.0).abs() < 0.011, "{frac}");
    }
}
