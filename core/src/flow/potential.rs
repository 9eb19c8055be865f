//! Exact log-potentials `φ_θ(x)` over an enumerated space `V^L`, with their parameter gradients
//! `∂_θ φ_θ(x)`: the ground-truth models of the gradient-flow tests (`π_θ ∝ exp φ_θ`).

use crate::error::{Error, Result};

/// The space `V^L` of sequences of length `L` over `V` tokens, in lexicographic order (position 0 most
/// significant), as [`crate::score::Tabular`] orders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Tokens `V`.
    pub tokens: usize,
    /// Length `L`.
    pub seq_len: usize,
}

/// Largest space the dense ground truth accepts (`|X|² f64` per matrix: 32 MiB at 2048).
pub const MAX_STATES: usize = 2048;

impl Space {
    /// `V^L`, refusing empty spaces and spaces of more than [`MAX_STATES`] sequences.
    pub fn new(tokens: usize, seq_len: usize) -> Result<Self> {
        crate::check::nonzero("tokens", tokens)?;
        crate::check::nonzero("seq_len", seq_len)?;
        tokens
            .checked_pow(seq_len as u32)
            .filter(|&s| s <= MAX_STATES)
            .ok_or_else(|| {
                Error::invalid(
                    "seq_len",
                    seq_len,
                    format!("{tokens}^{seq_len} exceeds {MAX_STATES} states"),
                )
            })?;
        Ok(Self { tokens, seq_len })
    }

    /// `|X| = V^L`.
    pub fn size(&self) -> usize {
        self.tokens.pow(self.seq_len as u32)
    }

    /// Index of a sequence.
    pub fn index(&self, seq: &[usize]) -> usize {
        seq.iter().fold(0, |a, &t| a * self.tokens + t)
    }

    /// The sequence at an index.
    pub fn sequence(&self, mut index: usize) -> Vec<usize> {
        let mut seq = vec![0; self.seq_len];
        for p in (0..self.seq_len).rev() {
            seq[p] = index % self.tokens;
            index /= self.tokens;
        }
        seq
    }

    /// Index of `x^{l←v}` given the index of `x`.
    pub fn neighbour(&self, index: usize, position: usize, value: usize) -> usize {
        let stride = self.tokens.pow((self.seq_len - 1 - position) as u32);
        let current = (index / stride) % self.tokens;
        index - current * stride + value * stride
    }
}

/// A parametric log-potential `φ_θ(x)`, linear in features or not, with its gradient.
pub trait LogPotential {
    /// The space it lives on.
    fn space(&self) -> Space;
    /// Number of parameters `P`.
    fn num_params(&self) -> usize;
    /// `φ_θ(x)` for the sequence at `index`.
    fn log_potential(&self, theta: &[f64], index: usize) -> f64;
    /// `∂_θ φ_θ(x)` (length `P`) for the sequence at `index`.
    fn gradient(&self, theta: &[f64], index: usize) -> Vec<f64>;

    /// `φ_θ` over the whole space.
    fn table(&self, theta: &[f64]) -> Vec<f64> {
        (0..self.space().size())
            .map(|i| self.log_potential(theta, i))
            .collect()
    }
}

/// `φ_θ(x) = θ_x`: one logit per sequence ([`crate::score::Tabular`]'s parametrisation).
#[derive(Debug, Clone, Copy)]
pub struct TabularPotential(pub Space);

impl LogPotential for TabularPotential {
    fn space(&self) -> Space {
        self.0
    }
    fn num_params(&self) -> usize {
        self.0.size()
    }
    fn log_potential(&self, theta: &[f64], index: usize) -> f64 {
        theta[index]
    }
    fn gradient(&self, _theta: &[f64], index: usize) -> Vec<f64> {
        let mut g = vec![0.0; self.0.size()];
        g[index] = 1.0;
        g
    }
}

/// A Potts-like chain model:
/// `φ_θ(x) = Σ_l h_l(x_l) + Σ_{l<L−1} J_l(x_l, x_{l+1})`, parameters laid out as the fields `h`
/// (`L·V`) then the couplings `J` (`(L−1)·V²`).
#[derive(Debug, Clone, Copy)]
pub struct Potts(pub Space);

impl Potts {
    fn field(&self, l: usize, v: usize) -> usize {
        l * self.0.tokens + v
    }
    fn coupling(&self, l: usize, a: usize, b: usize) -> usize {
        let v = self.0.tokens;
        self.0.seq_len * v + (l * v + a) * v + b
    }
}

impl LogPotential for Potts {
    fn space(&self) -> Space {
        self.0
    }
    fn num_params(&self) -> usize {
        let (v, l) = (self.0.tokens, self.0.seq_len);
        l * v + l.saturating_sub(1) * v * v
    }
    fn log_potential(&self, theta: &[f64], index: usize) -> f64 {
        let x = self.0.sequence(index);
        let mut phi: f64 = x
            .iter()
            .enumerate()
            .map(|(l, &v)| theta[self.field(l, v)])
            .sum();
        for l in 0..x.len().saturating_sub(1) {
            phi += theta[self.coupling(l, x[l], x[l + 1])];
        }
        phi
    }
    fn gradient(&self, _theta: &[f64], index: usize) -> Vec<f64> {
        let x = self.0.sequence(index);
        let mut g = vec![0.0; self.num_params()];
        for (l, &v) in x.iter().enumerate() {
            g[self.field(l, v)] = 1.0;
        }
        for l in 0..x.len().saturating_sub(1) {
            g[self.coupling(l, x[l], x[l + 1])] = 1.0;
        }
        g
    }
}

/// `π = softmax(φ)`.
pub fn softmax(phi: &[f64]) -> Vec<f64> {
    let max = phi.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = phi.iter().map(|p| (p - max).exp()).collect();
    let z: f64 = w.iter().sum();
    w.into_iter().map(|x| x / z).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_index_agrees_with_sequences() {
        let s = Space::new(3, 3).unwrap();
        for i in 0..s.size() {
            for l in 0..3 {
                for v in 0..3 {
                    let mut y = s.sequence(i);
                    y[l] = v;
                    assert_eq!(s.neighbour(i, l, v), s.index(&y));
                }
            }
        }
        assert!(Space::new(4, 9).is_err());
    }

    /// A linear model: φ is the feature vector dotted with θ, exactly.
    #[test]
    fn potts_is_linear_in_its_features() {
        let m = Potts(Space::new(3, 3).unwrap());
        let theta: Vec<f64> = (0..m.num_params())
            .map(|i| (i as f64 * 0.37).sin())
            .collect();
        for i in 0..27 {
            let g = m.gradient(&theta, i);
            let dot: f64 = g.iter().zip(&theta).map(|(a, b)| a * b).sum();
            assert!((dot - m.log_potential(&theta, i)).abs() < 1e-14);
        }
    }
}
