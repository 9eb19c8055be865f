//! The values of a `policy!` that only a gradient-flow single loop (`mode: SingleLoop`) reads:
//! `sampler: Flow(..)` (the chain), `log_prob: Ift(..)` (the estimator) and `lr_decay` (its rate over
//! updates). Each is read into the tokens of the core value, mistakes recorded at the user's span;
//! whether the mode fits them is checked in `validate.rs`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, Ident};

use super::parse::{clean, float_tokens, int_tokens, named, sampler, weights};
use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::keys;

/// `sampler: Flow(rates = HeatBath, steps = 1, init = Tweedie(steps = 32), max_batch = n)`.
pub struct Flow {
    /// The `LocallyBalanced` value.
    pub rates: Option<TokenStream>,
    /// Chain steps per update `k`.
    pub steps: Option<TokenStream>,
    /// The sampler drawing the initial particles (a `SamplerKind`), and its name when first-hitting.
    pub init: Option<(TokenStream, Option<Ident>)>,
    /// The chain's largest forward batch.
    pub max_batch: Option<TokenStream>,
}

/// `log_prob: Ift(h = .., clean = .., t0 = .., ratio = ..)`, each option as its core value.
pub struct IftValue {
    /// The `StateGradient` value.
    pub h: Option<TokenStream>,
    /// The `CleanScores` value.
    pub clean: Option<TokenStream>,
    /// The time whose `σ̄(t0)` the clean-end scores are read at (an `f64`).
    pub t0: Option<TokenStream>,
    /// The `RatioMode` value.
    pub ratio: Option<TokenStream>,
}

/// `lr_decay: Constant | Linear | InvSqrt(scale = s)`.
pub enum LrDecay {
    /// A `FlowLr` value as written.
    Value(TokenStream),
    /// `Linear`: to 0 at `iterations`, which only the expansion knows.
    Linear,
}

/// Whether `value` is `name` or `name(..)`: then the key reads it as a single-loop value.
pub fn is_call(value: &Expr, name: &str) -> bool {
    let func = match value {
        Expr::Call(c) => &*c.func,
        e => e,
    };
    matches!(func, Expr::Path(p) if p.path.is_ident(name))
}

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
    let rates = read(call.option("rates"), |r| rates(cx, r));
    let steps = read(call.option("steps"), |s| count(cx, s, "steps"));
    let init = read(call.option("init"), |i| sampler(cx, i, "init"));
    let max_batch = read(call.option("max_batch"), |m| count(cx, m, "max_batch"));
    let (rates, steps, init, max_batch) = (rates?, steps?, init?, max_batch?);
    Some(Flow {
        rates,
        steps,
        init,
        max_batch,
    })
}

/// `rates = HeatBath | Barker | Metropolis`; `Sqrt` and `Corrector` are refused with the reason.
fn rates(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    let call = named(
        cx,
        value,
        "rates",
        keys::RATES,
        "`HeatBath`, `Barker` or `Metropolis`",
    )?;
    call.check_options(cx, &[], "");
    let name = &call.name;
    if name == "Sqrt" || name == "Corrector" {
        cx.error_spanned_by(
            name,
            format!(
                "`{name}` rates are unbounded, so the chain cannot be uniformised: \
                 use `HeatBath`, `Barker` or `Metropolis`"
            ),
        );
        return None;
    }
    Some(quote!(::sepo::__private::LocallyBalanced::#name))
}

/// `Ift(..)`: every option read.
pub fn ift(cx: &Ctxt, value: &Expr) -> Option<IftValue> {
    let call = Call::parse(cx, value)?;
    call.check_options(
        cx,
        &["h", "clean", "t0", "ratio"],
        "`h = Conditional|Energy`, `clean = Masked|Unmasked|MaskedSubset(positions = n)`, \
         `t0 = t`, `ratio = Tracked|Exact|Path|PathSubset(positions = m)`",
    );
    let root = quote!(::sepo::__private);
    // Every option is read (and its mistakes recorded) before any failure is returned.
    let h = read(call.option("h"), |h| state_gradient(cx, h));
    let clean = read(call.option("clean"), |c| clean(cx, c));
    let t0 = read(call.option("t0"), |t| time(cx, t));
    let ratio = read(call.option("ratio"), |r| {
        let r = named(
            cx,
            r,
            "ratio",
            keys::RATIOS,
            "`Tracked`, `Exact`, `Path` or `PathSubset(positions = 4)`",
        )?;
        let name = &r.name;
        if *name == "PathSubset" {
            r.check_options(cx, &["positions"], "`positions = m`");
            let positions = match r.option("positions") {
                Some(p) => int_tokens(cx, p, "positions")?,
                None => quote!(4),
            };
            return Some(quote!(#root::RatioMode::PathSubset { positions: #positions }));
        }
        r.check_options(cx, &[], "");
        Some(quote!(#root::RatioMode::#name))
    });
    let (h, clean, t0, ratio) = (h?, clean?, t0?, ratio?);
    Some(IftValue {
        h,
        clean,
        t0,
        ratio,
    })
}

/// `h = Conditional | Energy | Neighbour(weights = ..)`: the `StateGradient` value.
fn state_gradient(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    let h = named(
        cx,
        value,
        "h",
        keys::STATE_GRADIENTS,
        "`Conditional`, `Energy` or `Neighbour(weights = Conditional|Enumerate|Snis(draws = 2))` \
         (what stands for ∇log π_θ(x))",
    )?;
    let name = &h.name;
    let root = quote!(::sepo::__private);
    if name == "Neighbour" {
        h.check_options(
            cx,
            &["weights"],
            "`weights = Conditional|Enumerate|Snis(draws = n)`",
        );
        let weights = match h.option("weights") {
            Some(w) => weights(cx, w, "weights")?,
            None => quote!(#root::NeighbourWeights::Conditional),
        };
        return Some(quote!(#root::StateGradient::Neighbour(#weights)));
    }
    h.check_options(cx, &[], "");
    Some(quote!(#root::StateGradient::#name))
}

/// `t0 ∈ [0, 1]` when a literal: a time of the forward process.
fn time(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    if let Some((v, _)) = call::number(value) {
        if !(0.0..=1.0).contains(&v) {
            cx.error_spanned_by(
                value,
                format!("`t0` is a time of the forward process: in [0, 1], found {v}"),
            );
            return None;
        }
    }
    float_tokens(cx, value, "t0")
}

/// `lr_decay: Constant | Linear | InvSqrt(scale = s)` (`scale > 0`, default 100).
pub fn lr_decay(cx: &Ctxt, value: &Expr) -> Option<LrDecay> {
    let call = named(
        cx,
        value,
        "lr_decay",
        keys::LR_DECAYS,
        "`Constant`, `Linear` (to 0 at `iterations`) or `InvSqrt(scale = 100)`",
    )?;
    let path = quote!(::sepo::__private::FlowLr);
    match call.name.to_string().as_str() {
        "Constant" => {
            call.check_options(cx, &[], "");
            Some(LrDecay::Value(quote!(#path::Constant)))
        }
        "Linear" => {
            call.check_options(cx, &[], "");
            Some(LrDecay::Linear)
        }
        _ => {
            call.check_options(cx, &["scale"], "`scale = s` (updates per unit of decay)");
            let scale = match call.option("scale") {
                Some(s) => {
                    if call::number(s).is_some_and(|(v, _)| v <= 0.0) {
                        cx.error_spanned_by(s, "`scale` must be > 0");
                        return None;
                    }
                    float_tokens(cx, s, "scale")?
                }
                None => quote!(100.0),
            };
            Some(LrDecay::Value(quote!(#path::InvSqrt { scale: #scale })))
        }
    }
}

/// An optional option read with `f`: `Some(None)` when absent, `None` when it failed.
fn read<T>(value: Option<&Expr>, f: impl FnOnce(&Expr) -> Option<T>) -> Option<Option<T>> {
    match value {
        Some(v) => f(v).map(Some),
        None => Some(None),
    }
}

/// A count: an integer, at least 1 when a literal.
fn count(cx: &Ctxt, value: &Expr, key: &str) -> Option<TokenStream> {
    if call::number(value) == Some((0.0, true)) {
        cx.error_spanned_by(value, format!("`{key}` must be ≥ 1"));
        return None;
    }
    int_tokens(cx, value, key)
}
