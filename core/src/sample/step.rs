//! One function computes every step's transition probabilities, on any tape: the samplers call it with
//! `NoneTape` and draw from its output; a policy-gradient estimator calls it again on a recorded
//! [`Step`] with a gradient tape. Sampling and recomputation therefore cannot disagree.

use dfdx::prelude::*;
use rand::Rng;

use super::kernel::{self, euler, first_hitting, tweedie, StepProbs};
use super::trajectory::{Step, StepKind};
use crate::categorical;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{to_f64s, ParamStore};
use crate::score::{Policy, ScoreModel};

/// Transition probabilities of `step` from its state `step.before` (its `after` and `log_prob` are not
/// read), recording on `tape`:
///
/// - [`StepKind::Euler`]: `P(x → y) = Δt·σ(t)·Q(y, x)·s_y` for `y ≠ x`, `P(x → x) = 1 − Σ_{y≠x}`, see
///   `euler.rs` for the clamping;
/// - [`StepKind::Tweedie`] / [`StepKind::Denoise`]: `P(x → y) ∝ s̃_y·exp(Δσ̄ Q)(y, x)`;
/// - [`StepKind::FirstHitting`]: `P(y) ∝ s_y` over real tokens at the chosen position.
///
/// with `s = exp(model(before, σ̄))`. Fixed positions get `P(x → x) = 1`.
pub fn step_probs<E, D, M, G, T>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    step: &Step,
    tape: T,
) -> Result<StepProbs<E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
    T: Tape<E, D>,
{
    step.check(graph)?;
    check_model(model, graph)?;
    let (b, l) = (step.batch, step.seq_len);
    model.check_input(&step.before, b, l, step.model_sigma_bar())?;
    let ids = params
        .device()
        .try_tensor_from_vec(step.before.clone(), (b, l))
        .map_err(Error::device("step_probs (tokens)"))?;
    let log_scores = model.forward_with(params, &ids, step.model_sigma_bar(), tape);
    match step.kind {
        StepKind::Euler => euler::probs(graph, log_scores, step),
        StepKind::Tweedie | StepKind::Denoise => tweedie::probs(graph, log_scores, step),
        StepKind::FirstHitting => first_hitting::probs(graph, log_scores, step),
    }
}

/// Per-sequence log-probability of the transition `step.before → step.after` given the step's
/// probabilities: `Σ_l ln P[b, l, after_{b,l}]`, plus `−ln n_b` for a first-hitting event among `n_b`
/// masked positions. The taken entry is selected *before* `ln`, so entries of probability zero elsewhere
/// never produce a NaN gradient.
pub fn taken_log_prob<E, D, G, T>(
    graph: &G,
    probs: StepProbs<E, D, T>,
    step: &Step,
) -> Result<Tensor<(usize,), E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    G: Graph,
    T: Tape<E, D>,
{
    let (b, l, n) = *probs.shape();
    if (b, l, n) != (step.batch, step.seq_len, graph.num_states()) {
        return Err(Error::ShapeMismatch {
            op: "taken_log_prob",
            expected: vec![step.batch, step.seq_len, graph.num_states()],
            got: vec![b, l, n],
        });
    }
    crate::check::tokens(&step.after, b, l, n)?;
    let dev = probs.device().clone();
    let ids = dev
        .try_tensor_from_vec(step.after.clone(), (b, l))
        .map_err(Error::device("taken_log_prob (tokens)"))?;
    let log_prob = probs.select(ids).ln().sum::<_, Axis<1>>();
    if step.kind != StepKind::FirstHitting {
        return Ok(log_prob);
    }
    let offsets = first_hitting::choice_log_prob(graph, step);
    Ok(log_prob + kernel::constant(&dev, &offsets, (b,))?)
}

/// [`step_probs`] then [`taken_log_prob`]: the per-sequence `Σ_l log P(x_l → x_next_l)` of a recorded
/// step, differentiable in `params` when `tape` records. With `NoneTape` it reproduces
/// `step.log_prob` exactly (the sampler computed it this way).
pub fn step_log_prob<E, D, M, G, T>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    step: &Step,
    tape: T,
) -> Result<Tensor<(usize,), E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
    T: Tape<E, D>,
{
    let probs = step_probs(model, params, graph, step, tape)?;
    taken_log_prob(graph, probs, step)
}

/// Takes `step` from `step.before`: computes its probabilities with [`step_probs`] (no tape), draws
/// every position that can move in f64 by inverse CDF, and fills `step.after` and `step.log_prob`
/// (`Σ_l ln P[b, l, after]`, plus the first-hitting choice term, from [`taken_log_prob`]).
/// `index` names the step in errors.
pub fn take<M, G, R>(
    policy: &Policy<'_, M>,
    graph: &G,
    step: &mut Step,
    index: usize,
    rng: &mut R,
) -> Result<()>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    let (model, params) = (policy.model, policy.params);
    let probs = step_probs(model, params, graph, step, NoneTape)?;
    let host = to_f64s(&probs.as_vec());
    if let Some(i) = host.iter().position(|p| !p.is_finite()) {
        return Err(Error::NonFinite {
            what: "transition probability from the score model's output (index = sampler step; \
                   the model returned NaN/∞ or all-zero scores)",
            index,
            value: host[i],
        });
    }
    let n = graph.num_states();
    step.after = step
        .before
        .iter()
        .zip(host.chunks_exact(n))
        .map(|(&x, row)| {
            // A position that stays with probability exactly 1 (clean absorbing tokens, fixed
            // positions, positions a first-hitting event does not touch) consumes no randomness.
            if row[x] == 1.0 {
                x
            } else {
                categorical::draw(row, rng)
            }
        })
        .collect();
    let log_prob = taken_log_prob(graph, probs, step)?;
    step.log_prob = to_f64s(&log_prob.as_vec());
    Ok(())
}

/// Errors unless the model scores the graph's states.
pub(crate) fn check_model<E: Dtype, D: Device<E>, M: ScoreModel<Elem = E, Device = D>, G: Graph>(
    model: &M,
    graph: &G,
) -> Result<()> {
    if model.num_states() != graph.num_states() {
        return Err(Error::ShapeMismatch {
            op: "sampler (model states vs graph states)",
            expected: vec![graph.num_states()],
            got: vec![model.num_states()],
        });
    }
    Ok(())
}
