//! Test fixture (compiled for tests or with the `testing` feature). Finite-difference gradient checks
//! (f64, CPU): the ground truth every differentiable piece of sepo is
//! tested against.

use dfdx::prelude::*;

use crate::nn::{Grads, ParamStore};

/// A scalar function of a store's parameters, written once for both tapes.
pub trait Objective {
    /// Evaluates the objective, recording on `tape`.
    fn eval<T: Tape<f64, Cpu>>(
        &self,
        store: &ParamStore<f64, Cpu>,
        tape: T,
    ) -> Tensor<Rank0, f64, Cpu, T>;
}

/// Compares autodiff gradients of `f` with central differences `(f(θ+h e_i) − f(θ−h e_i))/2h` for every
/// parameter, and returns the largest error relative to `max(1, |g_i|)`. Leaves `store` unchanged.
pub fn check_gradient<F: Objective>(store: &mut ParamStore<f64, Cpu>, f: &F, h: f64) -> f64 {
    let loss = f.eval(store, OwnedTape::default());
    let analytic = Grads::collect(store, &mut loss.backward())
        .expect("cpu gradients")
        .flat_f64();
    let theta = store.flat_f64();
    let mut worst: f64 = 0.0;
    for i in 0..theta.len() {
        let mut plus = theta.clone();
        plus[i] += h;
        store.set_flat_f64(&plus).unwrap();
        let fp = f.eval(store, NoneTape).array();
        let mut minus = theta.clone();
        minus[i] -= h;
        store.set_flat_f64(&minus).unwrap();
        let fm = f.eval(store, NoneTape).array();
        let numeric = (fp - fm) / (2.0 * h);
        let err = (numeric - analytic[i]).abs() / analytic[i].abs().max(1.0);
        worst = worst.max(err);
    }
    store.set_flat_f64(&theta).unwrap();
    worst
}
