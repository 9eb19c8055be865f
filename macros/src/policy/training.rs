//! The keys of a `policy!` that shape the optimisation loop rather than the model: `lr_schedule`,
//! `grad_clip`, `prompts` and `allocation`. Each reads its value into the tokens of the core value
//! (`LrSchedule`, `Option<f64>`, the prompts expression, `Allocation`), recording mistakes at the
//! user's span.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::parse::{float_tokens, int_tokens, named};
use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::keys;

/// `lr_schedule: Constant | Warmup(warmup = n) | WarmupCosine(warmup = n, total = n, min_ratio = r)`.
pub fn lr_schedule(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    let call = named(
        cx,
        value,
        "lr_schedule",
        keys::LR_SCHEDULES,
        "`Constant`, `Warmup(warmup = 100)` or `WarmupCosine(warmup = 100, total = 1000, min_ratio = 0.1)`",
    )?;
    let path = quote!(::sepo::__private::LrSchedule);
    match call.name.to_string().as_str() {
        "Constant" => {
            call.check_options(cx, &[], "");
            Some(quote!(#path::Constant))
        }
        "Warmup" => {
            call.check_options(cx, &["warmup"], "`warmup = n` (optimiser steps)");
            let warmup = required(cx, &call, "warmup", "Warmup(warmup = 100)")?;
            let warmup = int_tokens(cx, warmup, "warmup")?;
            Some(quote!(#path::Warmup { warmup: #warmup }))
        }
        _ => {
            call.check_options(
                cx,
                &["warmup", "total", "min_ratio"],
                "`warmup = n`, `total = n` (optimiser steps), `min_ratio = r`",
            );
            let example = "WarmupCosine(warmup = 100, total = 1000)";
            let total_expr = required(cx, &call, "total", example)?;
            let total = int_tokens(cx, total_expr, "total")?;
            // Literal `total` and `warmup` (absent: 0): the decay must end after the warm-up.
            let warmup_value = match call.option("warmup") {
                Some(w) => call::number(w).filter(|(_, int)| *int).map(|(v, _)| v),
                None => Some(0.0),
            };
            if let (Some((t, true)), Some(v)) = (call::number(total_expr), warmup_value) {
                if t <= v {
                    cx.error_spanned_by(
                        total_expr,
                        format!(
                            "the cosine decay must end after the warm-up: `total` ({t}) must \
                             exceed `warmup` ({v})"
                        ),
                    );
                    return None;
                }
            }
            let warmup = match call.option("warmup") {
                Some(w) => int_tokens(cx, w, "warmup")?,
                None => quote!(0),
            };
            let min_ratio = match call.option("min_ratio") {
                Some(r) => ratio(cx, r)?,
                None => quote!(0.0),
            };
            Some(
                quote!(#path::WarmupCosine { warmup: #warmup, total: #total, min_ratio: #min_ratio }),
            )
        }
    }
}

/// `min_ratio ∈ [0, 1]` when a literal.
fn ratio(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    if let Some((v, _)) = call::number(value) {
        if !(0.0..=1.0).contains(&v) {
            cx.error_spanned_by(
                value,
                format!("`min_ratio` is a fraction of the peak rate: in [0, 1], found {v}"),
            );
            return None;
        }
    }
    float_tokens(cx, value, "min_ratio")
}

/// `grad_clip: 1.0` (a positive number: the global-norm bound), `None` (no clipping), or an expression
/// of type `f64` or `Option<f64>`, typed by the compiler at its span.
pub fn grad_clip(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    if let Expr::Path(p) = value {
        if p.path.is_ident("None") {
            return Some(quote!(::std::option::Option::None));
        }
    }
    if call::non_numeric_literal(value) {
        cx.error_spanned_by(
            value,
            "`grad_clip` expects a positive number, such as `1.0`, or `None`",
        );
        return None;
    }
    if let Some((v, _)) = call::number(value) {
        if !(v > 0.0 && v.is_finite()) {
            cx.error_spanned_by(
                value,
                format!(
                    "`grad_clip` bounds the gradient norm: it must be > 0, found {v} (write `None` for no clipping)"
                ),
            );
            return None;
        }
        let v = float_tokens(cx, value, "grad_clip")?;
        return Some(quote!(::std::option::Option::Some(#v)));
    }
    Some(quote_spanned!(value.span()=> ::std::option::Option::<f64>::from(#value)))
}

/// `prompts: expr`: any expression whose value is `AsRef<[Vec<usize>]>` (a `Vec<Vec<usize>>`, an
/// array of them, a slice), typed by the compiler at its span. Literals are refused here.
pub fn prompts(cx: &Ctxt, value: &Expr) -> Option<Expr> {
    if matches!(value, Expr::Lit(_)) {
        cx.error_spanned_by(
            value,
            "`prompts` expects the prompts, one token sequence each: `vec![vec![0, 1], vec![2]]`",
        );
        return None;
    }
    Some(value.clone())
}

/// `allocation: Uniform | Adaptive(budget = n, chunk, cap, smoothing) | Neyman(budget = n, floor,
/// smoothing) | Sequential(chunk, cap)`: the value, and the strategy's name (at its span).
pub fn allocation(cx: &Ctxt, value: &Expr) -> Option<(TokenStream, Ident)> {
    let call = named(
        cx,
        value,
        "allocation",
        keys::ALLOCATIONS,
        "`Uniform`, `Adaptive(budget = 256)`, `Neyman(budget = 256)` or `Sequential(chunk = 4, cap = 16)`",
    )?;
    let root = quote!(::sepo::__private);
    let name = call.name.clone();
    let value = match name.to_string().as_str() {
        "Uniform" => {
            call.check_options(cx, &[], "");
            quote!(#root::Allocation::Uniform)
        }
        "Adaptive" => {
            let options = ["budget", "chunk", "cap", "smoothing"];
            call.check_options(
                cx,
                &options,
                "`budget = n` (draws per round), `chunk = n`, `cap = n`, `smoothing = s`",
            );
            let budget = required(cx, &call, "budget", "Adaptive(budget = 256)")?;
            let budget = count(cx, budget, "budget")?;
            let fields = fields(cx, &call, &["chunk", "cap"], &["smoothing"])?;
            quote!(#root::Allocation::Adaptive(#root::Adaptive {
                #(#fields,)* ..#root::Adaptive::new(#budget)
            }))
        }
        "Neyman" => {
            call.check_options(
                cx,
                &["budget", "floor", "smoothing"],
                "`budget = n` (draws per round), `floor = n`, `smoothing = s`",
            );
            let budget = required(cx, &call, "budget", "Neyman(budget = 256)")?;
            let budget = count(cx, budget, "budget")?;
            let fields = fields(cx, &call, &["floor"], &["smoothing"])?;
            quote!(#root::Allocation::Neyman(#root::Neyman {
                #(#fields,)* ..#root::Neyman::new(#budget)
            }))
        }
        _ => {
            call.check_options(cx, &["chunk", "cap"], "`chunk = n`, `cap = n`");
            let chunk = match call.option("chunk") {
                Some(c) => count(cx, c, "chunk")?,
                None => quote!(4),
            };
            let cap = match call.option("cap") {
                Some(c) => count(cx, c, "cap")?,
                None => quote!(16),
            };
            quote!(#root::Allocation::Sequential(#root::Sequential::new(#chunk, #cap)))
        }
    };
    Some((value, name))
}

/// The integer options `ints` and the float options `floats` given in `call`, as `field: value`.
fn fields(cx: &Ctxt, call: &Call, ints: &[&str], floats: &[&str]) -> Option<Vec<TokenStream>> {
    let mut out = Vec::new();
    for &key in ints {
        if let Some(v) = call.option(key) {
            let field = Ident::new(key, v.span());
            let v = count(cx, v, key)?;
            out.push(quote!(#field: #v));
        }
    }
    for &key in floats {
        if let Some(v) = call.option(key) {
            let field = Ident::new(key, v.span());
            let v = float_tokens(cx, v, key)?;
            out.push(quote!(#field: #v));
        }
    }
    Some(out)
}

/// A count: an integer, at least 1 when a literal.
fn count(cx: &Ctxt, value: &Expr, key: &str) -> Option<TokenStream> {
    if call::number(value) == Some((0.0, true)) {
        cx.error_spanned_by(value, format!("`{key}` must be ≥ 1"));
        return None;
    }
    int_tokens(cx, value, key)
}

/// The value of a required option, or an error at the call.
fn required<'a>(cx: &Ctxt, call: &'a Call, key: &str, example: &str) -> Option<&'a Expr> {
    let found = call.option(key);
    if found.is_none() {
        cx.error_spanned_by(
            &call.original,
            format!("`{}` needs `{key}`: write `{example}`", call.name),
        );
    }
    found
}
