//! Forward corruption processes: continuous-time Markov chains on a vocabulary of `N` states, acting
//! independently on every position of a sequence.
//!
//! Convention: `Q(a, b)` is the rate of jumping from `a` to `b` (`a ≠ b`), `Q(a, a) = −Σ_{b≠a} Q(a, b)`.
//! Under a noise schedule with total noise `σ̄(t)` the transition kernel is
//! `p_t(b | a) = exp(σ̄(t) Q)(a, b)`, available here in closed form. The same closed form evaluated at a
//! negative total noise gives `exp(−Δσ̄ Q)`, which the Tweedie step uses for its *staggered score*.

mod absorbing;
mod uniform;

pub use absorbing::Absorbing;
pub use uniform::Uniform;

use rand::Rng;

/// The staggered score `s̃ = s·exp(−Δσ̄ Q)` of one `Δσ̄`, as host coefficients ([`Graph::staggered`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Staggered {
    /// `s̃_y = scale_y·s_y + shift_y·Σ_z summed_z·s_z`: every vector has one entry per state.
    Structured {
        /// Multiplier of the score's own column.
        scale: Vec<f64>,
        /// Which columns enter the sum (0 or 1).
        summed: Vec<f64>,
        /// Multiplier of the sum.
        shift: Vec<f64>,
    },
    /// `s̃_y = Σ_z s_z·M_{z,y}` with `M = exp(−Δσ̄ Q)` row-major `[N·N]`.
    Dense(Vec<f64>),
}

/// A per-position forward CTMC with a closed-form kernel.
pub trait Graph: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Number of states `N` (for [`Absorbing`], the real tokens plus the mask).
    fn num_states(&self) -> usize;

    /// Number of clean tokens a sample may contain: `N − 1` for [`Absorbing`], `N` for [`Uniform`].
    fn num_tokens(&self) -> usize;

    /// The mask state, for absorbing graphs.
    fn mask(&self) -> Option<usize> {
        None
    }

    /// Rate `Q(a, b)`, diagonal included.
    fn rate(&self, a: usize, b: usize) -> f64;

    /// Transition probability `exp(σ̄ Q)(a, b)` in closed form. For `σ̄ < 0` this is the inverse
    /// kernel `exp(−|σ̄| Q)`, which has negative entries.
    fn transition(&self, a: usize, b: usize, sigma_bar: f64) -> f64;

    /// Draws `x_t ~ p_t(· | x_0)` independently per position, given the total noise of each
    /// sequence (`tokens.len() = sigma_bar.len() · seq_len`).
    fn sample_transition<R: Rng>(
        &self,
        x0: &[usize],
        sigma_bar: &[f64],
        rng: &mut R,
    ) -> Vec<usize> {
        let seq_len = x0.len() / sigma_bar.len().max(1);
        let n = self.num_states();
        let mut probs = vec![0.0; n];
        x0.iter()
            .enumerate()
            .map(|(i, &a)| {
                let s = sigma_bar[i / seq_len.max(1)];
                for (b, p) in probs.iter_mut().enumerate() {
                    *p = self.transition(a, b, s);
                }
                crate::categorical::draw(&probs, rng)
            })
            .collect()
    }

    /// Draws `n` tokens from the limit law `lim_{σ̄→∞} p_t` (all-mask, or uniform).
    fn sample_limit<R: Rng>(&self, n: usize, rng: &mut R) -> Vec<usize>;

    /// The limit law as a probability vector over states.
    fn limit_distribution(&self) -> Vec<f64>;

    /// Host coefficients of the staggered score of the Tweedie step, `s̃_y = Σ_z s_z·exp(−Δσ̄ Q)(z, y)`,
    /// for one `Δσ̄` (applied per position to ratios `s` with `s_x = 1` at the current token).
    ///
    /// With exact ratios `s_z = p_t(z)/p_t(x)` this equals `p_{t−Δ}(y)/p_t(x)` under the per-position
    /// factorisation that τ-leaping assumes. The default is the dense matrix `exp(−Δσ̄ Q)`; graphs with
    /// structure return the `O(N)` closed form ([`Staggered::Structured`]). The Tweedie step
    /// (`sample::kernel::tweedie`) turns these into tensor operations.
    fn staggered(&self, dsigma: f64) -> Staggered {
        let n = self.num_states();
        let mut matrix = Vec::with_capacity(n * n);
        for z in 0..n {
            for y in 0..n {
                matrix.push(self.transition(z, y, -dsigma));
            }
        }
        Staggered::Dense(matrix)
    }

    /// Per-position terms of the denoising score entropy for a noised token `x_t` drawn from `x_0` at
    /// total noise `σ̄`: for every `y ≠ x_t`, the weight `Q(y, x_t)` and the true ratio
    /// `r_y = p_t(y | x_0)/p_t(x_t | x_0)`. Entries at `y = x_t` are `(0, 0)`.
    fn score_entropy_terms(
        &self,
        x_t: usize,
        x0: usize,
        sigma_bar: f64,
        weight: &mut [f64],
        ratio: &mut [f64],
    ) {
        let denom = self.transition(x0, x_t, sigma_bar);
        for y in 0..self.num_states() {
            if y == x_t {
                weight[y] = 0.0;
                ratio[y] = 0.0;
            } else {
                weight[y] = self.rate(y, x_t);
                ratio[y] = if weight[y] > 0.0 {
                    self.transition(x0, y, sigma_bar) / denom
                } else {
                    0.0
                };
            }
        }
    }
}

/// `e^x − 1` with full precision near zero.
pub(crate) fn expm1(x: f64) -> f64 {
    x.exp_m1()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense `exp(A)` by scaling and squaring with a Taylor series (test ground truth).
    pub(crate) fn dense_expm(a: &[f64], n: usize) -> Vec<f64> {
        let norm: f64 = a.iter().map(|x| x.abs()).sum();
        let squarings = (norm.max(1.0).log2().ceil() as i32 + 4).max(0);
        let scale = 0.5f64.powi(squarings);
        let mat_mul = |x: &[f64], y: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0; n * n];
            for i in 0..n {
                for k in 0..n {
                    for j in 0..n {
                        out[i * n + j] += x[i * n + k] * y[k * n + j];
                    }
                }
            }
            out
        };
        let scaled: Vec<f64> = a.iter().map(|x| x * scale).collect();
        let mut result = vec![0.0; n * n];
        let mut term = vec![0.0; n * n];
        for i in 0..n {
            result[i * n + i] = 1.0;
            term[i * n + i] = 1.0;
        }
        for k in 1..30 {
            term = mat_mul(&term, &scaled)
                .into_iter()
                .map(|x| x / k as f64)
                .collect();
            for (r, t) in result.iter_mut().zip(&term) {
                *r += t;
            }
        }
        for _ in 0..squarings {
            result = mat_mul(&result, &result);
        }
        result
    }

    fn check_graph<G: Graph>(g: &G) {
        let n = g.num_states();
        for a in 0..n {
            let row: f64 = (0..n).map(|b| g.rate(a, b)).sum();
            assert!(row.abs() < 1e-12, "row {a} of Q sums to {row}");
            for b in 0..n {
                if a != b {
                    assert!(g.rate(a, b) >= 0.0);
                }
            }
        }
        for &sigma in &[0.0, 1e-4, 0.3, 1.0, 2.5, 7.0] {
            let q: Vec<f64> = (0..n * n).map(|i| sigma * g.rate(i / n, i % n)).collect();
            let dense = dense_expm(&q, n);
            for a in 0..n {
                let total: f64 = (0..n).map(|b| g.transition(a, b, sigma)).sum();
                assert!(
                    (total - 1.0).abs() < 1e-12,
                    "row {a} sums to {total} at σ̄={sigma}"
                );
                for b in 0..n {
                    let p = g.transition(a, b, sigma);
                    assert!(p >= 0.0);
                    assert!(
                        (p - dense[a * n + b]).abs() < 1e-6,
                        "({a},{b}) at σ̄={sigma}: {p} vs {}",
                        dense[a * n + b]
                    );
                }
            }
            // exp(σ̄Q)·exp(−σ̄Q) = I.
            for a in 0..n {
                for c in 0..n {
                    let prod: f64 = (0..n)
                        .map(|b| g.transition(a, b, sigma) * g.transition(b, c, -sigma))
                        .sum();
                    let eye = if a == c { 1.0 } else { 0.0 };
                    assert!((prod - eye).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn rates_and_transitions_match_dense_matrix_exponential() {
        for n in 2..=8 {
            check_graph(&Absorbing::new(n).unwrap());
            check_graph(&Uniform::new(n).unwrap());
        }
    }
}
