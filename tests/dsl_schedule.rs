//! `noise_schedule!`: the built-in schedules re-declared as formulas agree with the hand-written ones,
//! and the symbolic rate matches finite differences.

use sepo::prelude::*;
use sepo::schedule::{Geometric, LogLinear};

noise_schedule! {
    /// SEDD's geometric schedule, as a formula.
    pub GeometricDsl(sigma_min: f64 = 1e-4, sigma_max: f64 = 20) =
        sigma_min.powf(1.0 - t) * sigma_max.powf(t);

    /// The same with `exp` and `ln`.
    pub GeometricExp(sigma_min: f64 = 1e-4, sigma_max: f64 = 20.0) =
        exp((1.0 - t) * ln(sigma_min) + t * ln(sigma_max));

    /// SEDD's log-linear schedule, as a formula.
    pub LogLinearDsl(eps: f64 = 1e-3) = -ln(1.0 - (1.0 - eps) * t);

    /// A cosine schedule.
    pub Cosine(eps: f64 = 1e-3) = -ln(cos(PI / 2.0 * (1.0 - eps) * t));

    /// No parameters: a unit struct.
    Quadratic = powi(t, 2) + E * t;
}

/// `t` on a grid over `[0, 1]`.
fn grid() -> impl Iterator<Item = f64> {
    (0..=200).map(|i| f64::from(i) / 200.0)
}

fn assert_close(what: &str, t: f64, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{what} at t = {t}: {got} vs hand-written {want}"
    );
}

#[test]
fn geometric_agrees_with_the_hand_written_schedule() {
    assert_eq!(
        GeometricDsl::default(),
        GeometricDsl {
            sigma_min: 1e-4,
            sigma_max: 20.0
        }
    );
    for (sigma_min, sigma_max) in [(1e-4, 20.0), (1e-3, 50.0)] {
        let built_in = Geometric::new(sigma_min, sigma_max).unwrap();
        let powf = GeometricDsl {
            sigma_min,
            sigma_max,
        };
        let exp = GeometricExp {
            sigma_min,
            sigma_max,
        };
        for t in grid() {
            assert_close("σ̄ (powf)", t, powf.total(t), built_in.total(t));
            assert_close("σ (powf)", t, powf.rate(t), built_in.rate(t));
            assert_close("σ̄ (exp)", t, exp.total(t), built_in.total(t));
            assert_close("σ (exp)", t, exp.rate(t), built_in.rate(t));
        }
    }
}

#[test]
fn log_linear_agrees_with_the_hand_written_schedule() {
    for eps in [1e-3, 1e-2, 0.5] {
        let built_in = LogLinear::new(eps).unwrap();
        let dsl = LogLinearDsl { eps };
        for t in grid() {
            assert_close("σ̄", t, dsl.total(t), built_in.total(t));
            assert_close("σ", t, dsl.rate(t), built_in.rate(t));
        }
        // The default `inverse` (bisection) inverts the formula.
        for t in [0.1, 0.5, 0.9] {
            assert!((dsl.inverse(dsl.total(t)) - t).abs() < 1e-9);
        }
    }
}

#[test]
fn cosine_rate_matches_a_central_difference() {
    let cosine = Cosine::default();
    let h = 1e-6;
    for t in grid().filter(|&t| t > h && t + h <= 1.0) {
        let fd = (cosine.total(t + h) - cosine.total(t - h)) / (2.0 * h);
        let rate = cosine.rate(t);
        assert!(
            (fd - rate).abs() <= 1e-6 * rate.abs().max(1.0),
            "σ({t}) = {rate}, central difference {fd}"
        );
        assert!(rate >= 0.0);
    }
    // Closed form: σ(t) = a tan(a t), a = π/2 (1 − ε).
    let a = std::f64::consts::FRAC_PI_2 * (1.0 - cosine.eps);
    assert!((cosine.rate(0.3) - a * (a * 0.3).tan()).abs() < 1e-12);
}

#[test]
fn parameterless_schedules_are_unit_structs() {
    let q = Quadratic;
    let default: Quadratic = Default::default();
    assert_eq!(q, default);
    assert!((q.total(0.5) - (0.25 + std::f64::consts::E * 0.5)).abs() < 1e-15);
    assert!((q.rate(0.5) - (1.0 + std::f64::consts::E)).abs() < 1e-15);
}

#[test]
fn schedules_round_trip_through_serde() {
    let cosine = Cosine { eps: 0.25 };
    let json = serde_json::to_string(&cosine).unwrap();
    assert_eq!(json, r#"{"eps":0.25}"#);
    assert_eq!(serde_json::from_str::<Cosine>(&json).unwrap(), cosine);
    let q: Quadratic = serde_json::from_str("null").unwrap();
    assert_eq!(q, Quadratic);
}

/// Generic code (samplers, losses) takes any `NoiseSchedule`, so DSL schedules plug in as is.
#[test]
fn dsl_schedules_are_noise_schedules() {
    fn midpoint<S: NoiseSchedule>(s: &S) -> (f64, f64) {
        (s.total(0.5), s.rate(0.5))
    }
    let (total, rate) = midpoint(&LogLinearDsl::default());
    assert!((total - (1.0f64 - 0.999 * 0.5).ln().abs()).abs() < 1e-12);
    assert!((rate - 0.999 / (1.0 - 0.999 * 0.5)).abs() < 1e-12);
}
