//! Value rules of an estimator mixture, one small fn per rule, each error at the offending tokens.
//! They are the rules of `sepo::policy::Mixture::check`, moved to compile time.

use super::parse::{Baseline, Mixture};
use crate::ctxt::Ctxt;

/// How far the weights may sum from 1 (`Mixture::check`'s tolerance).
const SUM_TOLERANCE: f64 = 1e-9;

/// Records every rule the mixture breaks.
pub fn check(cx: &Ctxt, mixture: &Mixture) {
    weighted_when_mixed(cx, mixture);
    weights_non_negative(cx, mixture);
    weights_sum_to_one(cx, mixture);
    clip_in_unit_interval(cx, mixture);
    group_positive(cx, mixture);
    leave_one_out_needs_two(cx, mixture);
    delta_positive(cx, mixture);
    temperature_positive(cx, mixture);
}

/// A lone component means weight 1; in a mixture every weight is written out.
fn weighted_when_mixed(cx: &Ctxt, mixture: &Mixture) {
    if mixture.terms.len() < 2 || !mixture.complete {
        return;
    }
    for term in mixture.terms.iter().filter(|t| t.weight.is_none()) {
        cx.error_spanned_by(
            &term.name,
            format!(
                "`{}` needs a weight in a mixture: `0.5 * {}(..)`",
                term.kind.name(),
                term.kind.name()
            ),
        );
    }
}

/// A negative weight would turn a component's objective into its opposite.
fn weights_non_negative(cx: &Ctxt, mixture: &Mixture) {
    for (value, original) in mixture.terms.iter().filter_map(|t| t.weight.as_ref()) {
        if !(*value >= 0.0 && value.is_finite()) {
            cx.error_spanned_by(
                original,
                if value.is_infinite() {
                    format!(
                        "mixture weights must be finite, found {value}: the literal overflows f64"
                    )
                } else {
                    format!("mixture weights must be ≥ 0, found {value}")
                },
            );
        }
    }
}

/// Convexity: the mixture's gradient is a weighted average of its components' gradients.
fn weights_sum_to_one(cx: &Ctxt, mixture: &Mixture) {
    let weights: Vec<f64> = mixture
        .terms
        .iter()
        .map(|t| t.weight.as_ref().map_or(1.0, |w| w.0))
        .collect();
    let unweighted = mixture.terms.len() > 1 && mixture.terms.iter().any(|t| t.weight.is_none());
    if weights.iter().any(|w| *w < 0.0) || !mixture.complete || unweighted {
        return; // reported above, or some weights are unknown
    }
    let total: f64 = weights.iter().sum();
    if (total - 1.0).abs() > SUM_TOLERANCE {
        cx.error_spanned_by(
            &mixture.original,
            format!("mixture weights sum to {total}, not 1: an estimator is a convex mixture"),
        );
    }
}

/// PPO's ratio clip `[1 − ε, 1 + ε]` is meaningful for `ε ∈ (0, 1)`.
fn clip_in_unit_interval(cx: &Ctxt, mixture: &Mixture) {
    for (value, original) in mixture.terms.iter().filter_map(|t| t.clip.as_ref()) {
        if !(*value > 0.0 && *value < 1.0) {
            cx.error_spanned_by(original, format!("`clip` must be in (0, 1), found {value}"));
        }
    }
}

/// Advantages are formed over groups of at least one sample.
fn group_positive(cx: &Ctxt, mixture: &Mixture) {
    for (value, original) in mixture.terms.iter().filter_map(|t| t.group.as_ref()) {
        if *value == 0 {
            cx.error_spanned_by(original, "`group` must be ≥ 1");
        }
    }
}

/// Leave-one-out subtracts the mean of the *other* draws of a group: a group of one has none.
fn leave_one_out_needs_two(cx: &Ctxt, mixture: &Mixture) {
    for term in &mixture.terms {
        if let (Some((1, original)), Some((Baseline::LeaveOneOut, _))) =
            (&term.group, &term.baseline)
        {
            cx.error_spanned_by(
                original,
                "leave-one-out needs groups of at least 2: `group = 1` leaves no other draw to average",
            );
        }
    }
}

/// `δ` is added to a standard deviation before dividing by it.
fn delta_positive(cx: &Ctxt, mixture: &Mixture) {
    for (value, original) in mixture.terms.iter().filter_map(|t| t.delta.as_ref()) {
        if !(*value > 0.0 && value.is_finite()) {
            cx.error_spanned_by(original, format!("`delta` must be > 0, found {value}"));
        }
    }
}

/// `τ` divides the rewards in `exp(r/τ)`.
fn temperature_positive(cx: &Ctxt, mixture: &Mixture) {
    for (value, original) in mixture.terms.iter().filter_map(|t| t.temperature.as_ref()) {
        if !(*value > 0.0 && value.is_finite()) {
            cx.error_spanned_by(
                original,
                format!("`temperature` must be > 0, found {value}"),
            );
        }
    }
}
