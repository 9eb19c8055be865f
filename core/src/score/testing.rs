//! Test fixtures shared by the score networks' finite-difference checks.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use super::ScoreModel;
use crate::nn::gradcheck::Objective;
use crate::nn::ParamStore;

/// Adds `scale·U(−1, 1)` noise to every parameter, so that zero-initialised layers (adaLN-zero, output
/// heads) carry gradient in every direction.
pub(crate) fn perturb(store: &mut ParamStore<f64, Cpu>, seed: u64, scale: f64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let flat: Vec<f64> = store
        .flat_f64()
        .iter()
        .map(|x| x + scale * rng.gen_range(-1.0..1.0))
        .collect();
    store.set_flat_f64(&flat).unwrap();
}

/// `Σ w ⊙ log s_θ(x, σ̄)` with fixed pseudo-random weights `w_i = sin(0.731·i)`: every output entry
/// reaches the objective, so its gradient checks every path through the network.
pub(crate) struct WeightedScores<M> {
    /// The architecture; the parameters come from the store under test.
    pub model: M,
    /// Tokens `[B, L]`, row-major.
    pub tokens: Vec<usize>,
    /// `σ̄` per sequence (`B` of them).
    pub sigma: Vec<f64>,
}

impl<M: ScoreModel<Elem = f64, Device = Cpu>> Objective for WeightedScores<M> {
    fn eval<T: Tape<f64, Cpu>>(
        &self,
        store: &ParamStore<f64, Cpu>,
        tape: T,
    ) -> Tensor<Rank0, f64, Cpu, T> {
        let dev = store.device();
        let b = self.sigma.len();
        let ids = dev.tensor_from_vec(self.tokens.clone(), (b, self.tokens.len() / b));
        let out = self
            .model
            .forward_with(store, &ids, &self.sigma, tape)
            .unwrap();
        let w: Vec<f64> = (0..out.shape().num_elements())
            .map(|i| (i as f64 * 0.731).sin())
            .collect();
        let w = dev.tensor_from_vec(w, *out.shape());
        (out * w).sum()
    }
}
