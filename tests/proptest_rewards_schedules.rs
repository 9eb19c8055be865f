//! Property tests over the remaining public entry points that take user data (issue 17, item 5):
//! rewards (the built-in ones and the combinators) on arbitrary token buffers, and noise schedules
//! (`LogLinear`, `Geometric`, `noise_schedule!` formulas) with arbitrary parameters. Each call must
//! return (no panic); every `Ok` reward is finite and within its declared range, and the components
//! of a sum add up to it; every schedule that constructs (or passes `check`) has a finite σ̄ ≥ 0 that
//! is non-decreasing on `[0, 1]` and an inverse in `[0, 1]`.

use proptest::prelude::*;
use sepo::prelude::*;
use sepo::reward::{
    evaluate, FnReward, GcContent, KmerLogLikelihood, MotifCount, MotifPresence, Reward,
};

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

/// Tokens, mostly small, some huge.
fn token() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..6usize, 1 => Just(usize::MAX), 1 => any::<usize>()]
}

/// A batch of sequences of arbitrary (also zero and unequal) lengths.
fn batch() -> impl Strategy<Value = Vec<Vec<usize>>> {
    proptest::collection::vec(proptest::collection::vec(token(), 0..10), 0..6)
}

/// The `Ok` values of `evaluate`: one per sequence, finite, in the declared range.
fn check_reward<R: Reward>(r: &R, batch: &[Vec<usize>]) -> Result<(), TestCaseError> {
    let seqs: Vec<&[usize]> = batch.iter().map(Vec::as_slice).collect();
    if let Ok(v) = evaluate(r, &seqs) {
        prop_assert_eq!(v.len(), seqs.len());
        prop_assert!(v.iter().all(|x| x.is_finite()), "{} → {v:?}", r.name());
        if let Some((lo, hi)) = r.range() {
            prop_assert!(v.iter().all(|x| (lo..=hi).contains(x)), "{v:?}");
        }
        if let Some(parts) = r.components(&seqs) {
            for (i, total) in v.iter().enumerate() {
                let sum: f64 = parts.iter().map(|(_, c)| c[i]).sum();
                prop_assert!(
                    (sum - total).abs() <= 1e-12 * total.abs().max(1.0),
                    "components {parts:?} vs {total}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Motif counts and presence, GC content: any motif, divisor and token set on any batch.
    #[test]
    fn built_in_rewards_are_finite_or_refused(
        motif in proptest::collection::vec(token(), 0..4),
        per in nasty(),
        tokens in proptest::collection::vec(token(), 0..4),
        batch in batch(),
    ) {
        check_reward(&MotifCount { motif: motif.clone(), per }, &batch)?;
        check_reward(&MotifPresence { motif }, &batch)?;
        check_reward(&GcContent { tokens }, &batch)?;
        check_reward(&GcContent::default(), &batch)?;
    }

    /// `KmerLogLikelihood::fit` with any corpus, order, alphabet and smoothing either refuses or
    /// gives a reward that is finite (a token outside the alphabet is a typed error) on any batch.
    #[test]
    fn kmer_log_likelihood_fits_and_scores_or_refuses(
        corpus in batch(),
        order in prop_oneof![0..4usize, Just(9usize), any::<usize>()],
        alphabet in prop_oneof![0..6usize, Just(1usize << 40), any::<usize>()],
        alpha in nasty(),
        batch in batch(),
    ) {
        if let Ok(r) = KmerLogLikelihood::fit(&corpus, order, alphabet, alpha) {
            check_reward(&r, &batch)?;
        }
    }

    /// Scaled and summed rewards with any weights: finite or refused, components adding up.
    #[test]
    fn combined_rewards_are_finite_or_refused(
        w in nasty(),
        v in nasty(),
        batch in batch(),
    ) {
        let len = FnReward::new("len", |s: &[usize]| s.len() as f64);
        let r = GcContent::default().scaled(w).plus(len).plus(MotifCount::new(vec![1]).scaled(v));
        check_reward(&r, &batch)?;
        let constant = FnReward::new("v", move |_: &[usize]| v).with_range(-1.0, 1.0);
        check_reward(&constant.scaled(w), &batch)?;
    }
}

noise_schedule! {
    /// A cosine schedule with free parameters.
    pub Cosine(eps: f64 = 1e-3, scale: f64 = 1.0) = -scale * ln(cos(PI / 2.0 * (1.0 - eps) * t));

    /// A polynomial that goes negative for `a < 0`.
    pub Poly(a: f64 = 1.0, b: f64 = 0.0) = a * t + b * powi(t, 2);
}

/// What a schedule that was accepted must satisfy at `t ∈ grid`: finite σ̄ ≥ 0 and σ ≥ 0, σ̄
/// non-decreasing up to rounding, inverse in `[0, 1]`.
fn check_schedule<S: NoiseSchedule>(
    s: &S,
    grid: impl Iterator<Item = f64>,
) -> Result<(), TestCaseError> {
    let mut previous = 0.0f64;
    for t in grid {
        let (total, rate) = (s.total(t), s.rate(t));
        prop_assert!(total.is_finite() && total >= 0.0, "{s:?}: σ̄({t}) = {total}");
        prop_assert!(rate.is_finite() && rate >= 0.0, "{s:?}: σ({t}) = {rate}");
        prop_assert!(
            total >= previous - 1e-12 * previous.abs().max(1.0),
            "{s:?} at {t}"
        );
        previous = total;
        let back = s.inverse(total);
        prop_assert!(
            (0.0..=1.0).contains(&back),
            "{s:?}: inverse({total}) = {back}"
        );
    }
    Ok(())
}

/// `check`'s grid `k/256`.
fn on_grid() -> impl Iterator<Item = f64> {
    (0..=256).map(|k| f64::from(k) / 256.0)
}

/// 1,000 points between `check`'s (closed forms must hold everywhere), and both ends.
fn between() -> impl Iterator<Item = f64> {
    std::iter::once(0.0)
        .chain((0..1000).map(|k| (f64::from(k) + 0.5) / 1000.0))
        .chain(std::iter::once(1.0))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `LogLinear::new` and `Geometric::new` with any parameters: a typed error, or a schedule that
    /// passes `check` and keeps its promises.
    #[test]
    fn built_in_schedules_construct_valid_or_refuse(
        eps in nasty(),
        lo in nasty(),
        hi in nasty(),
    ) {
        if let Ok(s) = LogLinear::new(eps) {
            prop_assert!(s.check().is_ok(), "{s:?}: {:?}", s.check());
            check_schedule(&s, between())?;
        }
        if let Ok(s) = Geometric::new(lo, hi) {
            prop_assert!(s.check().is_ok(), "{s:?}: {:?}", s.check());
            check_schedule(&s, between())?;
        }
    }

    /// `noise_schedule!` formulas with any parameter values (their fields are public): `check`
    /// refuses with a typed error or the schedule keeps its promises on `check`'s grid (a formula
    /// is only known there: between grid points it may still misbehave, docs/RELIABILITY.md).
    #[test]
    fn formula_schedules_pass_check_or_are_refused(
        eps in nasty(),
        scale in nasty(),
        a in nasty(),
        b in nasty(),
    ) {
        let cosine = Cosine { eps, scale };
        if cosine.check().is_ok() {
            check_schedule(&cosine, on_grid())?;
        }
        let poly = Poly { a, b };
        if poly.check().is_ok() {
            check_schedule(&poly, on_grid())?;
        }
    }
}
