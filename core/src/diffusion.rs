//! The forward process of a discrete diffusion: a per-position CTMC (the [`Graph`], rate matrix `Q`)
//! run on the clock of a [`NoiseSchedule`] (total noise `σ̄(t)`), so that
//! `p_t(y | x) = exp(σ̄(t) Q)(x, y)` position by position.
//!
//! Samplers, estimators and trainers take one `&Diffusion` where they used to take a graph and a
//! schedule side by side.

use crate::error::Result;
use crate::graph::Graph;
use crate::schedule::NoiseSchedule;

/// The forward corruption `p_t(y | x) = exp(σ̄(t) Q)(x, y)`: a graph `Q` and a schedule `σ̄(t)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Diffusion<G, S> {
    /// The per-position CTMC `Q` (absorbing or uniform).
    pub graph: G,
    /// The noise schedule: `σ̄(t) = ∫_0^t σ(s) ds`.
    pub schedule: S,
}

impl<G: Graph, S: NoiseSchedule> Diffusion<G, S> {
    /// The forward process of `graph` on the clock of `schedule`. Unchecked: [`Diffusion::check`]
    /// validates the schedule, and every entry point that samples or trains calls it.
    pub fn new(graph: G, schedule: S) -> Self {
        Self { graph, schedule }
    }

    /// Validates the schedule ([`NoiseSchedule::check`]: `σ̄` finite, non-negative, non-decreasing,
    /// `σ ≥ 0` on `[0, 1]`).
    pub fn check(&self) -> Result<()> {
        self.schedule.check()
    }

    /// `σ̄(t)`, the total noise at time `t`.
    pub fn total(&self, t: f64) -> f64 {
        self.schedule.total(t)
    }

    /// Number of states `N` of the graph (for absorbing graphs, the clean tokens plus the mask).
    pub fn num_states(&self) -> usize {
        self.graph.num_states()
    }
}
