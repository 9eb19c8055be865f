//! The absorbing ("mask") graph: every real token jumps to the mask state at rate 1.

use rand::Rng;

use super::{Graph, Staggered};
use crate::error::{Error, Result};

/// `N − 1` real tokens `0..N−1` and a mask state `N − 1`. `Q(a, mask) = 1` for real `a`; the mask is
/// absorbing. Closed form: `p_t(a | a) = e^{−σ̄}`, `p_t(mask | a) = 1 − e^{−σ̄}`, `p_t(mask | mask) = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Absorbing {
    states: usize,
}

impl Absorbing {
    /// A graph with `states` states in total (`states − 1` real tokens plus the mask); `states ≥ 2`.
    pub fn new(states: usize) -> Result<Self> {
        if states < 2 {
            return Err(Error::invalid(
                "states",
                states,
                "an absorbing graph needs at least one real token and the mask",
            ));
        }
        Ok(Self { states })
    }

    /// A graph over `tokens` real tokens plus the mask.
    pub fn with_tokens(tokens: usize) -> Result<Self> {
        Self::new(tokens + 1)
    }

    /// The mask state `N − 1`.
    pub fn mask_token(&self) -> usize {
        self.states - 1
    }
}

impl Graph for Absorbing {
    fn num_states(&self) -> usize {
        self.states
    }

    fn num_tokens(&self) -> usize {
        self.states - 1
    }

    fn mask(&self) -> Option<usize> {
        Some(self.states - 1)
    }

    fn rate(&self, a: usize, b: usize) -> f64 {
        let m = self.mask_token();
        match (a == m, b == m, a == b) {
            (true, _, _) => 0.0,
            (false, _, true) => -1.0,
            (false, true, false) => 1.0,
            (false, false, false) => 0.0,
        }
    }

    fn transition(&self, a: usize, b: usize, sigma_bar: f64) -> f64 {
        let m = self.mask_token();
        if a == m {
            return if b == m { 1.0 } else { 0.0 };
        }
        if b == a {
            (-sigma_bar).exp()
        } else if b == m {
            -super::expm1(-sigma_bar)
        } else {
            0.0
        }
    }

    fn sample_limit<R: Rng>(&self, n: usize, _rng: &mut R) -> Vec<usize> {
        vec![self.mask_token(); n]
    }

    fn limit_distribution(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.states];
        p[self.mask_token()] = 1.0;
        p
    }

    /// `s̃_y = e^{Δ} s_y` for real `y`, `s̃_mask = s_mask + (1 − e^{Δ}) Σ_{z real} s_z`.
    fn staggered(&self, dsigma: f64) -> Staggered {
        let n = self.states;
        let is_mask = |y: usize| y == n - 1;
        Staggered::Structured {
            scale: (0..n)
                .map(|y| if is_mask(y) { 1.0 } else { dsigma.exp() })
                .collect(),
            summed: (0..n).map(|y| if is_mask(y) { 0.0 } else { 1.0 }).collect(),
            shift: (0..n)
                .map(|y| {
                    if is_mask(y) {
                        -super::expm1(dsigma)
                    } else {
                        0.0
                    }
                })
                .collect(),
        }
    }
}
