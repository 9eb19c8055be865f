//! The factorised draw (`factorised.rs`) against the full-row draw: its per-position law by exact
//! enumeration over the uniform it spends, its seed stream, and its host traffic; the stay
//! probabilities against the closed forms of docs/sampling.md.

use super::*;
use crate::graph::Absorbing;
use crate::sample::factorised::{inverse_cdf, move_probability, row_sums};
use crate::schedule::LogLinear;
use crate::score::{Mlp, MlpConfig, ScoreHead};
use crate::Diffusion;
use crate::Policy;

const L: usize = 6;
const MASK: usize = 4;

fn config() -> MlpConfig {
    MlpConfig {
        hidden: 32,
        ..MlpConfig::tiny(5, L, ScoreHead::Absorbing)
    }
}

fn mlp64() -> Mlp<f64, Cpu> {
    Mlp::new(config(), &Cpu::default(), 3).unwrap()
}

fn mlp32() -> Mlp<f32, Cpu> {
    Mlp::new(config(), &Cpu::default(), 3).unwrap()
}

/// Two sequences, partly masked; position 1 of the first and 5 of the second held fixed.
fn step(kind: StepKind, t: f64, t_next: f64) -> Step {
    let s = LogLinear::default();
    let sigma_next = if kind == StepKind::Denoise {
        0.0
    } else {
        s.total(t_next)
    };
    let before = vec![MASK, 0, MASK, 3, MASK, MASK, 1, MASK, MASK, 2, MASK, 0];
    let mut fixed = vec![false; 2 * L];
    fixed[1] = true;
    fixed[L + 5] = true;
    Step {
        kind,
        batch: 2,
        seq_len: L,
        t: vec![t; 2],
        t_next: vec![
            if kind == StepKind::Denoise {
                0.0
            } else {
                t_next
            };
            2
        ],
        sigma_bar: vec![s.total(t); 2],
        sigma_bar_next: vec![sigma_next; 2],
        rate: vec![s.rate(t); 2],
        after: before.clone(),
        before,
        fixed,
        position: if kind == StepKind::FirstHitting {
            vec![Some(2), Some(7 - L)]
        } else {
            Vec::new()
        },
        log_prob: vec![0.0; 2],
    }
}

/// The law of the factorised draw at a position in state `x` with row `row` summing to `total` on the
/// device, found exactly: the draw maps its uniform `u ∈ [0, 1)` to a state by a non-decreasing step
/// function (the mask is the last state), so the mass of state `k` is the length of
/// `{u : outcome(u) = k}`, whose ends are located by bisection to 2⁻⁶⁰.
fn enumerated_law(row: &[f64], x: usize, total: f64) -> Vec<f64> {
    let n = row.len();
    let stay = row[x];
    let outcome = |u: f64| {
        if stay == 1.0 || u >= move_probability(stay, total) {
            x
        } else {
            inverse_cdf(row, u)
        }
    };
    let grid: Vec<usize> = (0..4096).map(|i| outcome(i as f64 / 4096.0)).collect();
    assert!(grid.windows(2).all(|w| w[0] <= w[1]), "not monotone");
    let below_one = 1.0 - f64::EPSILON / 2.0;
    let mut ends = vec![0.0; n + 1];
    ends[n] = 1.0;
    for (k, end) in ends.iter_mut().enumerate().take(n).skip(1) {
        *end = if outcome(0.0) >= k {
            0.0
        } else if outcome(below_one) < k {
            1.0
        } else {
            let (mut lo, mut hi) = (0.0f64, below_one);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if outcome(mid) >= k {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        };
    }
    (0..n).map(|k| ends[k + 1] - ends[k]).collect()
}

/// `P(unmask)` of a masked free position under the normalised absorbing head (docs/sampling.md):
/// θ-free, from the schedule alone.
fn closed_form_unmask(st: &Step, b: usize, position: usize) -> f64 {
    let (s, s_next) = (st.sigma_bar[b], st.sigma_bar_next[b]);
    match st.kind {
        StepKind::Tweedie => ((s - s_next).exp_m1() / s.exp_m1()).min(1.0),
        StepKind::Euler => ((st.t[b] - st.t_next[b]) * st.rate[b] / s.exp_m1()).min(1.0),
        StepKind::Denoise => 1.0,
        StepKind::FirstHitting => f64::from(u8::from(st.position[b] == Some(position))),
    }
}

/// Exact enumeration, f64 model: at every position of every step rule the factorised draw's law equals
/// the full row `P(x → ·)` to 1e-12; clean and fixed positions stay with probability exactly 1 (no
/// randomness spent); and a masked position's stay probability is the closed form, whatever θ.
#[test]
fn the_factorised_law_is_the_full_row_law() {
    let model = mlp64();
    let graph = Absorbing::with_tokens(4).unwrap();
    let cases = [
        (StepKind::Tweedie, 0.6, 0.55),
        (StepKind::Tweedie, 0.95, 0.05),
        (StepKind::Euler, 0.6, 0.55),
        (StepKind::Euler, 0.95, 0.05),
        (StepKind::Denoise, 1e-3, 0.0),
        (StepKind::FirstHitting, 0.6, 0.4),
    ];
    for (kind, t, t_next) in cases {
        let st = step(kind, t, t_next);
        let probs = step_probs(&model, model.params(), &graph, &st, NoneTape).unwrap();
        let (host, totals) = (probs.as_vec(), row_sums(&probs).as_vec());
        for (i, (&x, row)) in st.before.iter().zip(host.chunks_exact(5)).enumerate() {
            let law = enumerated_law(row, x, totals[i]);
            for (k, (&got, &want)) in law.iter().zip(row).enumerate() {
                assert!(
                    (got - want).abs() < 1e-12,
                    "{kind:?} position {i} state {k}: factorised {got}, full row {want}"
                );
            }
            if x != MASK || st.fixed[i] {
                assert_eq!(row[x], 1.0, "{kind:?} position {i}");
                continue;
            }
            let unmask = closed_form_unmask(&st, i / L, i % L);
            assert!(
                (1.0 - row[MASK] - unmask).abs() < 1e-12,
                "{kind:?} position {i}: P(unmask) {} vs closed form {unmask}",
                1.0 - row[MASK]
            );
        }
    }
}

/// Draws `(32, L)` sequences step by step with `take` or `take_full_rows` from one seed; returns every
/// step's `after` and log-probability bits.
fn walk<M: ScoreModel>(
    model: &M,
    kind: SamplerKind,
    factorised: bool,
) -> Vec<(Vec<usize>, Vec<u64>)> {
    let diffusion = Diffusion::new(Absorbing::with_tokens(4).unwrap(), LogLinear::default());
    let policy = Policy::current(model);
    let cond = Condition::prefix(&[2], L);
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let fixed = kind
        .check_entry(model, &diffusion, (32, L), Some(&cond))
        .unwrap();
    let mut particles = kind.start(&diffusion, &fixed, L, &mut rng);
    let mut out = Vec::new();
    for k in 0..kind.num_steps(&fixed, L) {
        let mut st = kind.propose(k, &mut particles, &diffusion, &mut rng);
        if factorised {
            take(&policy, &diffusion.graph, &mut st, k, &mut rng).unwrap();
        } else {
            take_full_rows(&policy, &diffusion.graph, &mut st, k, &mut rng).unwrap();
        }
        out.push((
            st.after.clone(),
            st.log_prob.iter().map(|x| x.to_bits()).collect(),
        ));
        particles.advance(&st, st.after.clone());
    }
    out
}

/// The seed stream: the factorised draw spends one uniform per position that can move, in the order of
/// the full-row draw, and maps it to the same state (but for a set of uniforms of measure about the
/// rounding error of a row sum, which these 6,000 draws never meet): same seed, the same paths bit
/// for bit, on both chains and in f64 and f32.
#[test]
fn the_factorised_draw_follows_the_full_row_seed_stream() {
    let grid = |predictor| SamplerConfig {
        steps: 24,
        predictor,
        ..SamplerConfig::default()
    };
    let kinds = [
        SamplerKind::Grid(grid(Predictor::Tweedie)),
        SamplerKind::Grid(grid(Predictor::Euler)),
        SamplerKind::FirstHitting(SamplerConfig::default()),
    ];
    for kind in kinds {
        let (m64, m32) = (mlp64(), mlp32());
        let full = walk(&m64, kind, false);
        assert_eq!(walk(&m64, kind, true), full, "{kind:?} f64");
        assert_eq!(
            walk(&m32, kind, true),
            walk(&m32, kind, false),
            "{kind:?} f32"
        );
        let last = &full.last().unwrap().0;
        assert!(last.iter().all(|&x| x != MASK), "{kind:?}: unfinished");
    }
}

/// Host traffic of one Tweedie step: the full-row draw copies the `B·L·N` table and the `B`
/// log-probabilities; the factorised draw the `B·L` stay probabilities and row sums, the rows of the
/// `k` positions that moved, and the `B` log-probabilities (8 bytes each in f64).
#[test]
fn the_factorised_draw_copies_stay_probabilities_and_moved_rows_only() {
    let model = mlp64();
    let graph = Absorbing::with_tokens(4).unwrap();
    let policy = Policy::current(&model);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (b, n) = (2, 5);
    let mut st = step(StepKind::Tweedie, 0.9, 0.5);
    let start = traffic::read();
    take_full_rows(&policy, &graph, &mut st, 0, &mut rng).unwrap();
    let full = traffic::read() - start;
    assert_eq!(full.to_host, 8 * (b * L * n + b) as u64);
    let mut moved_total = 0;
    for seed in 0..8 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut st = step(StepKind::Tweedie, 0.9, 0.5);
        let start = traffic::read();
        take(&policy, &graph, &mut st, 0, &mut rng).unwrap();
        let used = traffic::read() - start;
        let moved = st
            .before
            .iter()
            .zip(&st.after)
            .filter(|(a, b)| a != b)
            .count();
        moved_total += moved;
        assert_eq!(
            used.to_host,
            8 * (2 * b * L + moved * n + b) as u64,
            "seed {seed}"
        );
        assert_eq!(used.to_device, full.to_device, "the same constants go up");
    }
    assert!(
        moved_total > 0 && moved_total < 8 * 7,
        "{moved_total} moves"
    );
}
