//! Learning-rate schedules and the one optimiser object every trainer updates through.

use dfdx::prelude::*;

use super::{AdamW, AdamWState, Grads, ParamStore};
use crate::error::{Error, Result};

/// Learning-rate schedule as a function of the step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    /// `lr(i) = lr`.
    Constant,
    /// Linear warm-up over `warmup` steps, then constant (SEDD).
    Warmup {
        /// Warm-up length.
        warmup: u64,
    },
    /// `lr·(1 − i/total)`, reaching 0 at `total` (the single loop's linear decay).
    Linear {
        /// Step at which the rate reaches 0.
        total: u64,
    },
    /// `lr/√(1 + i/scale)` (the single loop's default, `scale = 100`).
    InvSqrt {
        /// Steps per unit of the decay.
        scale: f64,
    },
    /// Linear warm-up, then cosine decay to `min_ratio·lr` at `total`.
    WarmupCosine {
        /// Warm-up length.
        warmup: u64,
        /// Step at which the decay ends.
        total: u64,
        /// Final fraction of the peak rate.
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// Validates the schedule: `WarmupCosine` needs `min_ratio ∈ [0, 1]` (NaN made NaN rates, a
    /// negative one a negative rate, i.e. gradient ascent on the loss) and `total > warmup` (the decay
    /// must end after the warm-up does).
    pub fn check(&self) -> Result<()> {
        if let LrSchedule::InvSqrt { scale } = *self {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(Error::invalid("scale", scale, "must be finite and > 0"));
            }
        }
        if let LrSchedule::WarmupCosine {
            warmup,
            total,
            min_ratio,
        } = *self
        {
            if !(0.0..=1.0).contains(&min_ratio) {
                return Err(Error::invalid(
                    "min_ratio",
                    min_ratio,
                    "is a fraction of the peak rate: must be in [0, 1]",
                ));
            }
            if total <= warmup {
                return Err(Error::invalid(
                    "total",
                    total,
                    format!("the cosine decay must end after the warm-up: need total > warmup = {warmup}"),
                ));
            }
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based) for peak `lr`.
    pub fn at(&self, lr: f64, step: u64) -> f64 {
        let warm = |w: u64| {
            if w == 0 {
                1.0
            } else {
                (step.saturating_add(1) as f64 / w as f64).min(1.0)
            }
        };
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Warmup { warmup } => lr * warm(warmup),
            LrSchedule::Linear { total } => lr * (1.0 - step as f64 / total.max(1) as f64).max(0.0),
            LrSchedule::InvSqrt { scale } => lr / (1.0 + step as f64 / scale.max(1e-12)).sqrt(),
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_ratio,
            } => {
                if step < warmup {
                    lr * warm(warmup)
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let progress = ((step - warmup) as f64 / span).min(1.0);
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                    lr * (min_ratio + (1.0 - min_ratio) * cosine)
                }
            }
        }
    }
}

/// What one optimiser update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Update {
    /// Global gradient norm `‖g‖₂` before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// AdamW with a learning-rate schedule and optional global-norm clipping: clip → schedule → step, the
/// update the pretrainer, the two-loop fine-tuner and the single loop all take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimizer {
    /// The update rule (its `lr` is the peak rate the schedule scales).
    pub adamw: AdamW,
    /// `lr(i)` from the peak rate.
    pub schedule: LrSchedule,
    /// Rescale gradients to at most this global norm: `g ← g·min(1, c/‖g‖₂)`.
    pub clip: Option<f64>,
}

impl Optimizer {
    /// One update at schedule index `index`: clips `grads` in place (or measures their norm), errors
    /// with [`Error::Diverged`] on a non-finite norm before touching anything, then takes the AdamW
    /// step at `lr = schedule.at(adamw.lr, index)`.
    pub fn apply<E: Dtype, D: Device<E>>(
        &self,
        index: u64,
        store: &mut ParamStore<E, D>,
        state: &mut AdamWState<E, D>,
        grads: &mut Grads<E, D>,
    ) -> Result<Update> {
        let grad_norm = match self.clip {
            Some(c) => grads.clip_norm(c),
            None => grads.global_norm(),
        };
        if !grad_norm.is_finite() {
            return Err(Error::Diverged {
                what: "gradient norm",
                step: state.step,
            });
        }
        let lr = self.schedule.at(self.adamw.lr, index);
        self.adamw.step(lr, store, state, grads)?;
        Ok(Update { grad_norm, lr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single loop's decays, now schedules, keep their closed forms.
    #[test]
    fn linear_and_inverse_square_root_decays() {
        let linear = LrSchedule::Linear { total: 4 };
        let got: Vec<f64> = (0..6).map(|i| linear.at(2.0, i)).collect();
        assert_eq!(got, vec![2.0, 1.5, 1.0, 0.5, 0.0, 0.0]);
        let inv = LrSchedule::InvSqrt { scale: 3.0 };
        assert_eq!(inv.at(2.0, 0), 2.0);
        assert!((inv.at(2.0, 9) - 1.0).abs() < 1e-15); // 2/√(1 + 3)
        assert!(LrSchedule::InvSqrt { scale: 0.0 }.check().is_err());
        assert!(LrSchedule::InvSqrt { scale: f64::NAN }.check().is_err());
    }

    /// Clipping rescales to the bound and reports the norm before it; a NaN gradient is refused before
    /// the weights move.
    #[test]
    fn apply_clips_schedules_and_refuses_non_finite_gradients() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 0);
        store.add("w", &[2], crate::nn::Init::Zeros).unwrap();
        let opt = Optimizer {
            adamw: AdamW::with_lr(0.1),
            schedule: LrSchedule::Linear { total: 10 },
            clip: Some(1.0),
        };
        let mut state = opt.adamw.init(&store);
        let mut grads = Grads::zeros(&store);
        grads.tensors[0] = dev.tensor_from_vec(vec![3.0, 4.0], (2,));
        let update = opt.apply(5, &mut store, &mut state, &mut grads).unwrap();
        assert_eq!(
            update,
            Update {
                grad_norm: 5.0,
                lr: 0.05
            }
        );
        assert!((grads.global_norm() - 1.0).abs() < 1e-12);
        let before = store.flat_f64();
        grads.tensors[0] = dev.tensor_from_vec(vec![f64::NAN, 0.0], (2,));
        let err = opt.apply(6, &mut store, &mut state, &mut grads);
        assert!(matches!(err, Err(Error::Diverged { .. })), "{err:?}");
        assert_eq!(store.flat_f64(), before);
    }
}
