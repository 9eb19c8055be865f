//! The parse stage's leaf: reading one value of a `policy!` key or option (a name among accepted ones,
//! a number, a count, an optional or required option), each mistake recorded at the user's span.
//! Imports nothing of `policy/`, so `parse.rs`, `shared.rs`, `flow.rs` and `training.rs` can all use it.

use syn::spanned::Spanned;
use syn::Expr;

use super::ir::Float;
use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::suggest;

/// `Name` or `Name(..)` with `Name` among `accepted`; else an error listing them.
pub fn named(cx: &Ctxt, value: &Expr, key: &str, accepted: &[&str], syntax: &str) -> Option<Call> {
    let call = Call::parse(cx, value);
    let word = call.as_ref().map(|c| c.name.to_string());
    match (call, word) {
        (Some(call), Some(word)) if accepted.contains(&word.as_str()) => Some(call),
        (call, word) => {
            let hint = word
                .as_deref()
                .map(|w| suggest::hint(w, accepted))
                .unwrap_or_default();
            let span = call.map_or_else(|| value.span(), |c| c.name.span());
            cx.syn_error(syn::Error::new(
                span,
                format!("`{key}` expects {syntax}{hint}"),
            ));
            None
        }
    }
}

/// Whether `value` is `name` or `name(..)`: then the key reads it as a single-loop value.
pub fn is_call(value: &Expr, name: &str) -> bool {
    let func = match value {
        Expr::Call(c) => &*c.func,
        e => e,
    };
    matches!(func, Expr::Path(p) if p.path.is_ident(name))
}

/// A number for an `f64` field: an integer literal is read as the float it denotes; a literal of
/// another kind is an error; other expressions are left to the compiler.
pub fn float(cx: &Ctxt, value: &Expr, key: &str) -> Option<Float> {
    if call::non_numeric_literal(value) {
        cx.error_spanned_by(value, format!("`{key}` expects a number, such as `0.2`"));
        return None;
    }
    Some(match call::number(value) {
        Some((v, true)) if v.is_finite() => Float::Whole(v, value.span()),
        _ => Float::Written(value.clone()),
    })
}

/// A count for a `usize` field: a literal must be an integer.
pub fn int(cx: &Ctxt, value: &Expr, key: &str) -> Option<Expr> {
    let wrong = match call::number(value) {
        Some((_, integer)) => !integer,
        None => call::non_numeric_literal(value),
    };
    if wrong {
        cx.error_spanned_by(value, format!("`{key}` expects an integer, such as `32`"));
        return None;
    }
    Some(value.clone())
}

/// A count: an integer, at least 1 when a literal.
pub fn count(cx: &Ctxt, value: &Expr, key: &str) -> Option<Expr> {
    if call::number(value) == Some((0.0, true)) {
        cx.error_spanned_by(value, format!("`{key}` must be ≥ 1"));
        return None;
    }
    int(cx, value, key)
}

/// An optional option read with `f`: `Some(None)` when absent, `None` when it failed.
pub fn optional<T>(value: Option<&Expr>, f: impl FnOnce(&Expr) -> Option<T>) -> Option<Option<T>> {
    match value {
        Some(v) => f(v).map(Some),
        None => Some(None),
    }
}

/// The value of a required option, or an error at the call.
pub fn required<'a>(cx: &Ctxt, call: &'a Call, key: &str, example: &str) -> Option<&'a Expr> {
    let found = call.option(key);
    if found.is_none() {
        cx.error_spanned_by(
            &call.original,
            format!("`{}` needs `{key}`: write `{example}`", call.name),
        );
    }
    found
}
