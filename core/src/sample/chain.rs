//! The reverse chain, one step at a time: the stepping API that every sampler drives.
//!
//! A population of [`Particles`] (states `x`, per-particle times `t` and `σ̄(t)`, fixed positions)
//! moves along the chain a [`SamplerKind`] names:
//!
//! 1. [`SamplerKind::start`]: the particles at `t = 1` (the graph's limit law on the grid, all-mask
//!    for first-hitting), fixed positions overwritten;
//! 2. [`SamplerKind::propose`]: step `k` from the particles' states, its `after` left to draw. The grid
//!    chain's step `k` is the predictor step `t_k → t_{k+1}` (the denoising step at `k = steps`);
//!    first-hitting draws each particle's next event time `s` (`m(s) = m(t)·u^{1/n}`) and the position
//!    it unmasks (uniform among its `n` masked free positions);
//! 3. [`take`](super::step::take) (the samplers: draw and record the log-probability) or
//!    [`next_states`] (several draws from one set of probabilities: guidance's candidates);
//! 4. [`Particles::advance`].
//!
//! [`sample`](super::sample) and [`first_hitting`](super::first_hitting) run this loop chunk by chunk;
//! SMC ([`smc`](super::smc)) and value-guided decoding ([`value_guided`](super::value_guided)) run it
//! on a population with resampling or candidate selection between steps. With the same seed, SMC under a
//! constant potential draws exactly the sampler's sequences (`tests/weight_smc.rs`): there is one
//! chain.

use dfdx::prelude::*;
use rand::Rng;

use super::cache::ScoreCache;
use super::step::{step_probs, take_with};
use super::traffic::fetch;
use super::{check_entry as check_batch, Condition, Predictor, SamplerConfig, Samples};
use super::{Step, StepKind, Trajectory};
use crate::categorical;
use crate::diffusion::Diffusion;
use crate::error::{ensure_finite, Error, Result};
use crate::graph::Graph;
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};

/// Which reverse chain draws the sequences.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SamplerKind {
    /// SEDD's grid ([`sample`](super::sample)): `steps` Euler/Tweedie steps from `t = 1` to `eps`,
    /// then the denoising step; `steps + 1` steps in all. Any graph; its law has a small
    /// discretisation bias.
    Grid(SamplerConfig),
    /// First-hitting events ([`first_hitting`](super::first_hitting)): one step per free position,
    /// exact for exact scores; absorbing graphs only. Reads `max_batch` and `record_trajectory` only.
    FirstHitting(SamplerConfig),
}

impl Default for SamplerKind {
    /// First-hitting (exact for exact scores) with the default sampler settings.
    fn default() -> Self {
        SamplerKind::FirstHitting(SamplerConfig::default())
    }
}

impl SamplerKind {
    /// The sampler settings (`max_batch` is read by both chains).
    pub fn config(&self) -> &SamplerConfig {
        match self {
            SamplerKind::Grid(c) | SamplerKind::FirstHitting(c) => c,
        }
    }

    /// Checks the sampler settings.
    pub fn check(&self) -> Result<()> {
        self.config().check()
    }

    /// Draws `shape = (batch, seq_len)` sequences from `policy` with this sampler, keeping the
    /// positions `cond` fixes, recording trajectories when `record` is set.
    pub fn draw<M, G, S, R>(
        &self,
        policy: &Policy<'_, M>,
        diffusion: &Diffusion<G, S>,
        shape: (usize, usize),
        cond: Option<&Condition>,
        record: bool,
        rng: &mut R,
    ) -> Result<Samples>
    where
        M: ScoreModel,
        G: Graph,
        S: NoiseSchedule,
        R: Rng,
    {
        let cfg = SamplerConfig {
            record_trajectory: record,
            ..*self.config()
        };
        match self {
            SamplerKind::Grid(_) => SamplerKind::Grid(cfg),
            SamplerKind::FirstHitting(_) => SamplerKind::FirstHitting(cfg),
        }
        .drive(policy, diffusion, shape, cond, rng)
    }

    /// Entry checks shared by every driver of the chain, in this order: the sampler settings; an
    /// absorbing graph for first-hitting; the batch (`batch, seq_len ≥ 1`, sizes, the model's states
    /// and length); the schedule, `σ̄(1) > 0` for first-hitting and finite `σ̄`, `σ` on the grid.
    /// Returns the condition expanded to `[batch · seq_len]` fixed tokens.
    pub fn check_entry<M, G, S>(
        &self,
        model: &M,
        diffusion: &Diffusion<G, S>,
        (batch, seq_len): (usize, usize),
        condition: Option<&Condition>,
    ) -> Result<Vec<Option<usize>>>
    where
        M: ScoreModel,
        G: Graph,
        S: NoiseSchedule,
    {
        let (graph, schedule) = (&diffusion.graph, &diffusion.schedule);
        self.check()?;
        if let SamplerKind::FirstHitting(_) = self {
            if graph.mask().is_none() {
                return Err(Error::invalid(
                    "graph",
                    format!("{graph:?}"),
                    "the first-hitting sampler needs an absorbing graph (a mask state)",
                ));
            }
        }
        let fixed = check_batch(model, graph, batch, seq_len, condition)?;
        schedule.check()?;
        match self {
            SamplerKind::FirstHitting(_) => {
                let sigma_start = ensure_finite("σ̄(1) of the schedule", 0, schedule.total(1.0))?;
                if sigma_start <= 0.0 {
                    return Err(Error::invalid(
                        "schedule.total(1)",
                        sigma_start,
                        "must be > 0 for the first-hitting sampler",
                    ));
                }
            }
            SamplerKind::Grid(cfg) => {
                for (k, &t) in cfg.grid().iter().enumerate() {
                    ensure_finite("σ̄(t) on the sampling grid", k, schedule.total(t))?;
                    ensure_finite("σ(t) on the sampling grid", k, schedule.rate(t))?;
                }
            }
        }
        Ok(fixed)
    }

    /// Number of steps from `t = 1` to the clean end for particles with the fixed positions `fixed`
    /// (`[n · seq_len]`): `steps + 1` on the grid; for first-hitting, the largest number of free
    /// positions of a particle (particles with fewer idle in the last steps).
    pub fn num_steps(&self, fixed: &[Option<usize>], seq_len: usize) -> usize {
        match self {
            SamplerKind::Grid(c) => c.steps + 1,
            SamplerKind::FirstHitting(_) => fixed
                .chunks(seq_len.max(1))
                .map(|row| row.iter().filter(|f| f.is_none()).count())
                .max()
                .unwrap_or(0),
        }
    }

    /// The particles at `t = 1` with the fixed positions `fixed` (`[n · seq_len]`): the graph's limit
    /// law ([`Graph::sample_limit`], the grid) or all-mask (first-hitting), fixed tokens overwritten.
    pub fn start<G: Graph, S: NoiseSchedule, R: Rng>(
        &self,
        diffusion: &Diffusion<G, S>,
        fixed: &[Option<usize>],
        seq_len: usize,
        rng: &mut R,
    ) -> Particles {
        let graph = &diffusion.graph;
        let l = seq_len.max(1);
        let n = fixed.len() / l;
        let (mut tokens, masked) = match self {
            SamplerKind::Grid(_) => (graph.sample_limit(n * l, rng), Vec::new()),
            SamplerKind::FirstHitting(_) => (
                vec![graph.mask().unwrap_or(0); n * l],
                fixed
                    .chunks(l)
                    .map(|row| (0..l).filter(|&p| row[p].is_none()).collect())
                    .collect(),
            ),
        };
        super::condition::apply(&mut tokens, fixed);
        Particles {
            tokens,
            t: vec![1.0; n],
            sigma_bar: vec![diffusion.total(1.0); n],
            fixed: fixed.to_vec(),
            seq_len: l,
            masked,
        }
    }

    /// Step `k` (0-based) from the particles' states, `after` left empty. On the grid it is the
    /// predictor step `t_k → t_{k+1}` (`t_k = 1 − k·(1 − eps)/steps`), or the denoising step to
    /// `σ̄ = 0` at `k = steps`. First-hitting draws, particle by particle, the next event time from
    /// `m(s) = m(t)·u^{1/n}` (`m = 1 − e^{−σ̄}`, `u ~ U(0, 1]`, `n` masked free positions; `σ̄(s)` kept
    /// `> 0`) and the position it unmasks, uniform among the `n`, which leaves the particle's list;
    /// particles with nothing masked idle (`t_next = t`).
    pub fn propose<G: Graph, S: NoiseSchedule, R: Rng>(
        &self,
        k: usize,
        p: &mut Particles,
        diffusion: &Diffusion<G, S>,
        rng: &mut R,
    ) -> Step {
        let schedule = &diffusion.schedule;
        let (n, l) = (p.len(), p.seq_len);
        let mut step = Step {
            kind: StepKind::Denoise,
            batch: n,
            seq_len: l,
            t: p.t.clone(),
            t_next: vec![0.0; n],
            sigma_bar: p.sigma_bar.clone(),
            sigma_bar_next: vec![0.0; n],
            rate: p.t.iter().map(|&t| schedule.rate(t)).collect(),
            before: p.tokens.clone(),
            after: Vec::new(),
            fixed: p.fixed.iter().map(Option::is_some).collect(),
            position: Vec::new(),
            log_prob: Vec::new(),
        };
        match self {
            SamplerKind::Grid(cfg) => {
                if k < cfg.steps {
                    let t_next = cfg.grid()[k + 1];
                    step.kind = match cfg.predictor {
                        Predictor::Euler => StepKind::Euler,
                        Predictor::Tweedie => StepKind::Tweedie,
                    };
                    step.t_next = vec![t_next; n];
                    step.sigma_bar_next = vec![schedule.total(t_next); n];
                }
            }
            SamplerKind::FirstHitting(_) => {
                step.kind = StepKind::FirstHitting;
                step.t_next.clone_from(&p.t);
                step.sigma_bar_next.clone_from(&p.sigma_bar);
                step.position = vec![None; n];
                step.log_prob = vec![0.0; n];
                for b in 0..n {
                    let masked = &mut p.masked[b];
                    let count = masked.len();
                    if count == 0 {
                        continue;
                    }
                    // m(s) = m(t)·u^{1/n} with u ∈ (0, 1]; kept ≥ 1e-300 so that σ̄(s) > 0.
                    let u = 1.0 - rng.gen::<f64>();
                    let m_t = -(-p.sigma_bar[b]).exp_m1();
                    let m_s = (m_t * u.powf(1.0 / count as f64)).max(1e-300);
                    step.sigma_bar_next[b] = -(-m_s).ln_1p();
                    step.t_next[b] = schedule.inverse(step.sigma_bar_next[b]);
                    step.position[b] = Some(masked.swap_remove(rng.gen_range(0..count)));
                }
            }
        }
        step
    }

    /// Draws `(batch, seq_len)` sequences with this chain: the entry checks, then chunk by chunk of
    /// at most `max_batch` sequences (one after the other, drawing from `rng` in order, so the same
    /// seed gives the same samples) [`SamplerKind::start`] and the loop of [`SamplerKind::run`].
    /// Recording, every chunk runs the batch-wide number of steps so that the steps line up (a
    /// first-hitting particle with fewer masked positions idles in the last ones).
    pub(crate) fn drive<M, G, S, R>(
        &self,
        policy: &Policy<'_, M>,
        diffusion: &Diffusion<G, S>,
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
        let cfg = *self.config();
        let fixed = self.check_entry(policy.model, diffusion, (batch, seq_len), condition)?;
        let global_steps = self.num_steps(&fixed, seq_len);
        let record = cfg.record_trajectory;
        let mut tokens = Vec::with_capacity(batch * seq_len);
        let mut chunks = Vec::new();
        for start in (0..batch).step_by(cfg.max_batch) {
            let rows = cfg.max_batch.min(batch - start);
            let chunk_fixed = &fixed[start * seq_len..(start + rows) * seq_len];
            let steps = if record {
                global_steps
            } else {
                self.num_steps(chunk_fixed, seq_len)
            };
            let particles = self.start(diffusion, chunk_fixed, seq_len, rng);
            let (x, trajectory) = self.run(policy, diffusion, particles, (steps, record), rng)?;
            tokens.extend(x);
            chunks.push(trajectory);
        }
        Ok(Samples {
            tokens,
            batch,
            seq_len,
            trajectory: record.then(|| Trajectory::concat(chunks)),
        })
    }

    /// Runs `particles` (from [`SamplerKind::start`]) along the chain for `steps` steps with
    /// [`take`](super::take), recording the steps when `record`: the loop [`sample`](super::sample) and
    /// [`first_hitting`](super::first_hitting) run per chunk. A first-hitting step where no particle
    /// has anything left to unmask is idle (`after = before`, no network call). A model that is not
    /// time-conditioned is called only on the sequences that changed since their last forward
    /// (MDLM's cache, `cache.rs`); the samples are the same bit for bit.
    pub(crate) fn run<M, G, S, R>(
        &self,
        policy: &Policy<'_, M>,
        diffusion: &Diffusion<G, S>,
        mut particles: Particles,
        (steps, record): (usize, bool),
        rng: &mut R,
    ) -> Result<(Vec<usize>, Trajectory)>
    where
        M: ScoreModel,
        G: Graph,
        S: NoiseSchedule,
        R: Rng,
    {
        let mut trajectory = Trajectory::default();
        let mut cache = (!policy.model.time_conditioned()).then(ScoreCache::new);
        for k in 0..steps {
            let mut step = self.propose(k, &mut particles, diffusion, rng);
            let idle =
                step.kind == StepKind::FirstHitting && step.position.iter().all(Option::is_none);
            if idle {
                step.after.clone_from(&step.before);
            } else {
                take_with(policy, &diffusion.graph, &mut step, k, cache.as_mut(), rng)?;
            }
            // Fixed positions have P(stay) = 1 exactly; forcing them again only guards the invariant.
            super::condition::apply(&mut step.after, &particles.fixed);
            if record {
                particles.advance(&step, step.after.clone());
                trajectory.steps.push(step);
            } else {
                let after = std::mem::take(&mut step.after);
                particles.advance(&step, after);
            }
        }
        Ok((particles.tokens, trajectory))
    }
}

/// A population of states of the reverse chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Particles {
    /// `[n · L]` tokens.
    pub tokens: Vec<usize>,
    /// Per-particle time `t`.
    pub t: Vec<f64>,
    /// Per-particle `σ̄(t)`.
    pub sigma_bar: Vec<f64>,
    /// `[n · L]` positions held fixed.
    pub fixed: Vec<Option<usize>>,
    /// Sequence length `L`.
    pub seq_len: usize,
    /// First-hitting: per particle, its masked free positions, in the order the chain draws from.
    masked: Vec<Vec<usize>>,
}

impl Particles {
    /// States `tokens [n·L]` at per-particle `t`, `σ̄`, with the fixed positions `fixed [n·L]`, to be
    /// read (denoised, scored) rather than moved by a first-hitting step.
    pub(crate) fn at(
        tokens: Vec<usize>,
        (t, sigma_bar): (Vec<f64>, Vec<f64>),
        fixed: Vec<Option<usize>>,
        seq_len: usize,
    ) -> Self {
        Self {
            tokens,
            t,
            sigma_bar,
            fixed,
            seq_len,
            masked: Vec::new(),
        }
    }

    /// Number of particles `n`.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether there is no particle.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Replaces the population by the particles at `ancestors` (resampling).
    pub fn select(&mut self, ancestors: &[usize]) {
        let l = self.seq_len;
        self.fixed = ancestors
            .iter()
            .flat_map(|&a| self.fixed[a * l..(a + 1) * l].iter().copied())
            .collect();
        self.tokens = ancestors
            .iter()
            .flat_map(|&a| self.tokens[a * l..(a + 1) * l].iter().copied())
            .collect();
        self.t = ancestors.iter().map(|&a| self.t[a]).collect();
        self.sigma_bar = ancestors.iter().map(|&a| self.sigma_bar[a]).collect();
        if !self.masked.is_empty() {
            self.masked = ancestors.iter().map(|&a| self.masked[a].clone()).collect();
        }
    }

    /// Moves the particles to `after` at the step's next times.
    pub fn advance(&mut self, step: &Step, after: Vec<usize>) {
        self.tokens = after;
        self.t.clone_from(&step.t_next);
        self.sigma_bar.clone_from(&step.sigma_bar_next);
    }
}

/// Host `f64` transition probabilities `[n · L · N]` of `step` (in chunks of `max_batch` sequences).
pub fn transition_probs<M, G>(
    policy: &Policy<'_, M>,
    graph: &G,
    step: &Step,
    max_batch: usize,
) -> Result<Vec<f64>>
where
    M: ScoreModel,
    G: Graph,
{
    let mut out = Vec::with_capacity(step.before.len() * graph.num_states());
    // `Step::rows` slices `after` too, which is not drawn yet: give it a placeholder of the right size.
    let mut probe;
    let step = if step.after.len() == step.before.len() {
        step
    } else {
        probe = step.clone();
        probe.after.clone_from(&probe.before);
        &probe
    };
    for start in (0..step.batch).step_by(max_batch.max(1)) {
        let rows = step.rows(start..(start + max_batch).min(step.batch));
        let probs = step_probs(policy.model, policy.params, graph, &rows, NoneTape)?;
        out.extend(fetch(&probs));
    }
    if let Some(i) = out.iter().position(|p| !p.is_finite()) {
        return Err(Error::NonFinite {
            what: "transition probability from the score model's output",
            index: i,
            value: out[i],
        });
    }
    Ok(out)
}

/// `draws` next states per sequence from `step.before`, `[draws][n · L]`: draw `j` of sequence `b` is
/// `out[j][b·L..(b+1)·L]`. One model call per chunk however many draws (they share `before`); a
/// first-hitting step where every particle idles calls no model.
pub fn next_states<M, G, R>(
    policy: &Policy<'_, M>,
    graph: &G,
    step: &Step,
    draws: usize,
    max_batch: usize,
    rng: &mut R,
) -> Result<Vec<Vec<usize>>>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    if step.kind == StepKind::FirstHitting && step.position.iter().all(Option::is_none) {
        return Ok(vec![step.before.clone(); draws]);
    }
    let probs = transition_probs(policy, graph, step, max_batch)?;
    Ok((0..draws)
        .map(|_| draw_rows(&step.before, &probs, graph.num_states(), rng))
        .collect())
}

/// One draw per position from `[n·L·N]` rows; a position that stays with probability 1 uses no
/// randomness (as [`take`](super::take) does).
pub(crate) fn draw_rows<R: Rng>(
    before: &[usize],
    probs: &[f64],
    n: usize,
    rng: &mut R,
) -> Vec<usize> {
    before
        .iter()
        .zip(probs.chunks_exact(n))
        .map(|(&x, row)| {
            if row[x] == 1.0 {
                x
            } else {
                categorical::draw(row, rng)
            }
        })
        .collect()
}
