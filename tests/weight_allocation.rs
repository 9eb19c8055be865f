//! Adaptive sample allocation on a synthetic multi-prompt problem (issue "Importance weighting, SMC and
//! inference-time guidance", must-show 4).
//!
//! **Problem.** 8 prompts, each a softmax policy `π_i = softmax(θ_i)` over 8 answers of which answer 0
//! is right (`r = 1`, else 0). Difficulty: the initial success rates are
//! `0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98`. The objective is `J = (1/8) Σ_i π_i(0)`, with exact
//! gradient `∇_{θ_i} J = (1/8)·π_i(0)·(e_0 − π_i)`; one sample's term is `A·(e_a − π_i)`.
//!
//! Every number is a mean over independent replicates ± its standard error.

use rand::{Rng, SeedableRng};
use sepo::train::allocation::{uniform, zero_std_fraction};
use sepo::train::{Adaptive, Allocation, Allocator, Neyman, Planner, Sequential};
use sepo::weight::{advantages, Baseline};

const ANSWERS: usize = 8;
const START: [f64; 8] = [0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98];
/// A population further apart (mostly solved or hopeless prompts) for the variance test.
const SPREAD: [f64; 8] = [0.001, 0.005, 0.02, 0.5, 0.5, 0.98, 0.995, 0.999];

/// Logits with `π(0) = p`: `θ = (ln(p (C − 1)/(1 − p)), 0, …)`.
fn initial(start: &[f64]) -> Vec<Vec<f64>> {
    start
        .iter()
        .map(|&p| {
            let mut t = vec![0.0; ANSWERS];
            t[0] = (p * (ANSWERS - 1) as f64 / (1.0 - p)).ln();
            t
        })
        .collect()
}

fn softmax(t: &[f64]) -> Vec<f64> {
    let m = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = t.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// `n` answers and their rewards.
fn draw<R: Rng>(pi: &[f64], n: usize, rng: &mut R) -> (Vec<usize>, Vec<f64>) {
    let a: Vec<usize> = (0..n)
        .map(|_| sepo::sample::categorical::draw(pi, rng))
        .collect();
    let r = a.iter().map(|&x| f64::from(u8::from(x == 0))).collect();
    (a, r)
}

/// One round of `planner` over the 8 prompts with policies `pis`: each prompt's answers and rewards.
fn planner_round<R: Rng>(
    planner: &Planner,
    pis: &[Vec<f64>],
    rng: &mut R,
) -> (Vec<Vec<usize>>, Vec<Vec<f64>>) {
    let mut answers = vec![Vec::new(); pis.len()];
    let (rewards, _) = planner
        .round(|counts| {
            Ok(pis
                .iter()
                .zip(&mut answers)
                .zip(counts)
                .map(|((pi, answers), &n)| {
                    let (a, r) = draw(pi, n, rng);
                    answers.extend(a);
                    r
                })
                .collect())
        })
        .unwrap();
    (answers, rewards)
}

/// `ĝ_i = (1/n) Σ_j A_j (e_{a_j} − π)` and the per-sample norms `‖e_a − π‖`.
fn group_gradient(
    pi: &[f64],
    answers: &[usize],
    rewards: &[f64],
    baseline: Baseline,
) -> (Vec<f64>, Vec<f64>) {
    let adv = advantages(rewards, rewards.len(), baseline).unwrap();
    let n = answers.len() as f64;
    let mut g = vec![0.0; ANSWERS];
    let mut norms = Vec::new();
    for (&a, &adv) in answers.iter().zip(&adv) {
        let mut sq = 0.0;
        for (c, gc) in g.iter_mut().enumerate() {
            let d = f64::from(u8::from(c == a)) - pi[c];
            *gc += adv * d / n;
            sq += d * d;
        }
        norms.push(sq.sqrt());
    }
    (g, norms)
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// Gradient variance at a policy whose prompts are mostly solved or hopeless (initial success rates
/// `SPREAD`), budget 64 draws a round: `E‖Ĝ − ∇J‖²` with the unbiased leave-one-out baseline, for
/// `n_i = 8` against online Neyman allocation (pooled `σ̂_i` from reward spread × gradient norm, floor 2).
/// 3,000 rounds each, the first 20 of Neyman's (its warm-up) not counted. Measured:
/// uniform 7.13e-4 ± 0.06e-4, Neyman 4.92e-4 ± 0.19e-4 (−31%), final allocation
/// `[2, 2, 8, 18, 18, 8, 6, 2]`; zero-std fraction 0.701 vs 0.706. (On `START`, whose prompts are less
/// far apart, the gain is 7%: 1.55e-3 vs 1.44e-3.)
#[test]
fn neyman_allocation_has_lower_gradient_variance_than_uniform() {
    let theta = initial(&SPREAD);
    let pis: Vec<Vec<f64>> = theta.iter().map(|t| softmax(t)).collect();
    let p = pis.len() as f64;
    let exact: Vec<Vec<f64>> = pis
        .iter()
        .map(|pi| {
            (0..ANSWERS)
                .map(|c| pi[0] * (f64::from(u8::from(c == 0)) - pi[c]) / p)
                .collect()
        })
        .collect();
    let budget = 64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut allocator = Allocator::new(8, Neyman::new(budget)).unwrap();
    let mut errors = [Vec::new(), Vec::new()];
    let mut zero = [Vec::new(), Vec::new()];
    for round in 0..3_020 {
        for (s, counts) in [uniform(8, budget), allocator.allocate()]
            .into_iter()
            .enumerate()
        {
            let mut err = 0.0;
            let mut groups = Vec::new();
            for (i, &n) in counts.iter().enumerate() {
                let (a, r) = draw(&pis[i], n, &mut rng);
                let (g, norms) = group_gradient(&pis[i], &a, &r, Baseline::LeaveOneOut);
                err += g
                    .iter()
                    .zip(&exact[i])
                    .map(|(x, e)| (x / p - e).powi(2))
                    .sum::<f64>();
                if s == 1 {
                    allocator.observe(i, &r, &norms).unwrap();
                }
                groups.push(r);
            }
            if round >= 20 {
                errors[s].push(err);
                zero[s].push(zero_std_fraction(&groups));
            }
        }
    }
    let (u, n) = (mean_se(&errors[0]), mean_se(&errors[1]));
    eprintln!(
        "E‖Ĝ − ∇J‖², budget {budget}: uniform {:.3e} ± {:.1e}, Neyman {:.3e} ± {:.1e} (final allocation {:?}); \
         zero-std fraction {:.3} vs {:.3}",
        u.0,
        u.1,
        n.0,
        n.1,
        allocator.allocate(),
        mean_se(&zero[0]).0,
        mean_se(&zero[1]).0
    );
    assert!(
        u.0 - n.0 > 4.0 * (u.1 * u.1 + n.1 * n.1).sqrt(),
        "uniform {u:?} vs Neyman {n:?}"
    );
}

/// Reward calls until `J ≥ 0.9` from `START`, training every prompt with GRPO advantages (sepo's
/// default baseline) and plain gradient ascent `θ_i += 0.5·ĝ_i`: uniform groups of 8 (64 calls a round)
/// against sequential rounds (chunks of 4 per active prompt until the group is non-degenerate, cap 16).
/// 150 runs each. Measured: uniform 3002 ± 55 calls (46.9 rounds), sequential 2692 ± 44 (31.2 rounds),
/// −10% calls at 4.4 standard errors; zero-std fraction per round 0.598 vs 0.390. (Neyman allocation
/// needs *more* calls here, 4186 ± 115: it minimises one round's variance, and gives the all-fail prompts
/// only their floor, while GRPO moves a prompt only when its group is non-degenerate.)
#[test]
fn sequential_allocation_reaches_the_target_reward_in_fewer_calls() {
    #[derive(Clone, Copy, Debug)]
    enum Strategy {
        Uniform,
        Sequential,
        Neyman,
    }
    let run = |strategy: Strategy, seed: u64| -> (f64, f64, f64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut theta = initial(&START);
        let mut allocator = Allocator::new(8, Neyman::new(64)).unwrap();
        let (mut calls, mut rounds, mut zero) = (0usize, 0usize, 0.0);
        loop {
            let pis: Vec<Vec<f64>> = theta.iter().map(|t| softmax(t)).collect();
            if pis.iter().map(|pi| pi[0]).sum::<f64>() / 8.0 >= 0.9 || rounds == 400 {
                return (calls as f64, rounds as f64, zero / rounds.max(1) as f64);
            }
            let groups: Vec<(Vec<usize>, Vec<f64>)> = match strategy {
                Strategy::Uniform => (0..8).map(|i| draw(&pis[i], 8, &mut rng)).collect(),
                Strategy::Neyman => {
                    let counts = allocator.allocate();
                    (0..8).map(|i| draw(&pis[i], counts[i], &mut rng)).collect()
                }
                Strategy::Sequential => {
                    let mut answers = vec![Vec::new(); 8];
                    let out = Sequential::new(4, 16)
                        .run(8, |i, n| {
                            let (a, r) = draw(&pis[i], n, &mut rng);
                            answers[i].extend(a);
                            Ok(r)
                        })
                        .unwrap();
                    answers.into_iter().zip(out.rewards).collect()
                }
            };
            let rewards: Vec<Vec<f64>> = groups.iter().map(|g| g.1.clone()).collect();
            zero += zero_std_fraction(&rewards);
            for (i, (a, r)) in groups.iter().enumerate() {
                calls += r.len();
                let (g, norms) = group_gradient(&pis[i], a, r, Baseline::GRPO);
                allocator.observe(i, r, &norms).unwrap();
                for (t, gc) in theta[i].iter_mut().zip(&g) {
                    *t += 0.5 * gc;
                }
            }
            rounds += 1;
        }
    };
    let mut summary = Vec::new();
    for strategy in [Strategy::Uniform, Strategy::Sequential, Strategy::Neyman] {
        let runs: Vec<(f64, f64, f64)> = (0..150).map(|s| run(strategy, 1_000 + s)).collect();
        let calls: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let rounds: Vec<f64> = runs.iter().map(|r| r.1).collect();
        let zero: Vec<f64> = runs.iter().map(|r| r.2).collect();
        let (c, r, z) = (mean_se(&calls), mean_se(&rounds), mean_se(&zero));
        eprintln!(
            "{strategy:?}: {:.0} ± {:.0} reward calls to J ≥ 0.9 ({:.1} rounds), zero-std fraction {:.3}",
            c.0, c.1, r.0, z.0
        );
        summary.push(c);
    }
    let (u, s) = (summary[0], summary[1]);
    assert!(
        u.0 - s.0 > 3.0 * (u.1 * u.1 + s.1 * s.1).sqrt(),
        "uniform {u:?} vs sequential {s:?}"
    );
}

/// The [`Planner`]'s `Adaptive` strategy (budget 64, chunks of 4, cap 16) on both measurements above:
/// (a) `E‖Ĝ − ∇J‖²` on `SPREAD` with the leave-one-out baseline, 3,000 rounds after 20 of warm-up,
/// and (b) reward calls to `J ≥ 0.9` from `START` with GRPO and `θ_i += 0.5·ĝ_i`, 150 runs. Measured:
/// (a) 5.60e-4 ± 0.09e-4 against uniform's 7.06e-4 ± 0.06e-4 (−21%), never above 64 calls a round;
/// (b) 1923 ± 22 calls (36.3 rounds) against uniform's 3002 ± 55 (−36%). Each asserted at more than
/// 4 standard errors of the difference (measured: 13 and 18). The trainer's version is
/// `tests/finetune_allocation.rs`.
#[test]
fn adaptive_allocation_lowers_the_variance_and_the_calls() {
    let run_variance = |allocation: Allocation| {
        let pis: Vec<Vec<f64>> = initial(&SPREAD).iter().map(|t| softmax(t)).collect();
        let exact: Vec<Vec<f64>> = pis
            .iter()
            .map(|pi| {
                (0..ANSWERS)
                    .map(|c| pi[0] * (f64::from(u8::from(c == 0)) - pi[c]) / 8.0)
                    .collect()
            })
            .collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut planner = Planner::new(allocation, 8, 64).unwrap();
        let mut errors = Vec::new();
        for round in 0..3_020 {
            let (answers, rewards) = planner_round(&planner, &pis, &mut rng);
            assert!(rewards.iter().map(Vec::len).sum::<usize>() <= 64);
            let (mut err, mut norms) = (0.0, Vec::new());
            for i in 0..8 {
                let (g, n) =
                    group_gradient(&pis[i], &answers[i], &rewards[i], Baseline::LeaveOneOut);
                err += g
                    .iter()
                    .zip(&exact[i])
                    .map(|(x, e)| (x / 8.0 - e).powi(2))
                    .sum::<f64>();
                norms.push(n);
            }
            planner.observe(&rewards, &norms).unwrap();
            if round >= 20 {
                errors.push(err);
            }
        }
        mean_se(&errors)
    };
    let run_calls = |allocation: Allocation| {
        let calls: Vec<f64> = (0..150)
            .map(|seed| {
                let mut rng = rand::rngs::StdRng::seed_from_u64(1_000 + seed);
                let mut theta = initial(&START);
                let mut planner = Planner::new(allocation, 8, 64).unwrap();
                let mut calls = 0;
                for _ in 0..400 {
                    let pis: Vec<Vec<f64>> = theta.iter().map(|t| softmax(t)).collect();
                    if pis.iter().map(|pi| pi[0]).sum::<f64>() / 8.0 >= 0.9 {
                        break;
                    }
                    let (answers, rewards) = planner_round(&planner, &pis, &mut rng);
                    let mut norms = Vec::new();
                    for i in 0..8 {
                        calls += rewards[i].len();
                        let (g, n) =
                            group_gradient(&pis[i], &answers[i], &rewards[i], Baseline::GRPO);
                        for (t, gc) in theta[i].iter_mut().zip(&g) {
                            *t += 0.5 * gc;
                        }
                        norms.push(n);
                    }
                    planner.observe(&rewards, &norms).unwrap();
                }
                calls as f64
            })
            .collect();
        mean_se(&calls)
    };
    let adaptive = Allocation::Adaptive(Adaptive::new(64));
    let (u, a) = (run_variance(Allocation::Uniform), run_variance(adaptive));
    let (uc, ac) = (run_calls(Allocation::Uniform), run_calls(adaptive));
    eprintln!("E‖Ĝ − ∇J‖²: uniform {u:?}, adaptive {a:?}; calls to J ≥ 0.9: uniform {uc:?}, adaptive {ac:?}");
    assert!(
        u.0 - a.0 > 4.0 * (u.1 * u.1 + a.1 * a.1).sqrt(),
        "{u:?} vs {a:?}"
    );
    assert!(
        uc.0 - ac.0 > 4.0 * (uc.1 * uc.1 + ac.1 * ac.1).sqrt(),
        "{uc:?} vs {ac:?}"
    );
}
