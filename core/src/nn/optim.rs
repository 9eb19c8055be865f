//! AdamW with moments that can be saved and restored, and an exponential moving average of weights.
//!
//! dfdx's `Adam` keeps its moments private and keyed by per-process tensor ids, so they cannot be
//! checkpointed (DFDX_NOTES §4). This AdamW is written in device-generic tensor ops over a
//! [`ParamStore`] and keeps its state in [`AdamWState`], which [`crate::nn::io`] writes to safetensors.

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::{from_f64, Grads, ParamStore};

/// AdamW hyper-parameters (Loshchilov & Hutter, decoupled weight decay).
///
/// With `g` the gradient at step `t ≥ 1`:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`,
/// `θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay β₁ ∈ [0, 1).
    pub beta1: f64,
    /// Second-moment decay β₂ ∈ [0, 1).
    pub beta2: f64,
    /// ε added to √v̂.
    pub eps: f64,
    /// Decoupled weight decay λ ≥ 0.
    pub weight_decay: f64,
}

impl Default for AdamW {
    /// `lr = 1e-3, β = (0.9, 0.999), ε = 1e-8, λ = 0` (torch's Adam defaults).
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamW {
    /// Adam with learning rate `lr` and the other defaults.
    pub fn with_lr(lr: f64) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }

    /// Validates the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(Error::invalid("lr", self.lr, "must be finite and ≥ 0"));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(Error::invalid("beta1", self.beta1, "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::invalid("beta2", self.beta2, "must be in [0, 1)"));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::invalid("eps", self.eps, "must be finite and > 0"));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(Error::invalid(
                "weight_decay",
                self.weight_decay,
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }

    /// Fresh state (zero moments, `t = 0`) for `store`.
    pub fn init<E: Dtype, D: Device<E>>(&self, store: &ParamStore<E, D>) -> AdamWState<E, D> {
        let zeros = Grads::zeros(store).tensors;
        AdamWState {
            step: 0,
            m: zeros.clone(),
            v: zeros.into_iter().map(|z| z * from_f64::<E>(1.0)).collect(),
        }
    }

    /// One update of every parameter of `store` with gradients `grads`, at learning rate `lr`
    /// (which a schedule may set per step). Refuses non-finite gradients without touching anything.
    pub fn step<E: Dtype, D: Device<E>>(
        &self,
        lr: f64,
        store: &mut ParamStore<E, D>,
        state: &mut AdamWState<E, D>,
        grads: &Grads<E, D>,
    ) -> Result<()> {
        if grads.tensors.len() != store.len() || state.m.len() != store.len() {
            return Err(Error::ShapeMismatch {
                op: "AdamW::step",
                expected: vec![store.len()],
                got: vec![grads.tensors.len(), state.m.len()],
            });
        }
        if !grads.global_norm().is_finite() {
            return Err(Error::Diverged {
                what: "gradient norm",
                step: state.step,
            });
        }
        state.step += 1;
        let t = state.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        for i in 0..store.len() {
            let g = grads.tensors[i].clone();
            let m = state.m[i].clone() * from_f64::<E>(b1) + g.clone() * from_f64::<E>(1.0 - b1);
            let v = state.v[i].clone() * from_f64::<E>(b2) + g.square() * from_f64::<E>(1.0 - b2);
            let m_hat = m.clone() * from_f64::<E>(1.0 / bias1);
            let v_hat = v.clone() * from_f64::<E>(1.0 / bias2);
            let update = m_hat / (v_hat.sqrt() + from_f64::<E>(self.eps));
            let p = store.params()[i].tensor.clone();
            let decayed = p * from_f64::<E>(1.0 - lr * self.weight_decay);
            store.replace(i, decayed - update * from_f64::<E>(lr));
            state.m[i] = m;
            state.v[i] = v;
        }
        Ok(())
    }
}

/// AdamW's state: the step counter and both moments, one tensor per parameter.
#[derive(Debug, Clone)]
pub struct AdamWState<E: Dtype, D: Device<E>> {
    /// Number of updates taken so far.
    pub step: u64,
    /// First moments.
    pub m: Vec<Tensor<(usize,), E, D>>,
    /// Second moments.
    pub v: Vec<Tensor<(usize,), E, D>>,
}

/// Exponential moving average of a store's weights: `θ̄ ← d·θ̄ + (1 − d)·θ`.
#[derive(Debug, Clone)]
pub struct Ema<E: Dtype, D: Device<E>> {
    /// Decay `d ∈ [0, 1)`.
    pub decay: f64,
    /// The averaged weights (same layout as the tracked store, fresh ids).
    pub params: ParamStore<E, D>,
}

impl<E: Dtype, D: Device<E>> Ema<E, D> {
    /// Starts the average at the current weights.
    pub fn new(store: &ParamStore<E, D>, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::invalid("ema decay", decay, "must be in [0, 1)"));
        }
        Ok(Self {
            decay,
            params: store.snapshot(),
        })
    }

    /// Folds the current weights into the average.
    pub fn update(&mut self, store: &ParamStore<E, D>) {
        for i in 0..store.len() {
            let avg = self.params.params()[i].tensor.clone() * from_f64::<E>(self.decay)
                + store.params()[i].tensor.clone() * from_f64::<E>(1.0 - self.decay);
            self.params.replace(i, avg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    /// Scalar AdamW in f64, written from the formula, as the reference.
    fn reference(theta0: f64, grads: &[f64], cfg: &AdamW) -> f64 {
        let (mut th, mut m, mut v) = (theta0, 0.0, 0.0);
        for (k, g) in grads.iter().enumerate() {
            let t = (k + 1) as i32;
            m = cfg.beta1 * m + (1.0 - cfg.beta1) * g;
            v = cfg.beta2 * v + (1.0 - cfg.beta2) * g * g;
            let mh = m / (1.0 - cfg.beta1.powi(t));
            let vh = v / (1.0 - cfg.beta2.powi(t));
            th -= cfg.lr * (mh / (vh.sqrt() + cfg.eps) + cfg.weight_decay * th);
        }
        th
    }

    #[test]
    fn matches_the_scalar_formula() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 0);
        let id = store.add("x", &[1], Init::Ones).unwrap();
        let cfg = AdamW {
            lr: 0.1,
            weight_decay: 0.01,
            ..AdamW::default()
        };
        let mut state = cfg.init(&store);
        let gs = [0.5, -1.0, 2.0, 0.25];
        for &g in &gs {
            let grads = Grads {
                tensors: vec![dev.tensor_from_vec(vec![g], (1,))],
            };
            cfg.step(cfg.lr, &mut store, &mut state, &grads).unwrap();
        }
        approx::assert_abs_diff_eq!(
            store.vector(id).as_vec()[0],
            reference(1.0, &gs, &cfg),
            epsilon = 1e-14
        );
    }

    #[test]
    fn non_finite_gradient_is_refused_and_nothing_changes() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f32, Cpu>::new(&dev, 0);
        store.add("x", &[2], Init::Ones).unwrap();
        let cfg = AdamW::default();
        let mut state = cfg.init(&store);
        let grads = Grads {
            tensors: vec![dev.tensor_from_vec(vec![f32::NAN, 1.0], (2,))],
        };
        assert!(matches!(
            cfg.step(1e-3, &mut store, &mut state, &grads),
            Err(Error::Diverged { .. })
        ));
        assert_eq!(store.flat_f64(), vec![1.0, 1.0]);
        assert_eq!(state.step, 0);
    }

    #[test]
    fn invalid_hyper_parameters_are_named() {
        let bad = AdamW {
            beta1: 1.0,
            ..AdamW::default()
        };
        assert!(matches!(
            bad.check(),
            Err(Error::InvalidParameter { name: "beta1", .. })
        ));
    }
}
