//! The uniform graph: every token jumps to every other token at rate `1/N`.

use rand::Rng;

use super::{Graph, Staggered};
use crate::error::{Error, Result};

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
    fn staggered(&self, dsigma: f64) -> Staggered {
        let n = self.states;
        Staggered::Structured {
            scale: vec![dsigma.exp(); n],
            summed: vec![1.0; n],
            shift: vec![-super::expm1(dsigma) / n as f64; n],
        }
    }
}
