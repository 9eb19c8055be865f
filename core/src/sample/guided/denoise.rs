//! The denoised estimate `x̂_0(x_t)` that guided samplers score: read off the model's denoising step
//! ([`StepKind::Denoise`]) from `x_t` at `σ̄(t)`, per position
//! `P(x̂_0^l = y | x_t) ∝ s̃_y·exp(σ̄ Q)(y, x^l)`, the factorised posterior mean of SEDD's denoiser.
//! [`Denoised::Argmax`] takes its per-position mode, [`Denoised::Draws`] draws `m` sequences from it
//! (positions independently). Either way a clean position stays as it is.

use rand::Rng;

use crate::error::Result;
use crate::graph::Graph;
use crate::sample::chain::draw_rows;
use crate::sample::{transition_probs, Particles, Step, StepKind};
use crate::score::{Policy, ScoreModel};

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
    let (states, t, sigma_bar) = (&particles.tokens, &particles.t, &particles.sigma_bar);
    let fixed = &particles.fixed;
    let (n, l, m) = (t.len(), particles.seq_len, how.count());
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
        fixed: noisy
            .iter()
            .flat_map(|&b| fixed[b * l..(b + 1) * l].iter().map(Option::is_some))
            .collect(),
        position: Vec::new(),
        log_prob: Vec::new(),
    };
    let states_n = graph.num_states();
    let probs = transition_probs(policy, graph, &step, max_batch)?;
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
