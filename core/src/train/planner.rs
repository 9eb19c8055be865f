//! One round of sample allocation as a sequence of *passes*: the planner says how many draws each
//! prompt gets next, the caller draws them (one batched sampler call per pass) and shows the rewards
//! back, until the planner says the round is done. Every [`Allocation`] strategy is a planner, so a
//! trainer runs them all with the same loop:
//!
//! ```text
//! let mut drawn = vec![vec![]; prompts];
//! while let Some(counts) = planner.next_pass(&drawn) { /* draw counts[i] for prompt i, append rewards */ }
//! planner.observe(&drawn, &grad_norms)?;   // per-prompt spread for the next round's Neyman split
//! ```
//!
//! | strategy | passes |
//! |---|---|
//! | `Uniform` | one: `n_i = B/P` |
//! | `Neyman` | one: `n_i = floor + share_i`, `share ∝ σ̂_i` ([`Allocator::allocate`]) |
//! | `Sequential` | chunks for every prompt whose group is still degenerate, up to `cap` ([`Sequential`]) |
//! | `Adaptive` | a first chunk for every prompt; then each pass tops up the non-degenerate groups towards their Neyman targets, and spends what is left on one more chunk for each degenerate group below the round's mean reward (up to `cap`); never more than `B` draws in all |
//!
//! **Why `Adaptive`.** Neyman allocation minimises the variance of one round's estimate,
//! `Σ_i σ_i²/n_i` under `Σ n_i = B`, with `n_i ∝ σ_i`; but it starves prompts whose groups are all-fail
//! (`σ̂ ≈ 0`), which group-normalised advantages then never move, so it needs *more* reward calls to
//! reach a target. Successive elimination ([`Sequential`]) chases exactly those, but also chases solved
//! prompts (all-success groups), has no budget, and its stopping rule biases the estimate. `Adaptive`
//! keeps what each does well, in this order of priority within the budget `B`:
//!
//! 1. every prompt draws one chunk (the floor): a solved or hopeless prompt costs one chunk;
//! 2. a prompt whose group is non-degenerate draws on, a chunk per pass, up to its Neyman target
//!    `n_i = chunk + share_i`, `share ∝ σ̂_i` (pooled reward spread × gradient norm): precision where the
//!    variance is;
//! 3. what is left of `B` goes to prompts whose group is still degenerate *at a reward below the
//!    round's mean* (headroom: all-fail rather than all-success), a chunk per pass up to `cap`: the
//!    signal that GRPO needs to move them.
//!
//! The round ends when no prompt asks for more or the budget is spent: the Neyman share of a prompt
//! whose group is degenerate at the top (solved) is not spent. On the synthetic problem of
//! `tests/weight_allocation.rs` (8 prompts, success rates 0.001–0.999, `B = 64`) this lowers
//! `E‖Ĝ − ∇J‖²` by 21% against uniform groups of 8, and reaches `J ≥ 0.9` from rates 0.02–0.98 in 36%
//! fewer reward calls; the trainer's version of that measurement is `tests/finetune_allocation.rs`
//! (−24% and −24%; figures in `docs/tutorial_6_guidance.md`).

use super::allocation::{split, Allocation, Allocator, Neyman, Sequential};
use crate::error::{Error, Result};

/// Settings of the adaptive strategy (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adaptive {
    /// Most draws per round `B` across all prompts.
    pub budget: usize,
    /// Draws per prompt per pass (`≥ 2`); also every prompt's floor.
    pub chunk: usize,
    /// Most draws of one prompt in a round while its group is degenerate (`≥ chunk`).
    pub cap: usize,
    /// Forgetting `s ∈ (0, 1]` of the pooled spread behind the Neyman targets.
    pub smoothing: f64,
}

impl Adaptive {
    /// `budget` draws a round in chunks of 4, cap 16, forgetting 0.1.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            chunk: 4,
            cap: 16,
            smoothing: 0.1,
        }
    }

    /// Checks `chunk ≥ 2`, `cap ≥ chunk`, `smoothing ∈ (0, 1]`.
    pub fn check(&self) -> Result<()> {
        Sequential::new(self.chunk, self.cap).check()?;
        self.neyman().check()
    }

    fn neyman(&self) -> Neyman {
        Neyman {
            budget: self.budget,
            floor: self.chunk,
            smoothing: self.smoothing,
        }
    }
}

/// The state of an allocation strategy across rounds (see the module docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Planner {
    /// The strategy.
    pub allocation: Allocation,
    /// Draws per round of `Uniform` (the trainer's `groups × group_size`).
    pub uniform_budget: usize,
    /// Pooled per-prompt spread (Neyman and Adaptive; `None` otherwise).
    pub allocator: Option<Allocator>,
    prompts: usize,
}

impl Planner {
    /// A planner over `prompts` prompts. `Uniform` spreads `uniform_budget` draws; the other strategies
    /// carry their own budget. Fails unless the budget covers one floor (or chunk) per prompt.
    pub fn new(allocation: Allocation, prompts: usize, uniform_budget: usize) -> Result<Self> {
        crate::check::nonzero("prompts", prompts)?;
        let allocator = match allocation {
            Allocation::Uniform => {
                if uniform_budget < prompts {
                    return Err(Error::invalid(
                        "budget",
                        uniform_budget,
                        format!("must give each of the {prompts} prompts a draw"),
                    ));
                }
                None
            }
            Allocation::Sequential(s) => {
                s.check()?;
                None
            }
            Allocation::Neyman(n) => Some(Allocator::new(prompts, n)?),
            Allocation::Adaptive(a) => {
                a.check()?;
                Some(Allocator::new(prompts, a.neyman())?)
            }
        };
        Ok(Self {
            allocation,
            uniform_budget,
            allocator,
            prompts,
        })
    }

    /// Number of prompts `P`.
    pub fn prompts(&self) -> usize {
        self.prompts
    }

    /// The draws of the next pass per prompt, given the rewards `drawn[i]` of prompt `i` so far this
    /// round (all empty at the start), or `None` once the round is complete. Never returns a pass of
    /// zero draws.
    pub fn next_pass(&self, drawn: &[Vec<f64>]) -> Option<Vec<usize>> {
        let first = drawn.iter().all(Vec::is_empty);
        let degenerate = |g: &Vec<f64>| g.iter().all(|&r| r == g[0]);
        let counts = match (&self.allocation, &self.allocator) {
            (Allocation::Uniform, _) => {
                first.then(|| super::allocation::uniform(self.prompts, self.uniform_budget))?
            }
            (Allocation::Neyman(_), Some(a)) => first.then(|| a.allocate())?,
            (Allocation::Sequential(s), _) => drawn
                .iter()
                .map(|g| {
                    if g.is_empty() || (g.len() < s.cap && degenerate(g)) {
                        s.chunk.min(s.cap - g.len())
                    } else {
                        0
                    }
                })
                .collect(),
            (Allocation::Adaptive(a), Some(alloc)) => {
                if first {
                    vec![a.chunk; self.prompts]
                } else {
                    adaptive_pass(a, &alloc.allocate(), drawn)
                }
            }
            _ => unreachable!("Neyman and Adaptive planners hold an allocator"),
        };
        (counts.iter().sum::<usize>() > 0).then_some(counts)
    }

    /// Records a round's groups (rewards and per-draw gradient norms, `1.0`s to allocate on reward
    /// spread alone) for the Neyman targets of later rounds; a no-op for `Uniform` and `Sequential`.
    /// Groups of fewer than two draws carry no spread and are skipped.
    pub fn observe(&mut self, rewards: &[Vec<f64>], grad_norms: &[Vec<f64>]) -> Result<()> {
        if rewards.len() != self.prompts || grad_norms.len() != self.prompts {
            return Err(Error::ShapeMismatch {
                op: "Planner::observe (one group per prompt)",
                expected: vec![self.prompts],
                got: vec![rewards.len(), grad_norms.len()],
            });
        }
        if let Some(a) = &mut self.allocator {
            for (i, (r, g)) in rewards.iter().zip(grad_norms).enumerate() {
                if r.len() >= 2 {
                    a.observe(i, r, g)?;
                }
            }
        }
        Ok(())
    }

    /// Runs one round with `draw(counts)` drawing `counts[i]` samples for prompt `i` and returning
    /// their rewards per prompt; returns the rewards per prompt in draw order and the number of passes.
    pub fn round<F>(&self, mut draw: F) -> Result<(Vec<Vec<f64>>, usize)>
    where
        F: FnMut(&[usize]) -> Result<Vec<Vec<f64>>>,
    {
        let mut drawn = vec![Vec::new(); self.prompts];
        let mut passes = 0;
        while let Some(counts) = self.next_pass(&drawn) {
            let new = draw(&counts)?;
            if new.len() != self.prompts || new.iter().zip(&counts).any(|(r, &n)| r.len() != n) {
                return Err(Error::ShapeMismatch {
                    op: "Planner::round (rewards returned by draw)",
                    expected: counts,
                    got: new.iter().map(Vec::len).collect(),
                });
            }
            if let Some((i, r)) = new
                .iter()
                .flatten()
                .enumerate()
                .find(|(_, r)| !r.is_finite())
            {
                return Err(Error::NonFinite {
                    what: "reward (Planner::round; index = draw in the pass)",
                    index: i,
                    value: *r,
                });
            }
            for (g, r) in drawn.iter_mut().zip(new) {
                g.extend(r);
            }
            passes += 1;
        }
        Ok((drawn, passes))
    }
}

/// A later pass of [`Adaptive`]: first the Neyman targets of the non-degenerate groups, then, with what
/// is left of the budget, one more chunk for each degenerate group below the round's mean reward.
fn adaptive_pass(a: &Adaptive, target: &[usize], drawn: &[Vec<f64>]) -> Vec<usize> {
    let degenerate = |g: &Vec<f64>| g.iter().all(|&r| r == g[0]);
    let all = drawn.iter().flatten();
    let n_all = drawn.iter().map(Vec::len).sum::<usize>();
    let mean = all.sum::<f64>() / n_all.max(1) as f64;
    let precise: Vec<usize> = drawn
        .iter()
        .zip(target)
        .map(|(g, &t)| {
            if !degenerate(g) && g.len() < t {
                a.chunk.min(t - g.len())
            } else {
                0
            }
        })
        .collect();
    let chase: Vec<usize> = drawn
        .iter()
        .map(|g| {
            if degenerate(g) && g[0] < mean && g.len() < a.cap {
                a.chunk.min(a.cap - g.len())
            } else {
                0
            }
        })
        .collect();
    // What the non-degenerate groups still need to reach their targets is reserved for them.
    let reserved: usize = drawn
        .iter()
        .zip(target)
        .filter(|(g, _)| !degenerate(g))
        .map(|(g, &t)| t.saturating_sub(g.len()))
        .sum();
    let left = a.budget.saturating_sub(n_all);
    let precise = fit(precise, left);
    let chase = fit(
        chase,
        left.saturating_sub(reserved.max(precise.iter().sum())),
    );
    precise.iter().zip(&chase).map(|(p, c)| p + c).collect()
}

/// `want` scaled down (largest remainder, never above a request) to at most `left` draws in all.
fn fit(want: Vec<usize>, left: usize) -> Vec<usize> {
    if want.iter().sum::<usize>() <= left {
        return want;
    }
    let weights: Vec<f64> = want.iter().map(|&w| w as f64).collect();
    split(left, &weights)
        .into_iter()
        .zip(&want)
        .map(|(n, &w)| n.min(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prompt 0 always fails (all-fail: chased), 1 always succeeds (all-success: stops at the floor),
    /// 2 alternates (non-degenerate: drawn up to its Neyman target).
    fn outcome(prompt: usize, j: usize) -> f64 {
        match prompt {
            0 => 0.0,
            1 => 1.0,
            _ => (j % 2) as f64,
        }
    }

    fn run(planner: &Planner) -> (Vec<Vec<f64>>, usize) {
        planner
            .round(|counts| {
                Ok(counts
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| (0..n).map(|j| outcome(i, j)).collect())
                    .collect())
            })
            .unwrap()
    }

    #[test]
    fn uniform_and_neyman_draw_once() {
        let p = Planner::new(Allocation::Uniform, 3, 10).unwrap();
        let (drawn, passes) = run(&p);
        assert_eq!(
            drawn.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 3, 3]
        );
        assert_eq!(passes, 1);
        let p = Planner::new(Allocation::Neyman(Neyman::new(12)), 3, 0).unwrap();
        assert_eq!(run(&p).0.iter().map(Vec::len).sum::<usize>(), 12);
    }

    #[test]
    fn sequential_matches_successive_elimination() {
        let seq = Sequential::new(2, 6);
        let p = Planner::new(Allocation::Sequential(seq), 3, 0).unwrap();
        let (drawn, passes) = run(&p);
        // Prompts 0 and 1 are capped at 6; prompt 2 stops after its first chunk.
        assert_eq!(
            drawn.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![6, 6, 2]
        );
        assert_eq!(passes, 3);
    }

    #[test]
    fn adaptive_tops_up_targets_then_chases_all_fail_groups_within_the_budget() {
        let a = Adaptive {
            budget: 24,
            chunk: 2,
            cap: 8,
            smoothing: 1.0,
        };
        let mut p = Planner::new(Allocation::Adaptive(a), 3, 0).unwrap();
        // Before any observation every target is 24/3 = 8: prompt 2 draws 8, prompt 0 is chased up to
        // the 8 draws left, prompt 1 (degenerate above the mean) stops at its floor of 2.
        let (drawn, _) = run(&p);
        assert_eq!(
            drawn.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![8, 2, 8]
        );
        // Observed spreads: only prompt 2 varies, so its target is the budget less the two floors (20);
        // it takes all 20 first, and nothing is left to chase prompt 0 beyond its floor.
        let norms: Vec<Vec<f64>> = drawn.iter().map(|g| vec![1.0; g.len()]).collect();
        p.observe(&drawn, &norms).unwrap();
        assert_eq!(p.allocator.as_ref().unwrap().allocate(), vec![2, 2, 20]);
        let (drawn, _) = run(&p);
        assert_eq!(
            drawn.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 20]
        );
        // A budget that only covers the floors.
        let small = Adaptive { budget: 6, ..a };
        let p = Planner::new(Allocation::Adaptive(small), 3, 0).unwrap();
        assert_eq!(run(&p).0.iter().map(Vec::len).sum::<usize>(), 6);
    }

    #[test]
    fn bad_settings_and_draws_are_typed_errors() {
        assert!(Planner::new(Allocation::Uniform, 4, 3).is_err());
        assert!(Planner::new(Allocation::Adaptive(Adaptive::new(7)), 2, 0).is_err());
        let bad = Adaptive {
            cap: 2,
            ..Adaptive::new(64)
        };
        assert!(Planner::new(Allocation::Adaptive(bad), 2, 0).is_err());
        let p = Planner::new(Allocation::Uniform, 2, 4).unwrap();
        assert!(p.round(|_| Ok(vec![vec![0.0; 2], vec![0.0]])).is_err());
        assert!(matches!(
            p.round(|_| Ok(vec![vec![0.0, f64::NAN], vec![0.0; 2]])),
            Err(Error::NonFinite { index: 1, .. })
        ));
        let mut p = Planner::new(Allocation::Neyman(Neyman::new(8)), 2, 0).unwrap();
        assert!(p.observe(&[vec![0.0, 1.0]], &[vec![1.0; 2]]).is_err());
    }
}
