//! Recorded sampler steps: everything a step's transition probability depends on besides the model, so
//! that [`step_log_prob`](super::step_log_prob) can recompute the same per-sequence log-probability later,
//! with a gradient tape.

use crate::error::{Error, Result};
use crate::graph::Graph;

/// Which transition rule a [`Step`] applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepKind {
    /// Euler step `t → t_next` of the reverse CTMC: `P(x → y) = Δt·σ(t)·Q(y, x)·s_y` for `y ≠ x`.
    Euler,
    /// Analytic τ-leaping (Tweedie) step: `P(x → y) ∝ s̃_y · exp(Δσ̄ Q)(y, x)`, `Δσ̄ = σ̄ − σ̄_next`.
    Tweedie,
    /// Final denoising step: the Tweedie rule with `Δσ̄ = σ̄(t_min)` (`σ̄_next = 0`), the mask state
    /// excluded for absorbing graphs.
    Denoise,
    /// One event of the first-hitting sampler: a single masked position is unmasked with
    /// `P(y) = s_y / Σ_{y' real} s_{y'}`, the scores evaluated at `σ̄_next`.
    FirstHitting,
}

/// One step of a reverse-time sampler over a batch of `batch` sequences of length `seq_len`.
///
/// Per-sequence vectors have length `batch`; token vectors are flat `[batch · seq_len]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// The transition rule.
    pub kind: StepKind,
    /// Number of sequences.
    pub batch: usize,
    /// Length of every sequence.
    pub seq_len: usize,
    /// Time before the step (per sequence; first-hitting sequences have their own clocks).
    pub t: Vec<f64>,
    /// Time after the step (`0` for [`StepKind::Denoise`]).
    pub t_next: Vec<f64>,
    /// `σ̄(t)`.
    pub sigma_bar: Vec<f64>,
    /// `σ̄(t_next)` (`0` for [`StepKind::Denoise`]).
    pub sigma_bar_next: Vec<f64>,
    /// `σ(t) = dσ̄/dt` at `t` (read by [`StepKind::Euler`] only).
    pub rate: Vec<f64>,
    /// State before the step, `[batch · seq_len]`.
    pub before: Vec<usize>,
    /// State after the step, `[batch · seq_len]`.
    pub after: Vec<usize>,
    /// Positions held fixed by a [`Condition`](super::Condition), `[batch · seq_len]`: they never move
    /// and contribute `log 1 = 0` to the log-probability.
    pub fixed: Vec<bool>,
    /// [`StepKind::FirstHitting`] only: the position unmasked in each sequence (`None`: that sequence
    /// had no masked position left and idles).
    pub position: Vec<Option<usize>>,
    /// Per-sequence `Σ_l log P(x_l → x_next_l)` of the transition taken (for first-hitting also
    /// `−ln n`, the uniform choice among `n` masked positions), as computed when sampling.
    pub log_prob: Vec<f64>,
}

impl Step {
    /// The total noise at which the score model is evaluated: `σ̄(t)` for the grid predictors and the
    /// denoiser, `σ̄(t_next)` (the event time) for first-hitting.
    pub fn model_sigma_bar(&self) -> &[f64] {
        match self.kind {
            StepKind::FirstHitting => &self.sigma_bar_next,
            _ => &self.sigma_bar,
        }
    }

    /// Checks lengths, token ids of `before` and noise levels against `graph`, so that recomputation on
    /// a hand-built or deserialised step fails with a typed error instead of a tensor panic. (`after` is
    /// checked where it is read, by [`taken_log_prob`](super::taken_log_prob).)
    pub fn check<G: Graph>(&self, graph: &G) -> Result<()> {
        let (b, l) = (self.batch, self.seq_len);
        crate::check::tokens(&self.before, b, l, graph.num_states())?;
        for (what, v) in [
            ("t", &self.t),
            ("t_next", &self.t_next),
            ("sigma_bar", &self.sigma_bar),
            ("sigma_bar_next", &self.sigma_bar_next),
            ("rate", &self.rate),
        ] {
            if v.len() != b {
                return Err(Error::ShapeMismatch {
                    op: what_op(what),
                    expected: vec![b],
                    got: vec![v.len()],
                });
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::NonFinite {
                    what: what_op(what),
                    index: i,
                    value: v[i],
                });
            }
        }
        crate::check::sigmas(self.model_sigma_bar(), b)?;
        if self.fixed.len() != b * l {
            return Err(Error::ShapeMismatch {
                op: "Step::check (fixed)",
                expected: vec![b, l],
                got: vec![self.fixed.len()],
            });
        }
        if self.kind == StepKind::FirstHitting {
            if self.position.len() != b {
                return Err(Error::ShapeMismatch {
                    op: "Step::check (position)",
                    expected: vec![b],
                    got: vec![self.position.len()],
                });
            }
            if let Some(i) = self.position.iter().position(|p| p.is_some_and(|p| p >= l)) {
                return Err(Error::invalid(
                    "Step::position",
                    format!("{:?} (sequence {i})", self.position[i]),
                    format!("must be < seq_len = {l}"),
                ));
            }
        }
        Ok(())
    }

    /// The rows `rows` of this step (for recomputing a large step in chunks).
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Step {
        self.select(&rows.collect::<Vec<_>>())
    }

    /// The rows `rows` of this step, in that order (rows may repeat).
    pub fn select(&self, rows: &[usize]) -> Step {
        let l = self.seq_len;
        let tok = |v: &[usize]| -> Vec<usize> {
            if v.is_empty() {
                Vec::new()
            } else {
                rows.iter()
                    .flat_map(|&r| v[r * l..(r + 1) * l].iter().copied())
                    .collect()
            }
        };
        let seq = |v: &[f64]| -> Vec<f64> {
            if v.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| v[r]).collect()
            }
        };
        Step {
            kind: self.kind,
            batch: rows.len(),
            seq_len: l,
            t: seq(&self.t),
            t_next: seq(&self.t_next),
            sigma_bar: seq(&self.sigma_bar),
            sigma_bar_next: seq(&self.sigma_bar_next),
            rate: seq(&self.rate),
            before: tok(&self.before),
            after: tok(&self.after),
            fixed: rows
                .iter()
                .flat_map(|&r| self.fixed[r * l..(r + 1) * l].iter().copied())
                .collect(),
            position: if self.position.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&r| self.position[r]).collect()
            },
            log_prob: seq(&self.log_prob),
        }
    }

    /// A first-hitting step in which every one of `tokens`' rows idles (no position unmasked,
    /// log-probability 0), at the noise level of the first row of `template` after its event.
    fn idle(template: &Step, tokens: &[usize], fixed: &[bool]) -> Step {
        let b = tokens.len() / template.seq_len.max(1);
        let at = |v: &[f64]| vec![v.first().copied().unwrap_or(0.0); b];
        Step {
            kind: StepKind::FirstHitting,
            batch: b,
            seq_len: template.seq_len,
            t: at(&template.t_next),
            t_next: at(&template.t_next),
            sigma_bar: at(&template.sigma_bar_next),
            sigma_bar_next: at(&template.sigma_bar_next),
            rate: at(&template.rate),
            before: tokens.to_vec(),
            after: tokens.to_vec(),
            fixed: fixed.to_vec(),
            position: vec![None; b],
            log_prob: vec![0.0; b],
        }
    }

    /// Appends the rows of `other` (same kind and length) below this step's.
    fn append(&mut self, other: Step) {
        self.batch += other.batch;
        self.t.extend(other.t);
        self.t_next.extend(other.t_next);
        self.sigma_bar.extend(other.sigma_bar);
        self.sigma_bar_next.extend(other.sigma_bar_next);
        self.rate.extend(other.rate);
        self.before.extend(other.before);
        self.after.extend(other.after);
        self.fixed.extend(other.fixed);
        self.position.extend(other.position);
        self.log_prob.extend(other.log_prob);
    }
}

fn what_op(what: &'static str) -> &'static str {
    match what {
        "t" => "Step::check (t)",
        "t_next" => "Step::check (t_next)",
        "sigma_bar" => "Step::check (sigma_bar)",
        "sigma_bar_next" => "Step::check (sigma_bar_next)",
        _ => "Step::check (rate)",
    }
}

/// The steps a sampler took, in order, each covering the whole batch.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Trajectory {
    /// Steps from `t = 1` down to the clean end.
    pub steps: Vec<Step>,
}

impl Trajectory {
    /// Per-sequence log-probability of the whole path, `Σ_steps Σ_l log P(x_l → x_next_l)` (for
    /// first-hitting, of the jumps given their times: the event times' law does not depend on the model).
    pub fn log_prob(&self) -> Vec<f64> {
        let batch = self.steps.first().map_or(0, |s| s.batch);
        let mut total = vec![0.0; batch];
        for step in &self.steps {
            for (acc, lp) in total.iter_mut().zip(&step.log_prob) {
                *acc += lp;
            }
        }
        total
    }

    /// The rows `rows` of every step, in that order.
    pub fn select(&self, rows: &[usize]) -> Trajectory {
        Trajectory {
            steps: self.steps.iter().map(|s| s.select(rows)).collect(),
        }
    }

    /// Stacks the trajectories of separate sampler calls (`parts[k]` over the rows `tokens[k]`, flat
    /// `[batch_k · seq_len]`, the clean end of its path, with `fixed[k]` its held positions) into one
    /// over all their rows. First-hitting paths of different lengths are aligned by appending idle
    /// steps (log-probability 0) to the shorter ones; grid paths must have the same number of steps.
    pub fn stack(parts: Vec<(Trajectory, Vec<usize>, Vec<bool>)>) -> Result<Trajectory> {
        let longest = parts.iter().map(|p| p.0.steps.len()).max().unwrap_or(0);
        let Some(template) = parts
            .iter()
            .find(|p| p.0.steps.len() == longest)
            .and_then(|p| p.0.steps.last().cloned())
        else {
            return Ok(Trajectory::default());
        };
        let mut padded = Vec::with_capacity(parts.len());
        for (mut t, tokens, fixed) in parts {
            if t.steps.len() < longest {
                if template.kind != StepKind::FirstHitting {
                    return Err(Error::ShapeMismatch {
                        op: "Trajectory::stack (grid paths of different lengths)",
                        expected: vec![longest],
                        got: vec![t.steps.len()],
                    });
                }
                let idle = Step::idle(&template, &tokens, &fixed);
                t.steps.resize(longest, idle);
            }
            padded.push(t);
        }
        Ok(Trajectory::concat(padded))
    }

    /// Stacks the trajectories of consecutive chunks of one batch into one. Every chunk of one call
    /// takes the same number of steps (first-hitting pads with idle steps), so steps line up by index.
    pub(crate) fn concat(chunks: Vec<Trajectory>) -> Trajectory {
        let mut chunks = chunks.into_iter();
        let Some(mut merged) = chunks.next() else {
            return Trajectory::default();
        };
        for chunk in chunks {
            debug_assert_eq!(chunk.steps.len(), merged.steps.len());
            for (into, step) in merged.steps.iter_mut().zip(chunk.steps) {
                into.append(step);
            }
        }
        merged
    }
}
