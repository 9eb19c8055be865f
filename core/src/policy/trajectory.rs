//! The `Trajectory` estimator: the reverse chain as a policy over paths (DDPO-style).
//!
//! `log P_θ(path) = Σ_k log p_θ(x_{k+1} | x_k)`, each step's probability recomputed with a gradient tape by
//! [`crate::sample::step_log_prob`] (the very function the sampler drew from). The PPO ratio is per sample,
//! `ρ_b = exp(log P_θ(path_b) − log P_old(path_b))`; the clipped minimum is resolved on the host
//! ([`crate::loss::ppo_coefficients`]) and the gradient `Σ_b κ_b ρ_b Σ_k ∇ log p_θ(step_k)` is then
//! accumulated one step at a time, so memory does not grow with the number of steps.

use dfdx::prelude::*;

use crate::error::Result;
use crate::graph::Graph;
use crate::loss::{ppo_coefficients, PpoObjective, PpoStats, PpoTerms};
use crate::nn::{to_f64s, upload_f64s, Grads, ParamStore};
use crate::sample::{step_log_prob, Trajectory};
use crate::score::ScoreModel;

/// `log P_params(path)` per sequence of `trajectory`, without gradient.
pub fn path_log_prob<E, D, M, G>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    trajectory: &Trajectory,
) -> Result<Vec<f64>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    let batch = trajectory.steps.first().map_or(0, |s| s.batch);
    let mut total = vec![0.0; batch];
    for step in &trajectory.steps {
        let lp = to_f64s(&step_log_prob(model, params, graph, step, NoneTape)?.as_vec());
        for (t, v) in total.iter_mut().zip(lp) {
            *t += v;
        }
    }
    Ok(total)
}

/// Gradient of the per-sample PPO-clip loss `−J` of the trajectory estimator, with respect to `model`'s
/// parameters, for recorded `trajectory` (sampled under `θ_old`, whose per-step log-probabilities it holds)
/// and objectives (advantages `[batch]`, clip).
pub fn trajectory_ppo_grads<E, D, M, G>(
    model: &M,
    graph: &G,
    trajectory: &Trajectory,
    objectives: &[PpoObjective<'_>],
) -> Result<(Grads<E, D>, PpoStats)>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    let batch = trajectory.steps.first().map_or(0, |s| s.batch);
    let current = path_log_prob(model, model.params(), graph, trajectory)?;
    let old = trajectory.log_prob();
    let delta: Vec<f64> = current.iter().zip(&old).map(|(c, o)| c - o).collect();
    let ones = vec![1.0; batch];
    let zeros = vec![0.0; batch];
    let (coeff, stats) = ppo_coefficients(
        &delta,
        batch,
        &PpoTerms {
            weight: &ones,
            log_offset: &zeros,
            objectives,
        },
    )?;
    // ∂loss/∂(log p_step,b) = κ_b e^{Δ_b}, the same for every step of path b.
    let multiplier: Vec<f64> = coeff.iter().zip(&delta).map(|(k, d)| k * d.exp()).collect();
    let dev = model.params().device().clone();
    let multiplier = upload_f64s::<E, _, _>(
        &dev,
        &multiplier,
        (batch,),
        "trajectory gradient (multiplier)",
    )?;
    let mut grads = Grads::zeros(model.params());
    if multiplier.as_vec().iter().all(|m| m.to_f64() == Some(0.0)) {
        return Ok((grads, stats));
    }
    for step in &trajectory.steps {
        let lp = step_log_prob(model, model.params(), graph, step, OwnedTape::default())?;
        let loss = (lp * multiplier.clone()).sum::<Rank0, _>();
        grads.add_assign(&Grads::collect(model.params(), &mut loss.backward())?);
    }
    Ok((grads, stats))
}
