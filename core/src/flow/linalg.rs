//! Test fixture (compiled for tests or with the `testing` feature). A small dense linear solver (Gaussian elimination with partial pivoting) for the exact small-space
//! ground truth of [`crate::flow::exact`]. `O(n³)`: meant for `n ≤` a few thousand states.

use crate::error::{Error, Result};

/// A dense row-major square matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Side `n`.
    pub n: usize,
    /// Entries, `a[i·n + j]`.
    pub a: Vec<f64>,
}

impl Dense {
    /// The `n × n` zero matrix.
    pub fn zeros(n: usize) -> Self {
        Self {
            n,
            a: vec![0.0; n * n],
        }
    }

    /// Entry `(i, j)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    /// Mutable entry `(i, j)`.
    #[inline]
    pub fn at_mut(&mut self, i: usize, j: usize) -> &mut f64 {
        &mut self.a[i * self.n + j]
    }

    /// The transpose `Aᵀ`.
    pub fn transpose(&self) -> Self {
        let mut t = Self::zeros(self.n);
        for i in 0..self.n {
            for j in 0..self.n {
                *t.at_mut(j, i) = self.at(i, j);
            }
        }
        t
    }

    /// Row vector times matrix, `(vA)_j = Σ_i v_i A_ij`.
    pub fn left_mul(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.n];
        for (i, &vi) in v.iter().enumerate() {
            if vi != 0.0 {
                for (o, &a) in out.iter_mut().zip(&self.a[i * self.n..(i + 1) * self.n]) {
                    *o += vi * a;
                }
            }
        }
        out
    }

    /// Solves `A x = b` by Gaussian elimination with partial pivoting. Fails with
    /// [`Error::InvalidParameter`] when a pivot is below `1e-300` (singular matrix).
    pub fn solve(&self, b: &[f64]) -> Result<Vec<f64>> {
        let n = self.n;
        if b.len() != n {
            return Err(Error::ShapeMismatch {
                op: "Dense::solve",
                expected: vec![n],
                got: vec![b.len()],
            });
        }
        let mut a = self.a.clone();
        let mut x = b.to_vec();
        for k in 0..n {
            let p = (k..n)
                .max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))
                .unwrap_or(k);
            if a[p * n + k].abs() < 1e-300 || !a[p * n + k].is_finite() {
                return Err(Error::invalid("matrix", "singular", "no usable pivot"));
            }
            if p != k {
                for j in 0..n {
                    a.swap(k * n + j, p * n + j);
                }
                x.swap(k, p);
            }
            let pivot = a[k * n + k];
            for i in k + 1..n {
                let f = a[i * n + k] / pivot;
                if f != 0.0 {
                    for j in k..n {
                        a[i * n + j] -= f * a[k * n + j];
                    }
                    x[i] -= f * x[k];
                }
            }
        }
        for k in (0..n).rev() {
            let s: f64 = (k + 1..n).map(|j| a[k * n + j] * x[j]).sum();
            x[k] = (x[k] - s) / a[k * n + k];
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_pivoting_system() {
        // The zero in the top-left corner forces a row swap.
        let m = Dense {
            n: 3,
            a: vec![0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0],
        };
        let x = [1.0, -2.0, 0.5];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| m.at(i, j) * x[j]).sum())
            .collect();
        for (got, want) in m.solve(&b).unwrap().iter().zip(x) {
            assert!((got - want).abs() < 1e-14);
        }
    }

    #[test]
    fn singular_matrix_is_an_error() {
        let m = Dense {
            n: 2,
            a: vec![1.0, 2.0, 2.0, 4.0],
        };
        assert!(m.solve(&[1.0, 1.0]).is_err());
    }
}
