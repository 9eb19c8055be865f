//! First-hitting sampler for the absorbing graph: one network call per unmasked token, exact for exact
//! scores (no time discretisation).
//!
//! Under the absorbing graph every position is masked independently at time `t` with probability
//! `m(t) = 1 − e^{−σ̄(t)}`, and a masked position at `t` was still masked at `s < t` with probability
//! `m(s)/m(t)`. With `n` masked positions at `t`, the time `s` of the *next* unmasking (going backwards)
//! therefore satisfies `P(all n still masked at s) = (m(s)/m(t))^n`, so inverting with `u ~ U(0, 1)`:
//!
//! ```text
//!   m(s) = m(t)·u^{1/n},   σ̄(s) = −ln(1 − m(s)),   s = σ̄⁻¹(σ̄(s))
//! ```
//!
//! The position is uniform among the `n` (exchangeable clocks), and its token is drawn from the clean
//! conditional given the unmasked tokens, `P(y) = s_y / Σ_{y' real} s_{y'}` with the scores evaluated at
//! `σ̄(s)` (where `s_y = e^{−σ̄}/(1 − e^{−σ̄})·p_0(y | unmasked)`: the normalisation removes the factor).
//! Every sequence has its own event times; one batched forward per event takes per-sequence `σ̄`.

use dfdx::prelude::*;
use rand::Rng;

use super::condition::{self, Condition};
use super::step::{self, constant, one_hot_where, StepProbs};
use super::trajectory::{Step, StepKind, Trajectory};
use super::{check_entry, SamplerConfig, Samples};
use crate::diffusion::Diffusion;
use crate::error::{ensure_finite, Error, Result};
use crate::graph::Graph;
use crate::nn::ParamStore;
use crate::schedule::NoiseSchedule;
use crate::score::{LogScores, Policy, ScoreModel};

/// Draws `batch` sequences of length `seq_len` with the first-hitting sampler (see the module docs).
///
/// Starts all-mask at `t = 1` (fixed positions of `condition` at their tokens) and takes exactly one
/// network call per masked position of each sequence, batched across sequences with per-sequence `σ̄`.
/// Reads `cfg.max_batch` and `cfg.record_trajectory`; `predictor`, `steps` and `eps` do not apply.
/// Recorded steps are [`StepKind::FirstHitting`], one per event (sequences with fewer masked positions
/// idle in the last steps).
///
/// Errors: [`Error::InvalidParameter`] on a graph without a mask state, and the checks of
/// [`sample`](super::sample).
pub fn first_hitting<M, G, S, R>(
    policy: &Policy<'_, M>,
    diffusion: &Diffusion<G, S>,
    cfg: &SamplerConfig,
    (batch, seq_len): (usize, usize),
    condition: Option<&Condition>,
    rng: &mut R,
) -> Result<Samples>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Rng,
{
    let (model, params) = (policy.model, policy.params);
    let (graph, schedule) = (&diffusion.graph, &diffusion.schedule);
    cfg.check()?;
    let mask = graph.mask().ok_or_else(|| {
        Error::invalid(
            "graph",
            format!("{graph:?}"),
            "the first-hitting sampler needs an absorbing graph (a mask state)",
        )
    })?;
    let fixed = check_entry(model, graph, batch, seq_len, condition)?;
    schedule.check()?;
    let sigma_start = ensure_finite("σ̄(1) of the schedule", 0, schedule.total(1.0))?;
    if sigma_start <= 0.0 {
        return Err(Error::invalid(
            "schedule.total(1)",
            sigma_start,
            "must be > 0 for the first-hitting sampler",
        ));
    }
    // Every chunk runs the batch-wide number of events when recording, so steps line up.
    let free_count = |row: &[Option<usize>]| row.iter().filter(|f| f.is_none()).count();
    let global_rounds = fixed.chunks(seq_len).map(free_count).max().unwrap_or(0);

    let mut tokens = Vec::with_capacity(batch * seq_len);
    let mut chunks = Vec::new();
    for start in (0..batch).step_by(cfg.max_batch) {
        let rows = cfg.max_batch.min(batch - start);
        let chunk_fixed = &fixed[start * seq_len..(start + rows) * seq_len];
        let rounds = if cfg.record_trajectory {
            global_rounds
        } else {
            chunk_fixed
                .chunks(seq_len)
                .map(free_count)
                .max()
                .unwrap_or(0)
        };
        let ctx = Chunk {
            schedule,
            mask,
            seq_len,
            sigma_start,
            fixed: chunk_fixed,
            rounds,
            record: cfg.record_trajectory,
        };
        let (x, trajectory) = ctx.run(model, params, graph, rng)?;
        tokens.extend(x);
        chunks.push(trajectory);
    }
    Ok(Samples {
        tokens,
        batch,
        seq_len,
        trajectory: cfg.record_trajectory.then(|| Trajectory::concat(chunks)),
    })
}

struct Chunk<'a, S> {
    schedule: &'a S,
    mask: usize,
    seq_len: usize,
    sigma_start: f64,
    fixed: &'a [Option<usize>],
    rounds: usize,
    record: bool,
}

impl<S: NoiseSchedule> Chunk<'_, S> {
    fn run<E, D, M, G, R>(
        &self,
        model: &M,
        params: &ParamStore<E, D>,
        graph: &G,
        rng: &mut R,
    ) -> Result<(Vec<usize>, Trajectory)>
    where
        E: Dtype,
        D: Device<E>,
        M: ScoreModel<Elem = E, Device = D>,
        G: Graph,
        R: Rng,
    {
        let l = self.seq_len;
        let rows = self.fixed.len() / l;
        let mut x = vec![self.mask; rows * l];
        condition::apply(&mut x, self.fixed);
        let is_fixed: Vec<bool> = self.fixed.iter().map(Option::is_some).collect();
        let mut masked: Vec<Vec<usize>> = self
            .fixed
            .chunks(l)
            .map(|row| (0..l).filter(|&p| row[p].is_none()).collect())
            .collect();
        let mut t = vec![1.0; rows];
        let mut sigma_bar = vec![self.sigma_start; rows];
        let mut trajectory = Trajectory::default();
        for round in 0..self.rounds {
            let mut t_next = t.clone();
            let mut sigma_next = sigma_bar.clone();
            let mut position = vec![None; rows];
            for b in 0..rows {
                let n = masked[b].len();
                if n == 0 {
                    continue;
                }
                // m(s) = m(t)·u^{1/n} with u ∈ (0, 1]; kept ≥ 1e-300 so that σ̄(s) > 0.
                let u = 1.0 - rng.gen::<f64>();
                let m_t = -(-sigma_bar[b]).exp_m1();
                let m_s = (m_t * u.powf(1.0 / n as f64)).max(1e-300);
                sigma_next[b] = -(-m_s).ln_1p();
                t_next[b] = self.schedule.inverse(sigma_next[b]);
                position[b] = Some(masked[b].swap_remove(rng.gen_range(0..n)));
            }
            let mut step = Step {
                kind: StepKind::FirstHitting,
                batch: rows,
                seq_len: l,
                rate: t.iter().map(|&ti| self.schedule.rate(ti)).collect(),
                t: std::mem::replace(&mut t, t_next.clone()),
                t_next,
                sigma_bar: std::mem::replace(&mut sigma_bar, sigma_next.clone()),
                sigma_bar_next: sigma_next,
                before: x.clone(),
                after: Vec::new(),
                fixed: is_fixed.clone(),
                position,
                log_prob: vec![0.0; rows],
            };
            if step.position.iter().any(Option::is_some) {
                step::take(model, params, graph, &mut step, round, rng)?;
            } else {
                // Every sequence is already clean: an idle step, recorded only for alignment.
                step.after = step.before.clone();
            }
            x.clone_from(&step.after);
            if self.record {
                trajectory.steps.push(step);
            }
        }
        Ok((x, trajectory))
    }
}

/// Log-weight given to the entries that are not drawn from before the exp in [`probs`] (finite, so that
/// the backward pass stays finite).
const OFF: f64 = 1e9;

/// First-hitting transition probabilities: at the chosen position of each sequence,
/// `P(y) = s_y / Σ_{y' real} s_{y'}` over real tokens (mask excluded); every other position stays.
pub(crate) fn probs<E, D, G, T>(
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
    let shape = *log_scores.shape();
    let (_, l, n) = shape;
    let dev = log_scores.device().clone();
    let chosen = |i: usize| step.position[i / l] == Some(i % l);
    let mut select = vec![0.0; step.before.len() * n];
    for i in (0..step.before.len()).filter(|&i| chosen(i)) {
        for y in (0..n).filter(|&y| Some(y) != graph.mask()) {
            select[i * n + y] = 1.0;
        }
    }
    // Only the selected log-scores reach the exp: the others get a large finite negative value
    // (`−OFF`), and every row is shifted by its maximum (a constant: `P` is invariant to it). The
    // model's scores at positions that stay are unconstrained and were exponentiated before being
    // multiplied by 0: above ~88.7 in f32 that is `∞·0 = NaN`; and at a small `σ̄` the chosen
    // position's own scores (shifted by `−log(e^{σ̄} − 1)`) can overflow as well.
    let off: Vec<f64> = select.iter().map(|s| (s - 1.0) * OFF).collect();
    let select = constant::<E, D, _>(&dev, &select, shape)?;
    let off = constant::<E, D, _>(&dev, &off, shape)?;
    let stay = constant::<E, D, _>(&dev, &one_hot_where(&step.before, n, |i| !chosen(i)), shape)?;
    let z = log_scores * select.clone() + off;
    let top = z
        .retaped::<NoneTape>()
        .max::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    let weight = (z - top).exp() * select + stay;
    let norm = weight
        .with_empty_tape()
        .sum::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    Ok(weight / norm)
}

/// `−ln n_b` per sequence for the uniform choice of the unmasked position among the `n_b` free masked
/// positions of `step.before` (0 for idle sequences).
pub(crate) fn choice_log_prob<G: Graph>(graph: &G, step: &Step) -> Vec<f64> {
    let l = step.seq_len;
    (0..step.batch)
        .map(|b| {
            if step.position[b].is_none() {
                return 0.0;
            }
            let n = (b * l..(b + 1) * l)
                .filter(|&i| Some(step.before[i]) == graph.mask() && !step.fixed[i])
                .count();
            -(n.max(1) as f64).ln()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Absorbing;

    /// Large log-scores in f32 (the model's outputs are unconstrained at positions that stay, and
    /// shifted by `−log(e^{σ̄} − 1)` at the chosen one): `P` is still the closed-form softmax over the
    /// real tokens at the chosen position and one-hot elsewhere, and `∇ log P(y)` with respect to the
    /// chosen position's log-scores is `e_y − P`. Before the exp was restricted to the drawn entries,
    /// `e^{95}·0` made the staying position NaN (the 4^4 fine-tuning run of issue #14 died of it).
    #[test]
    fn large_log_scores_give_finite_probabilities_and_gradients() {
        let graph = Absorbing::with_tokens(2).unwrap(); // tokens 0, 1; mask 2
        let step = Step {
            kind: StepKind::FirstHitting,
            batch: 1,
            seq_len: 2,
            t: vec![1e-30],
            t_next: vec![1e-31],
            sigma_bar: vec![1e-30],
            sigma_bar_next: vec![1e-31],
            rate: vec![1.0],
            before: vec![2, 0],
            after: vec![1, 0],
            fixed: vec![false; 2],
            position: vec![Some(0)],
            log_prob: vec![0.0],
        };
        let dev = Cpu::default();
        // Chosen (masked) position: [100, 101, mask]; staying position (token 0): [0, 95, mask].
        let raw = [100.0f32, 101.0, -1e9, 0.0, 95.0, -1e9];
        let ls = dev.tensor_from_vec(raw.to_vec(), (1, 2, 3)).leaky_trace();
        let p = probs(&graph, ls.with_empty_tape(), &step).unwrap();
        let host = p.as_vec();
        let p1 = 1.0 / (1.0 + (-1.0f64).exp());
        let expect = [1.0 - p1, p1, 0.0, 1.0, 0.0, 0.0];
        for (i, (&got, want)) in host.iter().zip(expect).enumerate() {
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "P[{i}] = {got}, expected {want}"
            );
        }
        let log_p = taken_log_prob_of(p, &step);
        let g = log_p.backward().get(&ls).as_vec();
        let expect = [-(1.0 - p1), 1.0 - p1, 0.0, 0.0, 0.0, 0.0];
        for (i, (&got, want)) in g.iter().zip(expect).enumerate() {
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "∂log P/∂ls[{i}] = {got}, expected {want}"
            );
        }
    }

    /// `Σ_l ln P[l, after_l]` of the single sequence, on `p`'s tape.
    fn taken_log_prob_of(
        p: StepProbs<f32, Cpu, OwnedTape<f32, Cpu>>,
        step: &Step,
    ) -> Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>> {
        let dev = Cpu::default();
        let ids = dev.tensor_from_vec(step.after.clone(), (1, 2));
        p.select(ids).ln().sum::<Rank0, _>()
    }
}
