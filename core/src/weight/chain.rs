//! One reverse step at a time, for a population of particles: what SMC ([`smc`](mod@super::smc)) and value-guided
//! decoding ([`super::guidance`]) need beyond the samplers, built only on the public [`Step`] /
//! [`step_probs`] API, so that their transitions are exactly the samplers' transitions.
//!
//! A particle is `(x, t, σ̄(t))`. [`Chain::Grid`] follows [`sample`](crate::sample::sample)'s grid
//! (`steps` predictor steps, then the denoising step); [`Chain::FirstHitting`] follows
//! [`first_hitting`](crate::sample::first_hitting) (one unmasking event per step, per-particle clocks).
//!
//! **Denoised estimate.** `x̂_0(x_t)` is read off the model's denoising step ([`StepKind::Denoise`]) from
//! `x_t` at `σ̄(t)`: per position, `P(x̂_0^l = y | x_t) ∝ s̃_y·exp(σ̄ Q)(y, x^l)`, the factorised posterior
//! mean of SEDD's denoiser. [`Denoised::Argmax`] takes its per-position mode, [`Denoised::Draws`] draws
//! `m` sequences from it (positions independently). Either way a clean position stays as it is.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{to_f64s, ParamStore};
use crate::sample::{categorical, step_probs, SamplerConfig, Step, StepKind};
use crate::schedule::NoiseSchedule;
use crate::score::{Policy, ScoreModel};

/// The reverse chain the particles move along.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Chain {
    /// SEDD's grid ([`sample`](crate::sample::sample)): `steps` Euler/Tweedie steps from `t = 1` to
    /// `eps`, then the denoising step; `steps + 1` steps in all. Any graph; its law has a small
    /// discretisation bias.
    Grid(SamplerConfig),
    /// First-hitting events ([`first_hitting`](crate::sample::first_hitting)): one step per free
    /// position, exact for exact scores; absorbing graphs only. Reads `max_batch` only.
    FirstHitting(SamplerConfig),
}

impl Chain {
    /// The sampler settings (`max_batch` is read by both chains).
    pub fn config(&self) -> &SamplerConfig {
        match self {
            Chain::Grid(c) | Chain::FirstHitting(c) => c,
        }
    }

    /// Checks the sampler settings.
    pub fn check(&self) -> Result<()> {
        self.config().check()
    }
}

impl Default for Chain {
    /// First-hitting (exact for exact scores) with the default sampler settings.
    fn default() -> Self {
        Chain::FirstHitting(SamplerConfig::default())
    }
}

/// How the denoised estimate `x̂_0(x_t)` is formed from the model's denoising distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Denoised {
    /// The per-position mode (one estimate per state; deterministic).
    Argmax,
    /// `m ≥ 1` independent draws (a potential may average over them, e.g. `log mean_j exp(r_j/β)`).
    Draws(usize),
}

impl Denoised {
    /// Number of estimates per state.
    pub fn count(&self) -> usize {
        match self {
            Denoised::Argmax => 1,
            Denoised::Draws(m) => *m,
        }
    }

    /// Checks `m ≥ 1`.
    pub fn check(&self) -> Result<()> {
        if let Denoised::Draws(m) = self {
            crate::check::nonzero("Denoised::Draws", *m)?;
        }
        Ok(())
    }
}

/// A population of states of the reverse chain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Particles {
    /// `[n · L]` tokens.
    pub tokens: Vec<usize>,
    /// Per-particle time `t`.
    pub t: Vec<f64>,
    /// Per-particle `σ̄(t)`.
    pub sigma_bar: Vec<f64>,
    /// `[L]` positions held fixed, shared by every particle.
    pub fixed: Vec<Option<usize>>,
    pub seq_len: usize,
}

impl Particles {
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Replaces the population by the particles at `ancestors` (resampling).
    pub fn select(&mut self, ancestors: &[usize]) {
        let l = self.seq_len;
        self.tokens = ancestors
            .iter()
            .flat_map(|&a| self.tokens[a * l..(a + 1) * l].iter().copied())
            .collect();
        self.t = ancestors.iter().map(|&a| self.t[a]).collect();
        self.sigma_bar = ancestors.iter().map(|&a| self.sigma_bar[a]).collect();
    }
}

/// Shared entry checks; returns the shared fixed pattern `[L]`.
pub(crate) fn check_entry<E, D, M, G, S>(
    model: &M,
    graph: &G,
    schedule: &S,
    chain: &Chain,
    n: usize,
    seq_len: usize,
    condition: Option<&crate::sample::Condition>,
) -> Result<Vec<Option<usize>>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
    S: NoiseSchedule,
{
    chain.check()?;
    if let Some(c) = condition {
        if c.pattern().len() != seq_len {
            return Err(Error::invalid(
                "condition",
                format!("a pattern of {} entries", c.pattern().len()),
                format!(
                    "particles share one condition of seq_len = {seq_len} entries (run one population \
                     per prompt)"
                ),
            ));
        }
    }
    let fixed = crate::sample::check_entry(model, graph, n, seq_len, condition)?;
    if let Chain::FirstHitting(_) = chain {
        if graph.mask().is_none() {
            return Err(Error::invalid(
                "chain",
                "FirstHitting",
                "the first-hitting chain needs an absorbing graph (a mask state)",
            ));
        }
    }
    schedule.check()?;
    let sigma_start = crate::error::ensure_finite("σ̄(1) of the schedule", 0, schedule.total(1.0))?;
    if sigma_start <= 0.0 {
        return Err(Error::invalid(
            "schedule.total(1)",
            sigma_start,
            "must be > 0",
        ));
    }
    if let Chain::Grid(cfg) = chain {
        for (k, &t) in cfg.grid().iter().enumerate() {
            crate::error::ensure_finite("σ̄(t) on the sampling grid", k, schedule.total(t))?;
            crate::error::ensure_finite("σ(t) on the sampling grid", k, schedule.rate(t))?;
        }
    }
    Ok(fixed[..seq_len].to_vec())
}

/// Number of steps of the chain: `steps + 1` on the grid, the number of free positions for
/// first-hitting.
pub(crate) fn num_steps(chain: &Chain, fixed: &[Option<usize>]) -> usize {
    match chain {
        Chain::Grid(c) => c.steps + 1,
        Chain::FirstHitting(_) => fixed.iter().filter(|f| f.is_none()).count(),
    }
}

/// `n` particles at `t = 1`: the graph's limit law (grid) or all-mask (first-hitting), with the fixed
/// positions overwritten.
pub(crate) fn start<G: Graph, S: NoiseSchedule, R: Rng>(
    chain: &Chain,
    graph: &G,
    schedule: &S,
    n: usize,
    fixed: &[Option<usize>],
    rng: &mut R,
) -> Particles {
    let l = fixed.len();
    let mut tokens = match chain {
        Chain::Grid(_) => graph.sample_limit(n * l, rng),
        Chain::FirstHitting(_) => vec![graph.mask().unwrap_or(0); n * l],
    };
    for (i, x) in tokens.iter_mut().enumerate() {
        if let Some(token) = fixed[i % l] {
            *x = token;
        }
    }
    Particles {
        tokens,
        t: vec![1.0; n],
        sigma_bar: vec![schedule.total(1.0); n],
        fixed: fixed.to_vec(),
        seq_len: l,
    }
}

/// Step `k` (0-based) from the particles' states, `after` and `log_prob` left empty. First-hitting draws
/// each particle's next event time and position here, as [`first_hitting`](crate::sample::first_hitting)
/// does.
pub(crate) fn propose<G: Graph, S: NoiseSchedule, R: Rng>(
    chain: &Chain,
    k: usize,
    p: &Particles,
    graph: &G,
    schedule: &S,
    rng: &mut R,
) -> Step {
    let (n, l) = (p.len(), p.seq_len);
    let is_fixed: Vec<bool> = (0..n * l).map(|i| p.fixed[i % l].is_some()).collect();
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
        fixed: is_fixed,
        position: Vec::new(),
        log_prob: Vec::new(),
    };
    match chain {
        Chain::Grid(cfg) => {
            if k < cfg.steps {
                let times = cfg.grid();
                step.kind = match cfg.predictor {
                    crate::sample::Predictor::Euler => StepKind::Euler,
                    crate::sample::Predictor::Tweedie => StepKind::Tweedie,
                };
                step.t_next = vec![times[k + 1]; n];
                step.sigma_bar_next = vec![schedule.total(times[k + 1]); n];
            }
        }
        Chain::FirstHitting(_) => {
            // As in first_hitting.rs: with n masked positions, m(s) = m(t)·u^{1/n}, σ̄(s) = −ln(1 − m(s)).
            let mask = graph.mask().unwrap_or(usize::MAX);
            step.kind = StepKind::FirstHitting;
            step.position = vec![None; n];
            for b in 0..n {
                let masked: Vec<usize> = (0..l)
                    .filter(|&q| p.fixed[q].is_none() && p.tokens[b * l + q] == mask)
                    .collect();
                step.t_next[b] = p.t[b];
                step.sigma_bar_next[b] = p.sigma_bar[b];
                if masked.is_empty() {
                    continue;
                }
                let u = 1.0 - rng.gen::<f64>();
                let m_t = -(-p.sigma_bar[b]).exp_m1();
                let m_s = (m_t * u.powf(1.0 / masked.len() as f64)).max(1e-300);
                step.sigma_bar_next[b] = -(-m_s).ln_1p();
                step.t_next[b] = schedule.inverse(step.sigma_bar_next[b]);
                step.position[b] = Some(masked[rng.gen_range(0..masked.len())]);
            }
        }
    }
    step
}

/// Host `f64` transition probabilities `[n · L · N]` of `step` (in chunks of `max_batch` sequences).
pub(crate) fn host_probs<E, D, M, G>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    step: &Step,
    max_batch: usize,
) -> Result<Vec<f64>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
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
        let probs = step_probs(model, params, graph, &rows, NoneTape)?;
        out.extend(to_f64s(&probs.as_vec()));
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
/// `out[j][b·L..(b+1)·L]`. One model call per chunk however many draws (they share `before`).
pub(crate) fn next_states<E, D, M, G, R>(
    model: &M,
    params: &ParamStore<E, D>,
    graph: &G,
    step: &Step,
    draws: usize,
    max_batch: usize,
    rng: &mut R,
) -> Result<Vec<Vec<usize>>>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
    R: Rng,
{
    if step.kind == StepKind::FirstHitting && step.position.iter().all(Option::is_none) {
        return Ok(vec![step.before.clone(); draws]);
    }
    let probs = host_probs(model, params, graph, step, max_batch)?;
    Ok((0..draws)
        .map(|_| draw_rows(&step.before, &probs, graph.num_states(), rng))
        .collect())
}

/// One draw per position from `[n·L·N]` rows; a position that stays with probability 1 uses no
/// randomness (as the samplers do).
fn draw_rows<R: Rng>(before: &[usize], probs: &[f64], n: usize, rng: &mut R) -> Vec<usize> {
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

/// Moves the particles to the step's `after` states and times.
pub(crate) fn advance(p: &mut Particles, step: &Step, after: Vec<usize>) {
    p.tokens = after;
    p.t.clone_from(&step.t_next);
    p.sigma_bar.clone_from(&step.sigma_bar_next);
}

/// Denoised estimates `x̂_0` of the particles' states (`[n · L]`, at per-particle `t`, `σ̄`):
/// `[n · m · L]`, the `m` estimates of particle `b` at rows `b·m .. (b+1)·m`. States with `σ̄ = 0` are
/// clean and returned as they are.
pub(crate) fn denoise<M, G, R>(
    policy: &Policy<'_, M>,
    graph: &G,
    particles: &Particles,
    how: Denoised,
    max_batch: usize,
    rng: &mut R,
) -> Result<Vec<usize>>
where
    M: ScoreModel,
    G: Graph,
    R: Rng,
{
    let (model, params) = (policy.model, policy.params);
    let (states, t, sigma_bar) = (&particles.tokens, &particles.t, &particles.sigma_bar);
    let fixed = &particles.fixed;
    let (n, l, m) = (t.len(), fixed.len(), how.count());
    let noisy: Vec<usize> = (0..n).filter(|&b| sigma_bar[b] > 0.0).collect();
    let mut out: Vec<usize> = (0..n)
        .flat_map(|b| (0..m).flat_map(move |_| states[b * l..(b + 1) * l].iter().copied()))
        .collect();
    if noisy.is_empty() {
        return Ok(out);
    }
    let step = Step {
        kind: StepKind::Denoise,
        batch: noisy.len(),
        seq_len: l,
        t: noisy.iter().map(|&b| t[b]).collect(),
        t_next: vec![0.0; noisy.len()],
        sigma_bar: noisy.iter().map(|&b| sigma_bar[b]).collect(),
        sigma_bar_next: vec![0.0; noisy.len()],
        rate: vec![0.0; noisy.len()],
        before: noisy
            .iter()
            .flat_map(|&b| states[b * l..(b + 1) * l].iter().copied())
            .collect(),
        after: Vec::new(),
        fixed: (0..noisy.len() * l)
            .map(|i| fixed[i % l].is_some())
            .collect(),
        position: Vec::new(),
        log_prob: Vec::new(),
    };
    let states_n = graph.num_states();
    let probs = host_probs(model, params, graph, &step, max_batch)?;
    for (row, &b) in noisy.iter().enumerate() {
        let before = &step.before[row * l..(row + 1) * l];
        let rows = &probs[row * l * states_n..(row + 1) * l * states_n];
        for j in 0..m {
            let estimate = match how {
                Denoised::Argmax => before
                    .iter()
                    .zip(rows.chunks_exact(states_n))
                    .map(|(&x, r)| if r[x] == 1.0 { x } else { argmax(r) })
                    .collect(),
                Denoised::Draws(_) => draw_rows(before, rows, states_n, rng),
            };
            let at = (b * m + j) * l;
            out[at..at + l].copy_from_slice(&estimate);
        }
    }
    Ok(out)
}

/// Index of the largest entry (the first on ties).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
