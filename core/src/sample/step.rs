//! One function computes every step's transition probabilities, on any tape: the samplers call it with
//! `NoneTape` and draw from its output; a policy-gradient estimator calls it again on a recorded
//! [`Step`] with a gradient tape. Sampling and recomputation therefore cannot disagree.

use dfdx::prelude::*;
use rand::Rng;

use super::cache::ScoreCache;
use super::chain::draw_rows;
use super::factorised;
use super::kernel::{self, euler, first_hitting, tweedie, StepProbs};
use super::traffic::fetch;
use super::trajectory::{Step, StepKind};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::ParamStore;
use crate::score::{LogScores, Policy, ScoreModel};

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
    let log_scores = step_log_scores(model, params, graph, step, tape)?;
    probs_of(graph, log_scores, step)
}

/// The checks of a step against the model and graph, then the model's log-scores at `step.before`
/// and [`Step::model_sigma_bar`], recorded on `tape`.
pub(crate) fn step_log_scores<E, D, M, G, T>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    step: &Step,
    tape: T,
) -> Result<LogScores<E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
    T: Tape<E, D>,
{
    check_step(model, graph, step)?;
    let (b, l) = (step.batch, step.seq_len);
    let ids = params
        .device()
        .try_tensor_from_vec(step.before.clone(), (b, l))
        .map_err(Error::device("step_probs (tokens)"))?;
    model.forward_with(params, &ids, step.model_sigma_bar(), tape)
}

/// [`Step::check`], the model's states against the graph's and its input check on `step.before`.
pub(crate) fn check_step<E, D, M, G>(model: &M, graph: &G, step: &Step) -> Result<()>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    step.check(graph)?;
    check_model(model, graph)?;
    model.check_input(
        &step.before,
        step.batch,
        step.seq_len,
        step.model_sigma_bar(),
    )
}

/// The step rule of `step.kind` applied to log-scores `[B, L, N]` at `step.before`.
pub(crate) fn probs_of<E, D, G, T>(
    graph: &G,
    log_scores: LogScores<E, D, T>,
    step: &Step,
) -> Result<StepProbs<E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    G: Graph,
    T: Tape<E, D>,
{
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
///
/// On a graph with a mask state the draw is factorised (docs/sampling.md): the `B·L` stay
/// probabilities come to the host, then only the rows of the positions that move, so a step copies
/// `O(B·L + moved·N)` values instead of the `B·L·N` of [`take_full_rows`]; the law is the same, and
/// so is the seed stream (one uniform per position that can move). Other graphs draw from full rows.
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
    take_with(policy, graph, step, index, None, rng)
}

/// [`take`] with every row copied to the host and drawn by [`categorical::draw`](crate::categorical::draw)
/// over the whole row, whatever the graph: the reference the factorised draw is tested against, and
/// the "before" of the traffic figures (docs/PERFORMANCE.md).
pub fn take_full_rows<M, G, R>(
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
    let probs = step_probs(policy.model, policy.params, graph, step, NoneTape)?;
    step.after = full_rows(&probs, &step.before, index, rng)?;
    record_log_prob(graph, probs, step)
}

/// [`take`] reading the model's log-scores through `cache` when given (the sampler loop's cache for
/// models that are not time-conditioned, [`ScoreCache`]).
pub(crate) fn take_with<M, G, R>(
    policy: &Policy<'_, M>,
    graph: &G,
    step: &mut Step,
    index: usize,
    cache: Option<&mut ScoreCache<M::Elem, M::Device>>,
    rng: &mut R,
) -> Result<()>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    let (model, params) = (policy.model, policy.params);
    let probs = match cache {
        Some(cache) => {
            check_step(model, graph, step)?;
            probs_of(graph, cache.log_scores(model, params, step)?, step)?
        }
        None => step_probs(model, params, graph, step, NoneTape)?,
    };
    step.after = if graph.mask().is_some() {
        factorised::draw(&probs, &step.before, index, rng)?
    } else {
        full_rows(&probs, &step.before, index, rng)?
    };
    record_log_prob(graph, probs, step)
}

/// The full-row draw: the whole table to the host, one inverse-CDF draw per position that can move.
fn full_rows<E: Dtype, D: Device<E>, R: Rng>(
    probs: &StepProbs<E, D, NoneTape>,
    before: &[usize],
    index: usize,
    rng: &mut R,
) -> Result<Vec<usize>> {
    let host = fetch(probs);
    factorised::check_finite(&host, index)?;
    // A position that stays with probability exactly 1 (clean absorbing tokens, fixed positions,
    // positions a first-hitting event does not touch) consumes no randomness.
    Ok(draw_rows(before, &host, probs.shape().2, rng))
}

/// Fills `step.log_prob` from the step's probabilities and its drawn `after`.
fn record_log_prob<E: Dtype, D: Device<E>, G: Graph>(
    graph: &G,
    probs: StepProbs<E, D, NoneTape>,
    step: &mut Step,
) -> Result<()> {
    let log_prob = taken_log_prob(graph, probs, step)?;
    step.log_prob = fetch(&log_prob);
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
