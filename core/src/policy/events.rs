//! The `Events` estimator: the path log-probability gradient from a random subset of its unmasking events.
//!
//! Under the absorbing graph a recorded reverse path unmasks each free position exactly once. At the step
//! `k` where position `l` of sequence `b` unmasks to `v`, from the state `x_k` (its *context*), the
//! samplers give
//!
//! ```text
//!   first-hitting:  P(M → v) = (1/n)·c_θ(v | x_k)                      (position uniform among n)
//!   Tweedie:        P(M → v) = (1 − q)·c_θ(v | x_k),  P(M → M) = q = (e^{σ̄} − e^{Δσ̄})/(e^{σ̄} − 1)
//!   Euler:          P(M → v) = J/max(1, J)·c_θ(v | x_k),  J = Δt·σ(t)/(e^{σ̄} − 1)
//!   denoising:      P(M → v) = c_θ(v | x_k)
//! ```
//!
//! with `c_θ(v | x_k) = s_v / Σ_{v' real} s_{v'}` the clean conditional read from the scores at `l`. The
//! Tweedie and Euler forms use `Σ_{v real} s_v = 1/(e^{σ̄} − 1)`, which holds exactly for
//! [`ScoreHead::Absorbing`](crate::score::ScoreHead::Absorbing) (a softmax) and for exact scores
//! ([`Tabular`](crate::score::Tabular)); the stay probabilities then do not depend on θ, clean positions
//! stay with probability 1, and
//!
//! ```text
//!   ∇ log P_θ(path) = Σ_{events (k, l, v)} ∇ log c_θ(v | x_k).
//! ```
//!
//! (The first-hitting and denoising forms need no normalisation at all.) The estimator draws `m` of the
//! `n_b` events of each path uniformly without replacement and weighs each by `n_b/m`: unbiased for the
//! sum, at the cost of one forward on `m` contexts per sample, as `MaskedSubset { positions: m }`. A head
//! that is not normalised would make the stay probabilities depend on θ and the estimator biased, so every
//! context forwarded under a grid step is checked: at each masked position `|log((e^{σ̄} − 1)·Σ_v s_v)|`
//! must be below [`NORMALISATION_TOLERANCE`], else [`Error::InvalidParameter`].
//!
//! **PPO with per-event ratios** (DDPO's per-step ratio). Each event is a term of the clipped surrogate,
//! `J = (1/B) Σ_b Σ_{e ∈ S_b} (n_b/m)·min(ρ_e A_b, clip(ρ_e, 1 − ε, 1 + ε) A_b)`, with
//! `ρ_e = c_θ(v_e | x_{k_e}) / c_old(v_e | x_{k_e})` (`c_old` from one tape-free forward under `θ_old`). At
//! `θ = θ_old` every `ρ_e = 1` and the gradient is the REINFORCE gradient of the whole path. The clip acts
//! on each *event's* ratio: it removes the incentive to move one token's conditional, in its recorded
//! context, beyond `[1 − ε, 1 + ε]` in the direction of its advantage. It does not bound the path ratio
//! `Π_e ρ_e`, which is already `(1 ± ε)^n` with all `n` events at their edges: the trust region is per
//! decision (as in DDPO), not per sample. The whole-path ratio at `L = 200` leaves `[1 − ε, 1 + ε]` after
//! one Adam step (reported in issue #14), so a whole-path clip would freeze later epochs; per-event ratios keep them informative.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::{ppo_coefficients, PpoObjective, PpoStats, PpoTerms};
use crate::nn::{to_f64s, upload, upload_f64s, Grads, ParamStore};
use crate::policy::GRAD_TOKENS;
use crate::sample::{StepKind, Trajectory};
use crate::score::head::log_expm1;
use crate::score::ModelGrads;
use crate::score::{Policy, ScoreModel};

/// Largest `|log((e^{σ̄} − 1)·Σ_{v real} s_v)|` accepted at a masked position under a grid step (f32
/// rounding of a softmax head is about 1e-6; an unnormalised head is typically off by far more).
pub const NORMALISATION_TOLERANCE: f64 = 1e-3;

/// One unmasking event of a recorded path: at step `step` (context `trajectory.steps[step].before`),
/// position `position` went from the mask to `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Index of the step in [`Trajectory::steps`].
    pub step: usize,
    /// The position unmasked.
    pub position: usize,
    /// The token it took.
    pub token: usize,
}

/// The unmasking events of every sequence of `trajectory`, per sequence in step order.
///
/// Errors: [`Error::InvalidParameter`] for a graph without a mask or a path that is not an absorbing
/// reverse path (a position that changes other than mask → real token, or a step whose state is not the
/// previous step's result); [`Error::Empty`] for a trajectory without steps; the checks of
/// [`Step::check`](crate::sample::Step::check).
pub fn unmasking_events<G: Graph>(graph: &G, trajectory: &Trajectory) -> Result<Vec<Vec<Event>>> {
    let mask = graph.mask().ok_or_else(|| {
        Error::invalid(
            "log_prob",
            "Events",
            "needs an absorbing graph (a mask state): under other graphs a path is not a set of \
             unmasking events",
        )
    })?;
    let first = trajectory.steps.first().ok_or(Error::Empty {
        op: "unmasking_events",
        what: "the trajectory has no recorded steps",
    })?;
    let (b, l) = (first.batch, first.seq_len);
    let mut events = vec![Vec::new(); b];
    for (k, step) in trajectory.steps.iter().enumerate() {
        if (step.batch, step.seq_len) != (b, l) {
            return Err(Error::ShapeMismatch {
                op: "unmasking_events (steps of one trajectory)",
                expected: vec![b, l],
                got: vec![step.batch, step.seq_len],
            });
        }
        step.check(graph)?;
        crate::check::tokens(&step.after, b, l, graph.num_states())?;
        if k > 0 && trajectory.steps[k - 1].after != step.before {
            return Err(Error::invalid(
                "trajectory",
                format!("step {k}"),
                "its state before is not the previous step's state after",
            ));
        }
        for (i, (&x, &y)) in step.before.iter().zip(&step.after).enumerate() {
            if x == y {
                continue;
            }
            if x != mask || y == mask || step.fixed[i] {
                return Err(Error::invalid(
                    "trajectory",
                    format!(
                        "step {k}, sequence {}, position {}: {x} → {y}",
                        i / l,
                        i % l
                    ),
                    "an absorbing reverse path only unmasks free positions",
                ));
            }
            events[i / l].push(Event {
                step: k,
                position: i % l,
                token: y,
            });
        }
    }
    Ok(events)
}

/// `log c_params(v_e | x_{k_e})` for each `(sequence, event)` of `rows` (one forward on the `rows.len()`
/// contexts, recording on `tape`), with `c = s_v / Σ_{v' real} s_{v'}` at the event's position and the
/// model evaluated at the step's noise level. Checks the head's normalisation under grid steps (module
/// docs).
pub fn event_log_conditionals<E, D, M, G, T>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    trajectory: &Trajectory,
    rows: &[(usize, Event)],
    tape: T,
) -> Result<Tensor<(usize,), E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
    T: Tape<E, D>,
{
    let mask = graph.mask().ok_or_else(|| {
        Error::invalid(
            "log_prob",
            "Events",
            "needs an absorbing graph (a mask state)",
        )
    })?;
    crate::check::nonzero("event rows", rows.len())?;
    let n = graph.num_states();
    if model.num_states() != n {
        return Err(Error::ShapeMismatch {
            op: "event_log_conditionals (model states vs graph states)",
            expected: vec![n],
            got: vec![model.num_states()],
        });
    }
    let l = trajectory.steps.first().map_or(0, |s| s.seq_len);
    let r = rows.len();
    let real: Vec<usize> = (0..n).filter(|&v| v != mask).collect();
    let mut tokens = Vec::with_capacity(r * l);
    let mut sigma = Vec::with_capacity(r);
    let mut index = Vec::with_capacity(r * real.len());
    let mut taken = Vec::with_capacity(r);
    for (ri, &(b, e)) in rows.iter().enumerate() {
        let step = trajectory.steps.get(e.step).ok_or_else(|| {
            Error::invalid("event step", e.step, "is not a step of the trajectory")
        })?;
        if b >= step.batch || e.position >= l || step.before[b * l + e.position] != mask {
            return Err(Error::invalid(
                "event",
                format!("{e:?} of sequence {b}"),
                "must name a masked position of its step's context",
            ));
        }
        tokens.extend_from_slice(&step.before[b * l..(b + 1) * l]);
        sigma.push(step.model_sigma_bar()[b]);
        index.extend(real.iter().map(|&v| (ri * l + e.position) * n + v));
        taken.push(
            real.iter()
                .position(|&v| v == e.token)
                .ok_or_else(|| Error::invalid("event token", e.token, "must be a real token"))?,
        );
    }
    model.check_input(&tokens, r, l, &sigma)?;
    let dev = params.device().clone();
    let ids = dev
        .try_tensor_from_vec(tokens, (r, l))
        .map_err(Error::device("event_log_conditionals (tokens)"))?;
    let out = model.forward_with(params, &ids, &sigma, tape)?; // [r, L, N]
    check_normalised(
        &to_f64s(&out.retaped::<NoneTape>().as_vec()),
        trajectory,
        rows,
        (l, n, mask),
        &sigma,
    )?;
    let picked = out
        .reshape_like(&(r * l * n,))
        .gather(upload(
            &dev,
            index,
            (r * real.len(),),
            "event_log_conditionals (index)",
        )?)
        .reshape_like(&(r, real.len()))
        .log_softmax::<Axis<1>>();
    Ok(picked.select(upload(&dev, taken, (r,), "event_log_conditionals (taken)")?))
}

/// Errors unless, in every context forwarded under a Tweedie or Euler step, every free masked position has
/// `|log Σ_{v real} s_v + log(e^{σ̄} − 1)| ≤` [`NORMALISATION_TOLERANCE`] (`host`: `[r, L, N]` log-scores).
fn check_normalised(
    host: &[f64],
    trajectory: &Trajectory,
    rows: &[(usize, Event)],
    (l, n, mask): (usize, usize, usize),
    sigma: &[f64],
) -> Result<()> {
    for (ri, &(b, e)) in rows.iter().enumerate() {
        let step = &trajectory.steps[e.step];
        if !matches!(step.kind, StepKind::Tweedie | StepKind::Euler) {
            continue;
        }
        let shift = log_expm1(sigma[ri]);
        for q in 0..l {
            let i = b * l + q;
            if step.before[i] != mask || step.fixed[i] {
                continue;
            }
            let row = &host[(ri * l + q) * n..(ri * l + q + 1) * n];
            let max = (0..n)
                .filter(|&v| v != mask)
                .map(|v| row[v])
                .fold(f64::NEG_INFINITY, f64::max);
            let lse = max
                + (0..n)
                    .filter(|&v| v != mask)
                    .map(|v| (row[v] - max).exp())
                    .sum::<f64>()
                    .ln();
            let off = lse + shift;
            // NaN fails too.
            if off.abs().is_nan() || off.abs() > NORMALISATION_TOLERANCE {
                return Err(Error::invalid(
                    "log_prob",
                    "Events",
                    format!(
                        "needs a normalised absorbing head under the {:?} sampler \
                         (Σ_v s_v = 1/(e^σ̄ − 1) at masked positions, as ScoreHead::Absorbing makes \
                         it): at step {}, sequence {b}, position {q}, log((e^σ̄ − 1)·Σ_v s_v) = {off:.3e}; \
                         use the first-hitting sampler or LogProb::Trajectory",
                        step.kind, e.step
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `Σ_{events} log c_params(v_e | x_{k_e})` per sequence of `trajectory`, over all its events, without
/// gradient: with a normalised head, `log P_params(path)` minus a constant that does not depend on the
/// parameters.
pub fn events_log_prob<E, D, M, G>(
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
    let events = unmasking_events(graph, trajectory)?;
    let rows: Vec<(usize, Event)> = events
        .iter()
        .enumerate()
        .flat_map(|(b, ev)| ev.iter().map(move |&e| (b, e)))
        .collect();
    let mut total = vec![0.0; events.len()];
    if rows.is_empty() {
        return Ok(total);
    }
    let lc = event_log_conditionals(model, params, graph, trajectory, &rows, NoneTape)?;
    for (&(b, _), v) in rows.iter().zip(to_f64s(&lc.as_vec())) {
        total[b] += v;
    }
    Ok(total)
}

/// Gradient of the per-event PPO-clip loss `−J` (module docs) with respect to `model`'s parameters, for
/// `trajectory` sampled under `old` and objectives (advantages `[batch]`, clip), from `positions` events
/// per sequence drawn with `rng` (all of them when a path has fewer). Contexts are forwarded in chunks of
/// at most [`GRAD_TOKENS`] tokens (one sequence's events per chunk at least).
///
/// Errors: `positions = 0`, and those of [`unmasking_events`] and [`event_log_conditionals`].
pub fn events_ppo_grads<M, G, R>(
    old: &Policy<'_, M>,
    graph: &G,
    trajectory: &Trajectory,
    positions: usize,
    objectives: &[PpoObjective<'_>],
    rng: &mut R,
) -> Result<(ModelGrads<M>, PpoStats)>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    let (model, old) = (old.model, old.params);
    if positions == 0 {
        return Err(Error::invalid("positions", 0, "Events needs at least 1"));
    }
    let events = unmasking_events(graph, trajectory)?;
    let batch = events.len();
    if let Some(o) = objectives.iter().find(|o| o.advantage.len() != batch) {
        return Err(Error::ShapeMismatch {
            op: "events_ppo_grads advantages",
            expected: vec![batch],
            got: vec![o.advantage.len()],
        });
    }
    // picks[b] = the drawn events of sequence b and their weight n_b/m_b.
    let picks: Vec<(Vec<Event>, f64)> = events
        .iter()
        .map(|ev| {
            let m = positions.min(ev.len());
            let chosen = rand::seq::index::sample(rng, ev.len(), m)
                .into_iter()
                .map(|i| ev[i])
                .collect();
            (chosen, ev.len() as f64 / m.max(1) as f64)
        })
        .collect();
    let l = trajectory.steps[0].seq_len;
    let chunk = (GRAD_TOKENS / (positions * l).max(1)).clamp(1, batch.max(1));
    let mut grads = Grads::zeros(model.params());
    let mut stats = PpoStats::default();
    for start in (0..batch).step_by(chunk) {
        let end = (start + chunk).min(batch);
        let rows: Vec<(usize, Event)> = (start..end)
            .flat_map(|b| picks[b].0.iter().map(move |&e| (b, e)))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let theta = event_log_conditionals(
            model,
            model.params(),
            graph,
            trajectory,
            &rows,
            OwnedTape::default(),
        )?;
        let old_lc = to_f64s(
            &event_log_conditionals(model, old, graph, trajectory, &rows, NoneTape)?.as_vec(),
        );
        let theta_lc = to_f64s(&theta.retaped::<NoneTape>().as_vec());
        // Terms [rows_in_chunk, positions], padded with weight 0 where a path has fewer events.
        let cb = end - start;
        let mut delta = vec![0.0; cb * positions];
        let mut weight = vec![0.0; cb * positions];
        let mut slot = vec![0; rows.len()];
        let mut filled = vec![0; cb];
        for (ri, &(b, _)) in rows.iter().enumerate() {
            let i = (b - start) * positions + filled[b - start];
            filled[b - start] += 1;
            delta[i] = theta_lc[ri] - old_lc[ri];
            weight[i] = picks[b].1;
            slot[ri] = i;
        }
        let sub = PpoObjective::rows(objectives, start, end);
        let zeros = vec![0.0; cb * positions];
        let (coeff, s) = ppo_coefficients(
            &delta,
            cb,
            &PpoTerms {
                weight: &weight,
                log_offset: &zeros,
                objectives: &sub,
            },
        )?;
        // The chunk's loss is a mean over its cb sequences; the whole loss over `batch`.
        let share = cb as f64 / batch as f64;
        // ∂loss/∂ log c_θ(e) = κ_e e^{Δ_e}.
        let multiplier: Vec<f64> = slot
            .iter()
            .map(|&i| share * coeff[i] * delta[i].exp())
            .collect();
        if multiplier.iter().any(|&m| m != 0.0) {
            let dev = model.params().device().clone();
            let m = upload_f64s::<M::Elem, _, _>(
                &dev,
                &multiplier,
                (rows.len(),),
                "event gradient (multiplier)",
            )?;
            let loss = (theta * m).sum::<Rank0, _>();
            grads.add_assign(&Grads::collect(model.params(), &mut loss.backward())?);
        }
        stats.add_chunk(share, &s);
    }
    Ok((grads, stats.finish()))
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
