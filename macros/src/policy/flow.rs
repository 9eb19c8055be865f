//! The values of a `policy!` that only a gradient-flow single loop (`mode: SingleLoop`) reads:
//! `sampler: Flow(..)` (the chain) and `log_prob: Ift(..)` (the estimator). Each is read into its IR value, mistakes recorded at the user's span; whether the mode
//! fits them is checked in `validate.rs`.

use syn::Expr;

use super::ir::{Float, Flow, Ift, Ratio, StateGradient};
use super::read::{count, float, int, named, optional};
use super::shared::{clean, sampler, weights};
use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::keys;

/// `Flow(..)`: every option read, `init` as a two-loop `sampler:` value.
pub fn flow(cx: &Ctxt, value: &Expr) -> Option<Flow> {
    let call = Call::parse(cx, value)?;
    call.check_options(
        cx,
        &["rates", "steps", "init", "max_batch"],
        "`rates = HeatBath|Barker|Metropolis`, `steps = k` (chain steps per update), \
         `init = Tweedie(steps = 32)` (the sampler of the initial particles), `max_batch = n`",
    );
    // Every option is read (and its mistakes recorded) before any failure is returned.
    let rates = optional(call.option("rates"), |r| rates(cx, r));
    let steps = optional(call.option("steps"), |s| count(cx, s, "steps"));
    let init = optional(call.option("init"), |i| sampler(cx, i, "init"));
    let max_batch = optional(call.option("max_batch"), |m| count(cx, m, "max_batch"));
    Some(Flow {
        rates: rates?,
        steps: steps?,
        init: init?,
        max_batch: max_batch?,
    })
}

/// `rates = HeatBath | Barker | Metropolis`; `Sqrt` and `Corrector` are refused with the reason.
fn rates(cx: &Ctxt, value: &Expr) -> Option<syn::Ident> {
    let call = named(
        cx,
        value,
        "rates",
        keys::RATES,
        "`HeatBath`, `Barker` or `Metropolis`",
    )?;
    call.check_options(cx, &[], "");
    let name = call.name;
    if name == "Sqrt" || name == "Corrector" {
        cx.error_spanned_by(
            &name,
            format!(
                "`{name}` rates are unbounded, so the chain cannot be uniformised: \
                 use `HeatBath`, `Barker` or `Metropolis`"
            ),
        );
        return None;
    }
    Some(name)
}

/// `Ift(..)`: every option read.
pub fn ift(cx: &Ctxt, value: &Expr) -> Option<Ift> {
    let call = Call::parse(cx, value)?;
    call.check_options(
        cx,
        &["h", "clean", "t0", "ratio"],
        "`h = Conditional|Energy`, `clean = Masked|Unmasked|MaskedSubset(positions = n)`, \
         `t0 = t`, `ratio = Tracked|Exact|Path|PathSubset(positions = m)`",
    );
    // Every option is read (and its mistakes recorded) before any failure is returned.
    let h = optional(call.option("h"), |h| state_gradient(cx, h));
    let clean = optional(call.option("clean"), |c| clean(cx, c));
    let t0 = optional(call.option("t0"), |t| time(cx, t));
    let ratio = optional(call.option("ratio"), |r| ratio(cx, r));
    Some(Ift {
        h: h?,
        clean: clean?,
        t0: t0?,
        ratio: ratio?,
    })
}

/// `ratio = Tracked | Exact | Path | PathSubset(positions = m)`.
fn ratio(cx: &Ctxt, value: &Expr) -> Option<Ratio> {
    let r = named(
        cx,
        value,
        "ratio",
        keys::RATIOS,
        "`Tracked`, `Exact`, `Path` or `PathSubset(positions = 4)`",
    )?;
    if r.name == "PathSubset" {
        r.check_options(cx, &["positions"], "`positions = m`");
        let positions = optional(r.option("positions"), |p| int(cx, p, "positions"))?;
        return Some(Ratio::PathSubset { positions });
    }
    r.check_options(cx, &[], "");
    Some(Ratio::Unit(r.name))
}

/// `h = Conditional | Energy | Neighbour(weights = ..)`.
fn state_gradient(cx: &Ctxt, value: &Expr) -> Option<StateGradient> {
    let h = named(
        cx,
        value,
        "h",
        keys::STATE_GRADIENTS,
        "`Conditional`, `Energy` or `Neighbour(weights = Conditional|Enumerate|Snis(draws = 2))` \
         (what stands for ∇log π_θ(x))",
    )?;
    if h.name == "Neighbour" {
        h.check_options(
            cx,
            &["weights"],
            "`weights = Conditional|Enumerate|Snis(draws = n)`",
        );
        let weights = optional(h.option("weights"), |w| weights(cx, w, "weights"))?;
        return Some(StateGradient::Neighbour(weights));
    }
    h.check_options(cx, &[], "");
    Some(StateGradient::Unit(h.name))
}

/// `t0 ∈ [0, 1]` when a literal: a time of the forward process.
fn time(cx: &Ctxt, value: &Expr) -> Option<Float> {
    if let Some((v, _)) = call::number(value) {
        if !(0.0..=1.0).contains(&v) {
            cx.error_spanned_by(
                value,
                format!("`t0` is a time of the forward process: in [0, 1], found {v}"),
            );
            return None;
        }
    }
    float(cx, value, "t0")
}
