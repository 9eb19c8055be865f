//! The uniform graph: every token jumps to every other token at rate `1/N`.

use dfdx::prelude::*;
use rand::Rng;

use super::Graph;
use crate::error::{Error, Result};
use crate::nn::from_f64;

/// `Q = J/N − I` (`J` all ones). Closed form: `p_t(b | a) = (1 − e^{−σ̄})/N + e^{−σ̄}·[a = b]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Uniform {
    states: usize,
}

impl Uniform {
    /// A uniform graph over `states ≥ 2` tokens.
    pub fn new(states: usize) -> Result<Self> {
        if states < 2 {
            return Err(Error::invalid(
                "states",
                states,
                "a uniform graph needs at least two states",
            ));
        }
        Ok(Self { states })
    }
}

impl Graph for Uniform {
    fn num_states(&self) -> usize {
        self.states
    }

    fn num_tokens(&self) -> usize {
        self.states
    }

    fn rate(&self, a: usize, b: usize) -> f64 {
        let n = self.states as f64;
        if a == b {
            -(n - 1.0) / n
        } else {
            1.0 / n
        }
    }

    fn transition(&self, a: usize, b: usize, sigma_bar: f64) -> f64 {
        let n = self.states as f64;
        let off = -super::expm1(-sigma_bar) / n;
        if a == b {
            off + (-sigma_bar).exp()
        } else {
            off
        }
    }

    fn sample_limit<R: Rng>(&self, n: usize, rng: &mut R) -> Vec<usize> {
        (0..n).map(|_| rng.gen_range(0..self.states)).collect()
    }

    fn limit_distribution(&self) -> Vec<f64> {
        vec![1.0 / self.states as f64; self.states]
    }

    /// `s̃_y = e^{Δ} s_y + (1 − e^{Δ})/N · Σ_z s_z`.
    fn staggered_score<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        &self,
        scores: Tensor<(usize, usize, usize), E, D, T>,
        dsigma: &[f64],
    ) -> Tensor<(usize, usize, usize), E, D, T> {
        let shape = *scores.shape();
        let (_, l, n) = shape;
        let dev = scores.device().clone();
        let mut scale = Vec::with_capacity(shape.0 * l * n);
        let mut shift = Vec::with_capacity(shape.0 * l * n);
        for &d in dsigma {
            for _ in 0..l * n {
                scale.push(from_f64::<E>(d.exp()));
                shift.push(from_f64::<E>(-super::expm1(d) / self.states as f64));
            }
        }
        let scale = dev.tensor_from_vec(scale, shape);
        let shift = dev.tensor_from_vec(shift, shape);
        let total = scores
            .with_empty_tape()
            .sum::<_, Axis<2>>()
            .broadcast_like::<_, Axis<2>>(&shape);
        scores * scale + total * shift
    }
}
