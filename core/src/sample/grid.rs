//! The predictor loop on SEDD's uniform time grid: `steps` Euler or Tweedie steps from `t = 1` to
//! `t_min = eps`, then one denoising step.

use rand::Rng;

use super::condition::{self, Condition};
use super::step;
use super::trajectory::{Step, StepKind, Trajectory};
use super::{check_entry, Predictor, SamplerConfig, Samples};
use crate::diffusion::Diffusion;
use crate::error::{ensure_finite, Result};
use crate::graph::Graph;
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};

/// Draws `batch` sequences of length `seq_len` by simulating the reverse process.
///
/// Grid: `t_k = 1 − k·(1 − eps)/steps`, `k = 0..=steps` (so `t_steps = eps`). Starting from the graph's
/// limit law ([`Graph::sample_limit`]) with the fixed positions of `condition` overwritten, it takes
/// `steps` predictor steps `t_k → t_{k+1}` (scores at `σ̄(t_k)`), then the denoising step at `eps`
/// (scores at `σ̄(eps)`, `Δσ̄ = σ̄(eps)`). The batch is processed in chunks of at most `cfg.max_batch`
/// sequences, one after the other, drawing from `rng` in order: the same seed gives the same samples.
///
/// Errors (typed, at entry): [`crate::Error::Empty`] for `batch = 0` or `seq_len = 0`,
/// [`crate::Error::InvalidParameter`] for a bad config, [`crate::Error::ShapeMismatch`] /
/// [`crate::Error::TokenOutOfVocab`] for a condition that does not fit, or a model over another number
/// of states; during sampling, [`crate::Error::NonFinite`] with `index` = the step whose scores were NaN.
pub fn sample<M, G, S, R>(
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
    let fixed = check_entry(model, graph, batch, seq_len, condition)?;
    schedule.check()?;
    let times = cfg.grid();
    for (k, &t) in times.iter().enumerate() {
        ensure_finite("σ̄(t) on the sampling grid", k, schedule.total(t))?;
        ensure_finite("σ(t) on the sampling grid", k, schedule.rate(t))?;
    }
    let mut tokens = Vec::with_capacity(batch * seq_len);
    let mut chunks = Vec::new();
    for start in (0..batch).step_by(cfg.max_batch) {
        let rows = cfg.max_batch.min(batch - start);
        let chunk_fixed = &fixed[start * seq_len..(start + rows) * seq_len];
        let mut x = graph.sample_limit(rows * seq_len, rng);
        condition::apply(&mut x, chunk_fixed);
        let is_fixed: Vec<bool> = chunk_fixed.iter().map(Option::is_some).collect();
        let mut trajectory = Trajectory::default();
        for k in 0..=cfg.steps {
            let (kind, t, t_next, sigma_bar, sigma_bar_next) = if k < cfg.steps {
                let kind = match cfg.predictor {
                    Predictor::Euler => StepKind::Euler,
                    Predictor::Tweedie => StepKind::Tweedie,
                };
                let (t, t_next) = (times[k], times[k + 1]);
                (kind, t, t_next, schedule.total(t), schedule.total(t_next))
            } else {
                let t = times[k];
                (StepKind::Denoise, t, 0.0, schedule.total(t), 0.0)
            };
            let mut step = Step {
                kind,
                batch: rows,
                seq_len,
                t: vec![t; rows],
                t_next: vec![t_next; rows],
                sigma_bar: vec![sigma_bar; rows],
                sigma_bar_next: vec![sigma_bar_next; rows],
                rate: vec![schedule.rate(t); rows],
                before: x,
                after: Vec::new(),
                fixed: is_fixed.clone(),
                position: Vec::new(),
                log_prob: Vec::new(),
            };
            step::take(model, params, graph, &mut step, k, rng)?;
            // Fixed positions have P(stay) = 1 exactly; forcing them again only guards the invariant.
            condition::apply(&mut step.after, chunk_fixed);
            if cfg.record_trajectory {
                x = step.after.clone();
                trajectory.steps.push(step);
            } else {
                x = step.after;
            }
        }
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
