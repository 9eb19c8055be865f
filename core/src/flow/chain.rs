//! Batched uniformised steps of the locally balanced chain on a population of particles.
//!
//! One step per particle: pick a position `l` uniformly, read the clean-end scores `s(x)_{l,·}` at that
//! position (one forward), and jump to `x^{l←v}` with probability `Q(x, x^{l←v})/(λ·L·b)` where `b` is
//! the kind's per-position exit bound ([`LocallyBalanced::position_bound`]); stay otherwise. That is
//! exactly the kernel `P = I + Q/Λ` with `Λ = λ·L·b`, whatever `λ`. For the heat bath (`b = 1`) it is
//! "resample `x_l` from `c_l(·|x)`": Gibbs sampling with the model's own conditionals, and for a
//! `Masked` absorbing model "mask `l`, one forward, resample `x_l`".

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::flow::potential::{LogPotential, Space};
use crate::flow::rates::LocallyBalanced;
use crate::graph::Graph;
use crate::nn::{to_f64s, ParamStore};
use crate::score::CleanScores;
use crate::score::ScoreModel;

/// A source of clean-end log-scores at one chosen position per particle.
pub trait PositionScores {
    /// States `N` per position (mask included, if any).
    fn num_states(&self) -> usize;
    /// The mask state, never a jump target.
    fn mask(&self) -> Option<usize>;
    /// `log s(x_b)_{p_b, v}` for every particle `b` (flat `[batch, L]`) at `positions[b]`: rows
    /// `[batch, N]`, `0` at `v = x_{b,p_b}` and `−∞` on the mask column.
    fn position_log_scores(
        &mut self,
        x: &[usize],
        batch: usize,
        positions: &[usize],
    ) -> Result<Vec<f64>>;
    /// Model evaluations (forwards on one sequence) spent so far.
    fn evaluations(&self) -> u64;
}

/// [`PositionScores`] of a [`ScoreModel`] with the weights `params`, read at `t₀` (total noise `sigma0`):
/// `Unmasked`, one forward on `x`; `Masked` (absorbing graphs), one forward on `x` with `l` masked,
/// `log s_{l,v} = log p(v|x_{−l}) − log p(x_l|x_{−l})`. (`MaskedSubset` reads like `Masked` here: one
/// position is read per step anyway.)
#[derive(Debug)]
pub struct ModelScores<'a, M, G, E: Dtype, D: Device<E>> {
    /// The network.
    pub model: &'a M,
    /// Its weights (θ or the reference's).
    pub params: &'a ParamStore<E, D>,
    /// The diffusion graph (its mask, its vocabulary).
    pub graph: &'a G,
    /// `σ̄(t₀)`.
    pub sigma0: f64,
    /// How clean scores are read.
    pub clean: CleanScores,
    /// Largest forward batch.
    pub max_batch: usize,
    /// Forwards spent.
    pub spent: u64,
}

impl<'a, M, G, E, D> PositionScores for ModelScores<'a, M, G, E, D>
where
    E: Dtype,
    D: Device<E>,
    M: ScoreModel<Elem = E, Device = D>,
    G: Graph,
{
    fn num_states(&self) -> usize {
        self.graph.num_states()
    }
    fn mask(&self) -> Option<usize> {
        self.graph.mask()
    }
    fn position_log_scores(
        &mut self,
        x: &[usize],
        batch: usize,
        positions: &[usize],
    ) -> Result<Vec<f64>> {
        let n = self.graph.num_states();
        let l = check_particles(x, batch, positions, self.graph.num_tokens())?;
        let masked = match (self.graph.mask(), self.clean) {
            (None, _) | (_, CleanScores::Unmasked) => None,
            (Some(m), _) => Some(m),
        };
        let dev = self.params.device().clone();
        let mut out = Vec::with_capacity(batch * n);
        for start in (0..batch).step_by(self.max_batch.max(1)) {
            let rows = (batch - start).min(self.max_batch.max(1));
            let mut tokens = x[start * l..(start + rows) * l].to_vec();
            if let Some(m) = masked {
                for r in 0..rows {
                    tokens[r * l + positions[start + r]] = m;
                }
            }
            let ids = dev
                .try_tensor_from_vec(tokens, (rows, l))
                .map_err(Error::device("ModelScores"))?;
            let scores = to_f64s(
                &self
                    .model
                    .forward_with(self.params, &ids, &vec![self.sigma0; rows], NoneTape)?
                    .as_vec(),
            );
            self.spent += rows as u64;
            for r in 0..rows {
                let (b, p) = (start + r, positions[start + r]);
                let row = &scores[(r * l + p) * n..(r * l + p + 1) * n];
                let own = if masked.is_some() {
                    row[x[b * l + p]]
                } else {
                    0.0
                };
                for (v, &s) in row.iter().enumerate() {
                    out.push(if Some(v) == self.graph.mask() {
                        f64::NEG_INFINITY
                    } else if v == x[b * l + p] {
                        0.0
                    } else {
                        s - own
                    });
                }
            }
        }
        Ok(out)
    }
    fn evaluations(&self) -> u64 {
        self.spent
    }
}

/// Exact consistent scores `log s(x)_{l,v} = φ_θ(x^{l←v}) − φ_θ(x)` of a [`LogPotential`], on the host.
#[derive(Debug, Clone)]
pub struct ExactScores<P> {
    /// The model.
    pub model: P,
    /// `φ_θ` over the whole space.
    pub phi: Vec<f64>,
    /// Evaluations spent (one per particle and call).
    pub spent: u64,
}

impl<P: LogPotential> ExactScores<P> {
    /// Scores of `model` at `theta`.
    pub fn new(model: P, theta: &[f64]) -> Self {
        let phi = model.table(theta);
        Self {
            model,
            phi,
            spent: 0,
        }
    }
}

impl<P: LogPotential> PositionScores for ExactScores<P> {
    fn num_states(&self) -> usize {
        self.model.space().tokens
    }
    fn mask(&self) -> Option<usize> {
        None
    }
    fn position_log_scores(
        &mut self,
        x: &[usize],
        batch: usize,
        positions: &[usize],
    ) -> Result<Vec<f64>> {
        let space: Space = self.model.space();
        let l = check_particles(x, batch, positions, space.tokens)?;
        if l != space.seq_len {
            return Err(Error::ShapeMismatch {
                op: "ExactScores",
                expected: vec![batch, space.seq_len],
                got: vec![batch, l],
            });
        }
        self.spent += batch as u64;
        let mut out = Vec::with_capacity(batch * space.tokens);
        for b in 0..batch {
            let i = space.index(&x[b * l..(b + 1) * l]);
            for v in 0..space.tokens {
                out.push(self.phi[space.neighbour(i, positions[b], v)] - self.phi[i]);
            }
        }
        Ok(out)
    }
    fn evaluations(&self) -> u64 {
        self.spent
    }
}

fn check_particles(x: &[usize], batch: usize, positions: &[usize], vocab: usize) -> Result<usize> {
    crate::check::nonzero("batch", batch)?;
    let l = x.len() / batch;
    crate::check::tokens(x, batch, l, vocab)?;
    if positions.len() != batch {
        return Err(Error::ShapeMismatch {
            op: "position_log_scores (positions)",
            expected: vec![batch],
            got: vec![positions.len()],
        });
    }
    if let Some(b) = positions.iter().position(|&p| p >= l) {
        return Err(Error::invalid(
            "position",
            positions[b],
            format!("particle {b}: must be < {l}"),
        ));
    }
    Ok(l)
}

/// One accepted jump `x^{(b)} → x^{(b), l←to}`, with the log-score `log s(x)_{l,to}` it used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jump {
    /// Particle index.
    pub particle: usize,
    /// Position `l`.
    pub position: usize,
    /// Token before.
    pub from: usize,
    /// Token after.
    pub to: usize,
    /// `log s(x)_{l,to}` before the jump: `log π(y) − log π(x)` for consistent scores.
    pub log_score: f64,
}

/// One uniformised step of every particle (flat `[batch, L]`, updated in place) under the chain of
/// `kind` with scores from `scores`; returns the jumps. One score evaluation per particle. Fails for
/// kinds with unbounded rates (`Sqrt`, `Corrector`), which cannot be uniformised.
pub fn step<S: PositionScores + ?Sized, R: Rng + ?Sized>(
    kind: LocallyBalanced,
    scores: &mut S,
    x: &mut [usize],
    batch: usize,
    rng: &mut R,
) -> Result<Vec<Jump>> {
    crate::check::nonzero("batch", batch)?;
    let l = x.len() / batch;
    crate::check::nonzero("sequence length", l)?;
    let n = scores.num_states();
    let real = n - usize::from(scores.mask().is_some());
    let bound = kind.checked_bound(real)?;
    let positions: Vec<usize> = (0..batch).map(|_| rng.gen_range(0..l)).collect();
    let rows = scores.position_log_scores(x, batch, &positions)?;
    let mut rates = vec![0.0; n];
    let mut jumps = Vec::new();
    for (b, &p) in positions.iter().enumerate() {
        let row = &rows[b * n..(b + 1) * n];
        let from = x[b * l + p];
        kind.rates(row, from, &mut rates);
        let u = rng.gen::<f64>() * bound;
        let mut acc = 0.0;
        for (v, &r) in rates.iter().enumerate() {
            acc += r;
            if r > 0.0 && u < acc {
                x[b * l + p] = v;
                jumps.push(Jump {
                    particle: b,
                    position: p,
                    from,
                    to: v,
                    log_score: row[v],
                });
                break;
            }
        }
    }
    Ok(jumps)
}
