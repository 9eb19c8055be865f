//! Gradients of a [`ParamStore`], aligned with its parameters: global norm, clipping, accumulation.
//!
//! dfdx has no gradient clipping and its `Gradients::get` panics on a parameter that received no
//! gradient; [`Grads::collect`] fills such parameters with zeros instead.

use dfdx::prelude::*;

use crate::nn::{from_f64, ParamStore};

/// One gradient tensor per parameter of a store, in the store's order.
#[derive(Debug, Clone)]
pub struct Grads<E: Dtype, D: Device<E>> {
    /// `∂L/∂θ_i`, flat, one per parameter.
    pub tensors: Vec<Tensor<(usize,), E, D>>,
}

impl<E: Dtype, D: Device<E>> Grads<E, D> {
    /// Reads the gradients of every parameter of `store` out of dfdx's `Gradients` (zeros where a
    /// parameter took no part in the loss).
    pub fn collect(store: &ParamStore<E, D>, grads: &mut Gradients<E, D>) -> crate::Result<Self> {
        let mut tensors = Vec::with_capacity(store.len());
        for p in store.params() {
            grads
                .try_alloc_for(&p.tensor)
                .map_err(crate::Error::device("Grads::collect"))?;
            tensors.push(grads.get(&p.tensor));
        }
        Ok(Self { tensors })
    }

    /// Zero gradients shaped like `store`.
    pub fn zeros(store: &ParamStore<E, D>) -> Self {
        let dev = store.device();
        Self {
            tensors: store
                .params()
                .iter()
                .map(|p| dev.zeros_like(p.tensor.shape()))
                .collect(),
        }
    }

    /// `self += other` (gradient accumulation over minibatches).
    pub fn add_assign(&mut self, other: &Self) {
        for (a, b) in self.tensors.iter_mut().zip(&other.tensors) {
            *a = a.clone() + b.clone();
        }
    }

    /// `self *= c`.
    pub fn scale(&mut self, c: f64) {
        for a in &mut self.tensors {
            *a = a.clone() * from_f64::<E>(c);
        }
    }

    /// Global L2 norm `‖g‖ = sqrt(Σ_i Σ_j g_ij²)` in f64.
    pub fn global_norm(&self) -> f64 {
        self.tensors
            .iter()
            .map(|g| {
                g.clone().square().sum::<Rank0, _>().as_vec()[0]
                    .to_f64()
                    .unwrap_or(f64::NAN)
            })
            .sum::<f64>()
            .sqrt()
    }

    /// Rescales to norm at most `max_norm` (`g ← g·min(1, max_norm/‖g‖)`, as torch's
    /// `clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.global_norm();
        if norm.is_finite() && norm > max_norm && norm > 0.0 {
            self.scale(max_norm / norm);
        }
        norm
    }

    /// All gradient values flattened into one `f64` vector (tests).
    pub fn flat_f64(&self) -> Vec<f64> {
        self.tensors
            .iter()
            .flat_map(|g| crate::nn::to_f64s(&g.as_vec()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    #[test]
    fn clipping_scales_to_the_requested_norm_and_reports_the_old_one() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 0);
        store.add("a", &[2], Init::Zeros).unwrap();
        store.add("b", &[1], Init::Zeros).unwrap();
        let mut g = Grads {
            tensors: vec![
                dev.tensor_from_vec(vec![3.0, 0.0], (2,)),
                dev.tensor_from_vec(vec![4.0], (1,)),
            ],
        };
        assert_eq!(g.clip_norm(1.0), 5.0);
        approx::assert_abs_diff_eq!(g.global_norm(), 1.0, epsilon = 1e-12);
        for (a, b) in g.flat_f64().iter().zip([0.6, 0.0, 0.8]) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-15);
        }
        // Below the threshold nothing changes.
        let before = g.flat_f64();
        approx::assert_abs_diff_eq!(g.clip_norm(10.0), 1.0, epsilon = 1e-15);
        assert_eq!(g.flat_f64(), before);
    }

    #[test]
    fn parameters_without_gradient_get_zeros() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 0);
        let a = store.add("a", &[2], Init::Ones).unwrap();
        store.add("unused", &[3], Init::Ones).unwrap();
        let loss = store
            .vector(a)
            .put_tape(OwnedTape::default())
            .square()
            .sum::<Rank0, _>();
        let g = Grads::collect(&store, &mut loss.backward()).unwrap();
        assert_eq!(g.flat_f64(), vec![2.0, 2.0, 0.0, 0.0, 0.0]);
    }
}
