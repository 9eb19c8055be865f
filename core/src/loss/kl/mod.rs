//! The path KL to the reference model, `F(θ) = E_{P_θ}[Σ_k KL_k(x_k; θ)] = KL(P_θ(path) ‖ P_ref(path))`,
//! with the closed-form KL of each reverse step
//!
//! `KL_k(x_k; θ) = Σ_l KL(p_θ(·|x_k)_l ‖ p_ref(·|x_k)_l)`,  `KL(p‖q) = Σ_y p_y (log p_y − log q_y)`,
//!
//! `p_θ(·|x_k)` the per-position reverse-step distributions of the sampler
//! ([`crate::sample::step_probs`]), and its gradient: the closed-form term at the visited states
//! **plus** the score-function term through the states themselves, which depend on θ (derivation and
//! off-policy weights in [`weights`]). The sum of both is the exact gradient of `F`, so
//! `E[r] − β·F` has `P*(path) ∝ P_ref(path)·exp(r/β)` as its fixed point; the first term alone does
//! not.
//!
//! Cost per call: one tape-free forward of θ per step and one of the reference per window step (the
//! values, importance ratios and weights), then one taped forward of θ per step (and another of the
//! reference per window step) for the gradient.

pub mod weights;

#[cfg(test)]
mod tests;

pub use weights::{kl_weights, KlBaseline, KlWeights};

use dfdx::prelude::*;

use crate::error::Result;
use crate::graph::Graph;
use crate::nn::{from_f64, to_f64s, upload_f64s, Grads, ParamStore};
use crate::sample::{step_probs, taken_log_prob, Step, StepProbs, Trajectory};
use crate::score::ScoreModel;

/// Floor inside the logarithms: entries of probability 0 contribute `0·log(floor) = 0` and a finite
/// gradient.
const FLOOR: f64 = 1e-30;

/// How [`path_kl`] differentiates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlGradient {
    /// Scale of the gradient (β in the loss `… + β·F`).
    pub coefficient: f64,
    /// Baseline of the score-function term.
    pub baseline: KlBaseline,
}

/// The path KL along the recorded `trajectory` and, when `gradient` is given, its gradient with
/// respect to `model`'s parameters (θ) scaled by `gradient.coefficient`.
///
/// The trajectory's paths may have been drawn under other parameters θ_old, whose per-step
/// log-probabilities it holds (`Step::log_prob`): every term is then importance-weighted per decision
/// ([`weights`]), so the result is an unbiased estimate of `F` and `∇F` at θ. With
/// `last_steps = Some(W)` the KL covers the last `W` steps only (`F_W = E_{P_θ}[Σ_{k ≥ K−W} KL_k]`), and
/// its gradient still reaches, through the score-function term, the transitions before the window.
///
/// Returns the importance-weighted mean over sequences of the window's path KL (the plain mean at
/// θ = θ_old) and the gradient. Errors: those of [`step_probs`], and [`kl_weights`]'s when the
/// importance ratios overflow.
pub fn path_kl<E, D, M, G>(
    model: &M,
    reference: &ParamStore<E, D>,
    graph: &G,
    trajectory: &Trajectory,
    last_steps: Option<usize>,
    gradient: Option<KlGradient>,
) -> Result<(f64, Option<Grads<E, D>>)>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    let steps = &trajectory.steps;
    let first = last_steps.map_or(0, |n| steps.len().saturating_sub(n));
    // Pass 1, no tape: KL_k and log p_θ(step k) on the host.
    let mut kl = Vec::with_capacity(steps.len() - first);
    let mut log_ratio = Vec::with_capacity(steps.len());
    for (k, step) in steps.iter().enumerate() {
        let p = step_probs(model, model.params(), graph, step, NoneTape)?;
        if k >= first {
            let log_q = reference_log_probs(model, reference, graph, step)?;
            kl.push(to_f64s(&per_sequence_kl(p.clone(), log_q).as_vec()));
        }
        let log_p = to_f64s(&taken_log_prob(graph, p, step)?.as_vec());
        log_ratio.push(
            log_p
                .iter()
                .zip(&step.log_prob)
                .map(|(p, o)| p - o)
                .collect(),
        );
    }
    let baseline = gradient.map_or(KlBaseline::None, |g| g.baseline);
    let w = kl_weights(&kl, &log_ratio, baseline)?;
    let Some(gradient) = gradient else {
        return Ok((w.value, None));
    };
    // Pass 2, taped: Σ_b kl_w·KL_{k,b}(θ) + lp_w·log p_θ(step k of b), one step at a time.
    let mut grads = Grads::zeros(model.params());
    let dev = model.params().device().clone();
    let batch = steps.first().map_or(0, |s| s.batch);
    let tensor = |v: &[f64]| upload_f64s::<E, _, _>(&dev, v, (batch,), "path_kl (step weights)");
    for (k, step) in steps.iter().enumerate() {
        let lp_w = &w.log_prob[k];
        let kl_w = (k >= first).then(|| &w.kl[k - first]);
        let zero = |v: &[f64]| v.iter().all(|&x| x == 0.0);
        if zero(lp_w) && kl_w.is_none_or(|v| zero(v)) {
            continue;
        }
        let p = step_probs(model, model.params(), graph, step, OwnedTape::default())?;
        let kl_term = match kl_w {
            Some(kl_w) => {
                let log_q = reference_log_probs(model, reference, graph, step)?;
                Some(per_sequence_kl(p.with_empty_tape(), log_q) * tensor(kl_w)?)
            }
            None => None,
        };
        let mut surrogate = taken_log_prob(graph, p, step)? * tensor(lp_w)?;
        if let Some(kl_term) = kl_term {
            surrogate = kl_term + surrogate;
        }
        let loss = surrogate.sum::<Rank0, _>() * from_f64::<E>(gradient.coefficient);
        grads.add_assign(&Grads::collect(model.params(), &mut loss.backward())?);
    }
    Ok((w.value, Some(grads)))
}

/// `log p_ref(·|x_k)` of one step, floored, without tape (the reference is a constant).
fn reference_log_probs<E, D, M, G>(
    model: &M,
    reference: &ParamStore<E, D>,
    graph: &G,
    step: &Step,
) -> Result<StepProbs<E, D, NoneTape>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    Ok(step_probs(model, reference, graph, step, NoneTape)?
        .clamp(FLOOR, 1.0)
        .ln())
}

/// `Σ_l Σ_y p (log p − log q)` per sequence, `[B]`, on `p`'s tape.
fn per_sequence_kl<E, D, T>(
    p: StepProbs<E, D, T>,
    log_q: StepProbs<E, D, NoneTape>,
) -> Tensor<(usize,), E, D, T>
where
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D>,
{
    let log_p = p.with_empty_tape().clamp(FLOOR, 1.0).ln();
    (p * (log_p - log_q)).sum::<_, Axes2<1, 2>>()
}
