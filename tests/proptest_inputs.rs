//! Property tests over the public entry points that take user data (issue 17, item 5): configs, token
//! buffers, log-weights, rewards, learning-rate schedules, categorical weights, score-model inputs and
//! checkpoint bytes. Each property feeds arbitrary values (NaN, ±∞, huge, empty, mismatched lengths) and
//! asserts that the call returns (no panic) and that every `Ok` is finite and within its documented range.
//!
//! The proptests inside the crate (IFT, reweighting, schedules, advantages' statistics, tokenisers) check
//! the formulas on valid inputs; these check the boundary on invalid ones.

use proptest::prelude::*;
use rand::SeedableRng;
use sepo::categorical::{draw, draw_log};
use sepo::graph::{Absorbing, Uniform};
use sepo::nn::{AdamW, LrSchedule};
use sepo::prelude::*;
use sepo::sample::SamplerConfig;
use sepo::score::{Mlp, MlpConfig, ScoreHead, ScoreModel, Tabular};
use sepo::train::{FinetuneConfig, PretrainConfig, SamplerKind};
use sepo::weight::{advantages, advantages_by_group, log_sum_exp, Baseline, LogWeights};
use sepo::Sequences;

/// Any f64, weighted towards the values that break code: NaN, ±∞, ±MAX, ±0, subnormals, moderate.
fn nasty() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE / 2.0),
        Just(1.0),
        -10.0..10.0f64,
        -1e300..1e300f64,
        any::<f64>(),
    ]
}

/// Any usize, weighted towards 0, 1, small values and the overflow edge.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1usize),
        0..10usize,
        Just(usize::MAX),
        Just(usize::MAX / 2 + 1),
        Just(1usize << 32),
        any::<usize>(),
    ]
}

fn schedule() -> impl Strategy<Value = LrSchedule> {
    prop_oneof![
        Just(LrSchedule::Constant),
        any::<u64>().prop_map(|warmup| LrSchedule::Warmup { warmup }),
        any::<u64>().prop_map(|total| LrSchedule::Linear { total }),
        nasty().prop_map(|scale| LrSchedule::InvSqrt { scale }),
        (any::<u64>(), any::<u64>(), nasty()).prop_map(|(warmup, total, min_ratio)| {
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_ratio,
            }
        }),
        (0..20u64, 0..40u64, 0.0..=1.0f64).prop_map(|(warmup, total, min_ratio)| {
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_ratio,
            }
        }),
    ]
}

fn step() -> impl Strategy<Value = u64> {
    prop_oneof![0..100u64, Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()]
}

fn baseline() -> impl Strategy<Value = Baseline> {
    prop_oneof![
        Just(Baseline::None),
        Just(Baseline::Mean),
        Just(Baseline::LeaveOneOut),
        Just(Baseline::GRPO),
        nasty().prop_map(|delta| Baseline::Grpo { delta }),
    ]
}

fn adamw() -> impl Strategy<Value = AdamW> {
    (nasty(), nasty(), nasty(), nasty(), nasty()).prop_map(
        |(lr, beta1, beta2, eps, weight_decay)| AdamW {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        },
    )
}

/// Either a valid AdamW or an arbitrary one, so `Ok` paths further down are reached too.
fn maybe_valid_adamw() -> impl Strategy<Value = AdamW> {
    prop_oneof![Just(AdamW::with_lr(1e-3)), adamw()]
}

fn sampler_config() -> impl Strategy<Value = SamplerConfig> {
    (size(), nasty(), size()).prop_map(|(steps, eps, max_batch)| SamplerConfig {
        steps,
        eps,
        max_batch,
        ..SamplerConfig::default()
    })
}

fn documented_adamw(a: &AdamW) -> bool {
    a.lr.is_finite()
        && a.lr >= 0.0
        && (0.0..1.0).contains(&a.beta1)
        && (0.0..1.0).contains(&a.beta2)
        && a.eps.is_finite()
        && a.eps > 0.0
        && a.weight_decay.is_finite()
        && a.weight_decay >= 0.0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `Sequences::new`: `Ok` only for `B ≥ 1` rows of one length `L ≥ 1`, and every row is then
    /// addressable.
    #[test]
    fn sequences_new_accepts_only_whole_rows(
        tokens in proptest::collection::vec(any::<usize>(), 0..40),
        batch in size(),
    ) {
        if let Ok(s) = Sequences::new(&tokens, batch) {
            prop_assert!(s.batch() >= 1 && s.seq_len() >= 1);
            prop_assert_eq!(s.batch() * s.seq_len(), tokens.len());
            for b in 0..s.batch() {
                prop_assert_eq!(s.row(b).len(), s.seq_len());
            }
        } else {
            prop_assert!(batch == 0 || tokens.is_empty() || tokens.len() % batch != 0 || batch > tokens.len());
        }
    }

    /// `LrSchedule::check` then `at`: a checked schedule gives a rate in `[0, lr]` for every finite
    /// non-negative peak `lr` and every step, including `u64::MAX`.
    #[test]
    fn checked_lr_schedules_give_rates_in_zero_to_peak(
        schedule in schedule(),
        lr in prop_oneof![Just(0.0), 0.0..10.0f64, Just(f64::MAX)],
        step in step(),
    ) {
        if schedule.check().is_ok() {
            let rate = schedule.at(lr, step);
            prop_assert!(rate.is_finite() && (0.0..=lr).contains(&rate), "{schedule:?} at {step}: {rate}");
        }
    }

    /// `AdamW::check` accepts exactly its documented ranges.
    #[test]
    fn adamw_check_is_its_documented_ranges(a in adamw()) {
        prop_assert_eq!(a.check().is_ok(), documented_adamw(&a), "{:?}", a);
    }

    /// `LogWeights`: normalised weights in `[0, 1]` summing to 1, ESS in `[1, N]`, finite `log_sum` and
    /// `log_mean`, for any log-weights `check` accepts; an `add` of a mismatched length is refused.
    #[test]
    fn log_weights_normalise_or_refuse(
        w in proptest::collection::vec(nasty(), 0..12),
        inc in proptest::collection::vec(nasty(), 0..12),
    ) {
        let mut lw = LogWeights(w.clone());
        let n = w.len() as f64;
        if let Ok(p) = lw.normalized() {
            prop_assert!(p.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)), "{w:?} → {p:?}");
            let total: f64 = p.iter().sum();
            prop_assert!((total - 1.0).abs() <= 1e-12 * n, "{w:?} sums to {total}");
        }
        if let Ok(ess) = lw.ess() {
            prop_assert!(ess.is_finite() && ess >= 1.0 - 1e-9 && ess <= n * (1.0 + 1e-9), "{w:?}: ess {ess}");
        }
        if let Ok(ls) = lw.log_sum() {
            prop_assert!(ls.is_finite(), "{w:?}: log_sum {ls}");
        }
        if let Ok(lm) = lw.log_mean() {
            prop_assert!(lm.is_finite(), "{w:?}: log_mean {lm}");
        }
        let added = lw.add(&inc);
        prop_assert_eq!(added.is_ok(), inc.len() == w.len());
        if let Ok(p) = lw.normalized() {
            prop_assert!(p.iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)));
        }
    }

    /// `log_sum_exp` is never NaN without a NaN input and is at least the largest entry (`−∞` for an
    /// empty slice).
    #[test]
    fn log_sum_exp_is_at_least_the_max(x in proptest::collection::vec(nasty(), 0..12)) {
        let lse = log_sum_exp(&x);
        if x.iter().all(|v| !v.is_nan()) {
            let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(!lse.is_nan() && lse >= max, "{x:?} → {lse}");
        }
    }

    /// `advantages` / `advantages_by_group`: every `Ok` has one finite advantage per reward, and a
    /// constant group's are zero (for a centred baseline); arbitrary group sizes never overflow.
    #[test]
    fn advantages_are_finite_or_refused(
        rewards in proptest::collection::vec(nasty(), 0..12),
        group_size in prop_oneof![1..4usize, size()],
        sizes in proptest::collection::vec(prop_oneof![3 => 1..4usize, 1 => size()], 0..5),
        baseline in baseline(),
    ) {
        let outs = [
            advantages(&rewards, group_size, baseline),
            advantages_by_group(&rewards, &sizes, baseline),
        ];
        for a in outs.into_iter().flatten() {
            prop_assert_eq!(a.len(), rewards.len());
            prop_assert!(a.iter().all(|x| x.is_finite()), "{rewards:?} {baseline:?} → {a:?}");
        }
        if let Ok(a) = advantages(&rewards, group_size, baseline) {
            if baseline != Baseline::None {
                for (r, a) in rewards.chunks(group_size).zip(a.chunks(group_size)) {
                    if r.iter().all(|&x| x == r[0]) {
                        prop_assert!(a.iter().all(|&x| x == 0.0), "{r:?} → {a:?}");
                    }
                }
            }
        }
    }

    /// `draw` / `draw_log`: an index of the slice, and one of positive weight whenever one has it
    /// (negative and NaN weights count as zero).
    #[test]
    fn categorical_draws_pick_a_weighted_index(
        weights in proptest::collection::vec(nasty(), 0..10),
        seed in any::<u64>(),
    ) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let i = draw(&weights, &mut rng);
        prop_assert!(i < weights.len().max(1));
        if weights.iter().any(|&w| w > 0.0) {
            prop_assert!(weights[i] > 0.0, "{weights:?} → {i}");
        }
        let j = draw_log(&weights, &mut rng);
        prop_assert!(j < weights.len().max(1));
        if weights.iter().any(|&l| l > f64::NEG_INFINITY) {
            prop_assert!(weights[j] > f64::NEG_INFINITY, "log {weights:?} → {j}");
        }
    }

    /// `SamplerConfig::check`: `Ok` only in the documented ranges, and then the grid runs from 1 down
    /// to exactly `eps`.
    #[test]
    fn sampler_config_check_is_its_documented_ranges(c in sampler_config()) {
        let ok = c.check().is_ok();
        let steps = (1..=sepo::check::MAX_ELEMENTS).contains(&c.steps);
        prop_assert_eq!(ok, steps && c.max_batch >= 1 && c.eps > 0.0 && c.eps < 1.0, "{:?}", c);
        if ok && c.steps <= 4096 {
            let grid = c.grid();
            prop_assert_eq!(grid.len(), c.steps + 1);
            prop_assert_eq!(grid[0], 1.0);
            prop_assert_eq!(grid[c.steps], c.eps);
            prop_assert!(grid.windows(2).all(|w| w[0] > w[1] && w[1].is_finite()));
        }
    }

    /// `FinetuneConfig::check`: an `Ok` configuration has a representable round size and every
    /// coefficient in its documented range.
    #[test]
    fn finetune_config_check_bounds_every_field(
        (seq_len, groups, group_size, epochs, minibatch) in (size(), size(), size(), size(), size()),
        (kl, entropy_bonus, grad_clip, clip) in (nasty(), nasty(), prop::option::of(nasty()), nasty()),
        optimizer in maybe_valid_adamw(),
        lr_schedule in schedule(),
        sampler in sampler_config(),
        grid in any::<bool>(),
    ) {
        let c = FinetuneConfig {
            seq_len,
            groups,
            group_size,
            epochs,
            minibatch,
            kl,
            entropy_bonus,
            grad_clip,
            optimizer,
            lr_schedule,
            sampler: if grid { SamplerKind::Grid(sampler) } else { SamplerKind::FirstHitting(sampler) },
            estimator: sepo::policy::Mixture::grpo(clip),
            ..FinetuneConfig::new(4)
        };
        if c.check().is_ok() {
            let batch = groups.checked_mul(group_size);
            prop_assert!(batch.and_then(|b| b.checked_mul(seq_len)).is_some());
            prop_assert_eq!(c.batch(), batch.unwrap());
            prop_assert!(seq_len >= 1 && epochs >= 1 && minibatch >= 1);
            prop_assert!(kl.is_finite() && kl >= 0.0 && entropy_bonus.is_finite() && entropy_bonus >= 0.0);
            prop_assert!(grad_clip.is_none_or(|g| g.is_finite() && g > 0.0));
            prop_assert!(documented_adamw(&c.optimizer));
            prop_assert!(c.sampler.config().check().is_ok());
        }
    }

    /// `PretrainConfig::check`: an `Ok` configuration has every field in its documented range.
    #[test]
    fn pretrain_config_check_bounds_every_field(
        batch_size in size(),
        optimizer in maybe_valid_adamw(),
        lr_schedule in schedule(),
        grad_clip in prop::option::of(nasty()),
        ema_decay in prop::option::of(nasty()),
        t_min in nasty(),
    ) {
        let d = PretrainConfig::default();
        let c = PretrainConfig {
            batch_size,
            optimizer,
            lr_schedule,
            grad_clip,
            ema_decay,
            loss: Dwdse { t_min, ..d.loss },
            ..d
        };
        if c.check().is_ok() {
            prop_assert!(batch_size >= 1 && documented_adamw(&optimizer) && lr_schedule.check().is_ok());
            prop_assert!(grad_clip.is_none_or(|g| g.is_finite() && g > 0.0));
            prop_assert!(ema_decay.is_none_or(|d| (0.0..1.0).contains(&d)));
            prop_assert!(t_min > 0.0 && t_min < 1.0);
        }
    }
}

/// Log-scores `[B·L·N]` of a model's `Ok` read: no NaN, no `+∞`, and exactly `0` at `v = x_l` (the
/// ratio of a sequence to itself).
fn check_log_scores(out: &[f64], tokens: &[usize], states: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.len(), tokens.len() * states);
    for (pos, &x) in tokens.iter().enumerate() {
        let row = &out[pos * states..(pos + 1) * states];
        prop_assert!(
            row.iter().all(|v| !v.is_nan() && *v != f64::INFINITY),
            "{row:?}"
        );
        prop_assert_eq!(
            row[x],
            0.0,
            "log-score of x_l at position {}: {:?}",
            pos,
            row
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `Tabular::new` then `log_scores_host` on arbitrary logits, token buffers and σ̄: every `Ok`
    /// read has the documented log-scores.
    #[test]
    fn tabular_reads_are_finite_or_refused(
        absorbing in any::<bool>(),
        tokens_n in 2..4usize,
        seq_len in 1..3usize,
        logits in proptest::collection::vec(prop_oneof![-1e6..1e6f64, nasty()], 1..20),
        buf in proptest::collection::vec(prop_oneof![0..5usize, any::<usize>()], 0..10),
        batch in 0..4usize,
        read_len in 0..4usize,
        sigma in proptest::collection::vec(nasty(), 0..4),
    ) {
        let dev = Cpu::default();
        let n = tokens_n.pow(seq_len as u32);
        let logits: Vec<f64> = logits.into_iter().cycle().take(n).collect();
        let run = |m: Tabular<f64, Cpu>| -> Result<(), TestCaseError> {
            let states = m.num_states();
            if let Ok(out) = m.log_scores_host(&buf, batch, read_len, &sigma) {
                check_log_scores(&out, &buf, states)?;
            }
            Ok(())
        };
        if absorbing {
            let g = Absorbing::with_tokens(tokens_n).unwrap();
            if let Ok(m) = Tabular::new(&g, seq_len, logits.clone(), &dev) {
                prop_assert!(logits.iter().all(|x| x.is_finite()));
                run(m)?;
            }
        } else {
            let g = Uniform::new(tokens_n).unwrap();
            if let Ok(m) = Tabular::new(&g, seq_len, logits.clone(), &dev) {
                prop_assert!(logits.iter().all(|x| x.is_finite()));
                run(m)?;
            }
        }
    }

    /// `Mlp::log_scores_host` (f32) on arbitrary token buffers and σ̄, including σ̄ beyond f32's range.
    #[test]
    fn mlp_reads_are_finite_or_refused(
        buf in proptest::collection::vec(prop_oneof![0..5usize, any::<usize>()], 0..10),
        batch in 0..4usize,
        read_len in 0..4usize,
        sigma in proptest::collection::vec(nasty(), 0..4),
    ) {
        let m = tiny_mlp(0);
        if let Ok(out) = m.log_scores_host(&buf, batch, read_len, &sigma) {
            check_log_scores(&out, &buf, m.num_states())?;
        }
    }
}

fn condition() -> impl Strategy<Value = Condition> {
    let slot = || prop::option::of(prop_oneof![0..5usize, any::<usize>()]);
    prop_oneof![
        proptest::collection::vec(slot(), 0..4).prop_map(Condition::shared),
        proptest::collection::vec(slot(), 0..10).prop_map(Condition::per_sequence),
        (
            proptest::collection::vec(prop_oneof![0..5usize, any::<usize>()], 0..4),
            0..4usize
        )
            .prop_map(|(prompt, len)| Condition::prefix(&prompt, len)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Both samplers under an arbitrary [`Condition`] and shape: every `Ok` is `B·L` clean tokens that
    /// hold each fixed position at its token.
    #[test]
    fn conditioned_samples_are_clean_and_fixed_or_refused(
        condition in condition(),
        batch in 0..4usize,
        len in 0..4usize,
        first in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let graph = Absorbing::with_tokens(3).unwrap();
        let logits: Vec<f64> = (0..9).map(|i| (i as f64 * 0.7).sin()).collect();
        let model = Tabular::<f64, Cpu>::new(&graph, 2, logits, &Cpu::default()).unwrap();
        let diffusion = Diffusion::new(graph, LogLinear::default());
        let cfg = SamplerConfig { steps: 4, ..SamplerConfig::default() };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let policy = Policy::current(&model);
        let out = if first {
            first_hitting(&policy, &diffusion, &cfg, (batch, len), Some(&condition), &mut rng)
        } else {
            sample(&policy, &diffusion, &cfg, (batch, len), Some(&condition), &mut rng)
        };
        if let Ok(s) = out {
            prop_assert_eq!(s.tokens.len(), batch * len);
            prop_assert!(s.tokens.iter().all(|&t| t < 3), "{:?}", s.tokens);
            let pattern = condition.pattern();
            for (i, &t) in s.tokens.iter().enumerate() {
                let fixed = if pattern.len() == len { pattern[i % len] } else { pattern[i] };
                prop_assert!(fixed.is_none_or(|f| f == t), "{pattern:?} → {:?}", s.tokens);
            }
        }
    }
}

fn tiny_mlp(seed: u64) -> Mlp<f32, Cpu> {
    let config = MlpConfig {
        hidden: 8,
        depth: 1,
        ..MlpConfig::tiny(5, 3, ScoreHead::Absorbing)
    };
    Mlp::new(config, &Cpu::default(), seed).unwrap()
}
