//! The path KL to the reference model along sampled trajectories, in closed form per step:
//!
//! `KL_path = Σ_k Σ_l KL(p_θ(·|x_k)_l ‖ p_ref(·|x_k)_l)`,  `KL(p‖q) = Σ_y p_y (log p_y − log q_y)`,
//!
//! with `p_θ(·|x_k)` the per-position reverse-step distributions of the sampler
//! ([`crate::sample::step_probs`]). Its gradient is taken through `p_θ` only; `p_ref` is a constant.

use dfdx::prelude::*;

use crate::error::Result;
use crate::graph::Graph;
use crate::nn::{from_f64, to_f64s, Grads, ParamStore};
use crate::sample::{step_probs, Trajectory};
use crate::score::ScoreModel;

/// Floor inside the logarithms: entries of probability 0 contribute `0·log(floor) = 0` and a finite
/// gradient.
const FLOOR: f64 = 1e-30;

/// Mean over sequences of the path KL over the last `last_steps` steps (all if `None`), and, when
/// `with_grad`, its gradient with respect to `model`'s parameters scaled by `coefficient`.
pub fn path_kl<E, D, M, G>(
    model: &M,
    reference: &ParamStore<E, D>,
    graph: &G,
    trajectory: &Trajectory,
    last_steps: Option<usize>,
    coefficient: f64,
    with_grad: bool,
) -> Result<(f64, Option<Grads<E, D>>)>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<E, D>,
    G: Graph,
{
    let steps = &trajectory.steps;
    let skip = last_steps.map_or(0, |n| steps.len().saturating_sub(n));
    let mut total = 0.0;
    let mut grads = with_grad.then(|| Grads::zeros(model.params()));
    for step in &steps[skip..] {
        let batch = step.batch as f64;
        let q = step_probs(model, reference, graph, step, NoneTape)?;
        let log_q = q.clamp(FLOOR, 1.0).ln();
        if let Some(g) = grads.as_mut() {
            let p = step_probs(model, model.params(), graph, step, OwnedTape::default())?;
            let log_p = p.with_empty_tape().clamp(FLOOR, 1.0).ln();
            let kl = (p * (log_p - log_q)).sum::<Rank0, _>();
            total += to_f64s(&kl.retaped::<NoneTape>().as_vec())[0] / batch;
            let scaled = kl * from_f64::<E>(coefficient / batch);
            g.add_assign(&Grads::collect(model.params(), &mut scaled.backward())?);
        } else {
            let p = step_probs(model, model.params(), graph, step, NoneTape)?;
            let log_p = p.clone().clamp(FLOOR, 1.0).ln();
            total += to_f64s(&(p * (log_p - log_q)).sum::<Rank0, _>().as_vec())[0] / batch;
        }
    }
    Ok((total, grads))
}
