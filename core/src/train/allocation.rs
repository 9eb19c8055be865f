//! Adaptive allocation of a round's sample budget across prompts.
//!
//! The policy-gradient estimate over `P` prompts is `Ĝ = (1/P) Σ_i ĝ_i`, `ĝ_i` the mean of `n_i`
//! per-sample terms `A_ij ∇log π(x_ij | prompt_i)` of per-sample spread `σ_i`, so that
//! `E‖Ĝ − G‖² ≈ (1/P²) Σ_i σ_i²/n_i`. Two ways to spend the budget better than `n_i = B/P`:
//!
//! - **Neyman allocation** ([`Allocator`], GVM-RAFT-like): minimising `Σ σ_i²/n_i` under `Σ n_i = B`
//!   gives `n_i ∝ σ_i`. `σ̂_i` is estimated online from each draw's reward spread times its gradient norm,
//!   `σ̂_i² = (1/(n−1)) Σ_j (r_ij − r̄_i)²·‖∇log π(x_ij)‖²` (pooled across rounds), and every prompt keeps
//!   a floor of draws so that a prompt whose groups looked degenerate is still revisited. (The product of
//!   the two spreads taken separately, `sd(r)·mean‖∇‖`, underestimates `σ_i` badly where the rare
//!   outcome has the large gradient, e.g. the failures of an easy prompt.)
//! - **Sequential rounds** ([`Sequential`], Reinforce-Ada-like successive elimination): draw `chunk`
//!   samples for every active prompt; a prompt leaves once its group is non-degenerate (two distinct
//!   rewards: its advantages are not all zero) or holds `cap` draws.
//!
//! Neyman minimises the variance of one round's *unbiased* estimate at a given budget. It does not
//! chase signal: a prompt whose groups are all-fail has `σ̂ ≈ 0` and gets the floor. Sequential rounds
//! do the opposite: they spend more on exactly those prompts until one success shows up, which is what
//! group-normalised (GRPO) advantages need to move at all. `tests/weight_allocation.rs` measures both.
//! [`Adaptive`](super::Adaptive) combines them within a budget, and [`Planner`](super::Planner) runs any
//! of the strategies pass by pass, as the trainer does.
//!
//! **What holds under each baseline when the `n_i` differ.** The trainer weights prompt `i`'s draws by
//! `B/(P·n_i)`, so that every prompt has the same weight in the surrogate. In expectation, prompt `i`'s
//! term `(1/n_i) Σ_j A_ij ∇log π(x_ij)` is
//! - `∇J_i` under leave-one-out: the weighted estimate is unbiased for `(1/P) Σ_i ∇J_i` whatever the
//!   allocation, and the Neyman spread `(r − r̄)²‖∇‖²` above is the variance it minimises;
//! - `(1 − 1/n_i)·∇J_i` under the mean baseline (Dr. GRPO): a prompt with few draws counts less;
//! - under GRPO (the default), for pass/fail rewards with success probability `p_i`, `κ(n_i, p_i)·∇p_i`,
//!   a positive multiple (so still an ascent direction for every prompt) that tends to `∇p_i/σ_i`
//!   (`σ_i² = p_i(1 − p_i)`) as `n_i` grows but is far smaller at small `n_i`: `κ·σ` = 0.21 at `n = 2`,
//!   0.65 at 8 for `p = 0.1`. An adaptive allocation therefore also changes how much each prompt
//!   counts under GRPO (prompts given few draws count less), and the Neyman spread is then a proxy,
//!   not the variance of the standardised terms. `weight::advantage`'s test
//!   `per_prompt_expectation_by_baseline` checks all three by exact enumeration.

use crate::error::{Error, Result};

/// How a trainer spends its per-round budget across prompts (run by a [`Planner`](super::Planner)).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Allocation {
    /// `n_i = B/P` (the remainder to the first prompts); the default.
    #[default]
    Uniform,
    /// `n_i ∝ σ̂_i` with a floor ([`Allocator`]).
    Neyman(Neyman),
    /// Draw in chunks until non-degenerate or capped ([`Sequential`]).
    Sequential(Sequential),
    /// Neyman targets within a budget, degenerate groups drawn on up to a cap
    /// ([`Adaptive`](super::Adaptive)).
    Adaptive(super::Adaptive),
}

impl Allocation {
    /// Checks the strategy's settings.
    pub fn check(&self) -> Result<()> {
        match self {
            Allocation::Uniform => Ok(()),
            Allocation::Neyman(n) => n.check(),
            Allocation::Sequential(s) => s.check(),
            Allocation::Adaptive(a) => a.check(),
        }
    }
}

/// Settings of Neyman allocation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Neyman {
    /// Draws per round `B` across all prompts.
    pub budget: usize,
    /// Draws every prompt gets at least (`≥ 2`: a group needs two draws for a spread).
    pub floor: usize,
    /// Forgetting `s ∈ (0, 1]` of the pooled spread estimate (older rounds count `(1 − s)^age`).
    pub smoothing: f64,
}

impl Neyman {
    /// `budget` draws a round, floor 2, forgetting 0.1.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            floor: 2,
            smoothing: 0.1,
        }
    }

    /// Checks `floor ≥ 2`, `smoothing ∈ (0, 1]`.
    pub fn check(&self) -> Result<()> {
        if self.floor < 2 {
            return Err(Error::invalid(
                "floor",
                self.floor,
                "must be ≥ 2 (a group needs two draws for a spread)",
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(Error::invalid(
                "smoothing",
                self.smoothing,
                "must be in (0, 1]",
            ));
        }
        Ok(())
    }
}

/// Online Neyman allocation over a fixed set of prompts (see the module docs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Allocator {
    /// Settings.
    pub config: Neyman,
    /// Discounted sum of `(r_ij − r̄_i)²·‖∇_ij‖²` per prompt.
    pub spread: Vec<f64>,
    /// Discounted degrees of freedom `Σ (n − 1)` per prompt (`0`: not observed yet).
    pub dof: Vec<f64>,
}

impl Allocator {
    /// An allocator for `prompts` prompts; fails unless `budget ≥ floor · prompts`.
    pub fn new(prompts: usize, config: Neyman) -> Result<Self> {
        crate::check::nonzero("prompts", prompts)?;
        config.check()?;
        if config.budget < config.floor * prompts {
            return Err(Error::invalid(
                "budget",
                config.budget,
                format!(
                    "must cover the floor: ≥ {} · {prompts} prompts",
                    config.floor
                ),
            ));
        }
        Ok(Self {
            config,
            spread: vec![0.0; prompts],
            dof: vec![0.0; prompts],
        })
    }

    /// `σ̂_i = sqrt(spread_i / dof_i)` (`None` before the first observation).
    pub fn sigma(&self, prompt: usize) -> Option<f64> {
        let dof = *self.dof.get(prompt)?;
        (dof > 0.0).then(|| (self.spread[prompt] / dof).sqrt())
    }

    /// This round's draws per prompt: `n_i = floor + share_i` with `share_i ∝ σ̂_i` of the
    /// `B − P·floor` left over, rounded by largest remainder so that `Σ n_i = B` exactly. A prompt not yet
    /// observed counts with the mean `σ̂` of the others (all unobserved, or all `σ̂ = 0`: uniform).
    pub fn allocate(&self) -> Vec<usize> {
        let sigmas: Vec<Option<f64>> = (0..self.dof.len()).map(|i| self.sigma(i)).collect();
        let known: Vec<f64> = sigmas.iter().flatten().copied().collect();
        let fill = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        let mut sigma: Vec<f64> = sigmas.iter().map(|s| s.unwrap_or(fill)).collect();
        if sigma.iter().sum::<f64>() <= 0.0 {
            sigma = vec![1.0; sigma.len()];
        }
        let p = sigma.len();
        let floor = self.config.floor;
        split(self.config.budget - floor * p, &sigma)
            .into_iter()
            .map(|n| n + floor)
            .collect()
    }

    /// Records prompt `prompt`'s group: rewards `r_ij` and per-sample gradient norms
    /// `‖∇log π(x_ij)‖` (pass `1.0`s to allocate on reward spread alone). Pools the variance over rounds
    /// with forgetting `s`: `spread_i ← (1 − s)·spread_i + Σ_j (r_ij − r̄_i)²·‖∇_ij‖²`,
    /// `dof_i ← (1 − s)·dof_i + (n − 1)`, `σ̂_i² = spread_i/dof_i`. (Pooling the squares, weighted by their
    /// degrees of freedom, keeps `σ̂²` unbiased even when most small groups are degenerate; averaging
    /// per-round `σ̂` would drive a floor-sized prompt's estimate to 0 and starve it.)
    pub fn observe(&mut self, prompt: usize, rewards: &[f64], grad_norms: &[f64]) -> Result<()> {
        if prompt >= self.dof.len() {
            return Err(Error::invalid(
                "prompt",
                prompt,
                format!("must be < {} prompts", self.dof.len()),
            ));
        }
        if rewards.len() < 2 || grad_norms.len() != rewards.len() {
            return Err(Error::ShapeMismatch {
                op: "Allocator::observe (≥ 2 rewards, one gradient norm each)",
                expected: vec![rewards.len().max(2)],
                got: vec![grad_norms.len()],
            });
        }
        for (what, v) in [("reward", rewards), ("gradient norm", grad_norms)] {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(Error::NonFinite {
                    what: if what == "reward" {
                        "reward (Allocator::observe)"
                    } else {
                        "gradient norm (Allocator::observe)"
                    },
                    index: i,
                    value: v[i],
                });
            }
        }
        let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
        let spread: f64 = rewards
            .iter()
            .zip(grad_norms)
            .map(|(r, g)| (r - mean).powi(2) * g * g)
            .sum();
        let keep = 1.0 - self.config.smoothing;
        self.spread[prompt] = keep * self.spread[prompt] + spread;
        self.dof[prompt] = keep * self.dof[prompt] + (rewards.len() - 1) as f64;
        Ok(())
    }
}

/// `n_i = B/P` with the remainder to the first prompts.
pub fn uniform(prompts: usize, budget: usize) -> Vec<usize> {
    split(budget, &vec![1.0; prompts])
}

/// Splits `total` into integers proportional to `weights` (non-negative, positive sum) by largest
/// remainder.
pub(crate) fn split(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let raw: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<usize> = raw.iter().map(|r| r.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (raw[b] - raw[b].floor()).total_cmp(&(raw[a] - raw[a].floor())));
    let left = total.saturating_sub(out.iter().sum());
    for &i in order.iter().cycle().take(left) {
        out[i] += 1;
    }
    out
}

/// Fraction of groups whose rewards are all equal (zero advantages; TRL's `frac_reward_zero_std`).
pub fn zero_std_fraction(groups: &[Vec<f64>]) -> f64 {
    if groups.is_empty() {
        return 0.0;
    }
    let zero = groups
        .iter()
        .filter(|g| g.iter().all(|&r| r == g[0]))
        .count();
    zero as f64 / groups.len() as f64
}

/// Sequential rounds with successive elimination (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sequential {
    /// Draws per active prompt per round (`≥ 2` for the first round to be able to show a spread).
    pub chunk: usize,
    /// Most draws one prompt gets in a round (`≥ chunk`).
    pub cap: usize,
}

/// What [`Sequential::run`] drew.
#[derive(Debug, Clone, PartialEq)]
pub struct SequentialOutcome {
    /// Rewards per prompt, in draw order.
    pub rewards: Vec<Vec<f64>>,
    /// Total reward evaluations.
    pub reward_calls: usize,
    /// Number of chunk rounds run.
    pub rounds: usize,
    /// Fraction of prompts left with a degenerate group (capped without two distinct rewards).
    pub zero_std_fraction: f64,
}

impl Sequential {
    /// Chunks of `chunk` draws, at most `cap` per prompt.
    pub fn new(chunk: usize, cap: usize) -> Self {
        Self { chunk, cap }
    }

    /// Checks `chunk ≥ 2`, `cap ≥ chunk`.
    pub fn check(&self) -> Result<()> {
        if self.chunk < 2 {
            return Err(Error::invalid("chunk", self.chunk, "must be ≥ 2"));
        }
        if self.cap < self.chunk {
            return Err(Error::invalid(
                "cap",
                self.cap,
                format!("must be ≥ chunk = {}", self.chunk),
            ));
        }
        Ok(())
    }

    /// Runs the rounds over `prompts` prompts. `draw(prompt, count)` draws `count` new samples for
    /// `prompt` and returns their rewards (keep the samples in the closure's state): it is called for
    /// every active prompt each round with `count = min(chunk, cap − drawn)`. A prompt stops once its
    /// rewards hold two distinct values or it reaches `cap` draws.
    pub fn run<F>(&self, prompts: usize, mut draw: F) -> Result<SequentialOutcome>
    where
        F: FnMut(usize, usize) -> Result<Vec<f64>>,
    {
        self.check()?;
        crate::check::nonzero("prompts", prompts)?;
        let mut rewards: Vec<Vec<f64>> = vec![Vec::new(); prompts];
        let mut active: Vec<usize> = (0..prompts).collect();
        let (mut calls, mut rounds) = (0, 0);
        while !active.is_empty() {
            rounds += 1;
            for &i in &active {
                let count = self.chunk.min(self.cap - rewards[i].len());
                let new = draw(i, count)?;
                if new.len() != count {
                    return Err(Error::ShapeMismatch {
                        op: "Sequential::run (rewards returned by draw)",
                        expected: vec![count],
                        got: vec![new.len()],
                    });
                }
                if let Some(j) = new.iter().position(|r| !r.is_finite()) {
                    return Err(Error::NonFinite {
                        what: "reward (Sequential::run; index = draw in the chunk)",
                        index: j,
                        value: new[j],
                    });
                }
                calls += count;
                rewards[i].extend(new);
            }
            active.retain(|&i| {
                let g = &rewards[i];
                g.len() < self.cap && g.iter().all(|&r| r == g[0])
            });
        }
        Ok(SequentialOutcome {
            zero_std_fraction: zero_std_fraction(&rewards),
            rewards,
            reward_calls: calls,
            rounds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neyman_splits_the_budget_in_proportion_with_a_floor() {
        let mut a = Allocator::new(4, Neyman::new(40)).unwrap();
        assert_eq!(a.allocate(), vec![10; 4]);
        for (i, s) in [0.0, 1.0, 2.0, 3.0].iter().enumerate() {
            // sd of [0, 2s] is √2·s; gradient norms 1/√2 make σ̂ = s.
            let h = std::f64::consts::FRAC_1_SQRT_2;
            a.observe(i, &[0.0, 2.0 * s], &[h, h]).unwrap();
        }
        let n = a.allocate();
        assert_eq!(n.iter().sum::<usize>(), 40);
        // 32 left over the floors, split 0 : 1 : 2 : 3 of 6.
        assert_eq!(n, vec![2, 2 + 5, 2 + 11, 2 + 16]);
    }

    #[test]
    fn sequential_stops_at_signal_or_cap() {
        let seq = Sequential::new(2, 6);
        // Prompt 0 always 1 (capped), prompt 1 alternates (stops after the first chunk).
        let out = seq
            .run(2, |i, n| {
                Ok(if i == 0 {
                    vec![1.0; n]
                } else {
                    (0..n).map(|j| j as f64).collect()
                })
            })
            .unwrap();
        assert_eq!(out.rewards[0].len(), 6);
        assert_eq!(out.rewards[1].len(), 2);
        assert_eq!(out.reward_calls, 8);
        assert_eq!(out.rounds, 3);
        assert_eq!(out.zero_std_fraction, 0.5);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Allocator::new(4, Neyman::new(7)).is_err());
        assert!(Allocator::new(
            2,
            Neyman {
                floor: 1,
                ..Neyman::new(8)
            }
        )
        .is_err());
        assert!(Sequential::new(1, 4).check().is_err());
        assert!(Sequential::new(4, 2).check().is_err());
        let mut a = Allocator::new(2, Neyman::new(8)).unwrap();
        assert!(a.observe(2, &[0.0, 1.0], &[1.0, 1.0]).is_err());
        assert!(a.observe(0, &[0.0, f64::NAN], &[1.0, 1.0]).is_err());
        assert_eq!(uniform(3, 10), vec![4, 3, 3]);
    }
}
