//! Signature rules of a `#[reward]` fn, one small fn per rule, each error at the offending tokens.
//!
//! Return and token types are not checked here: a macro sees only syntax (a type alias would fool it),
//! so the expansion asks the compiler, through `#[diagnostic::on_unimplemented]` traits of
//! `sepo::__private`, and the compiler underlines the type with sepo's message.

use quote::ToTokens;
use syn::{GenericParam, ReturnType, Type};

use super::parse::{RewardFn, Shape};
use crate::ctxt::Ctxt;

/// Records every rule the fn breaks.
pub fn check(cx: &Ctxt, reward: &RewardFn) {
    not_async(cx, reward);
    not_unsafe(cx, reward);
    not_generic(cx, reward);
    free_fn(cx, reward);
    not_variadic(cx, reward);
    sequence_first(cx, reward);
    params_marked(cx, reward);
    returns_a_score(cx, reward);
    range_not_empty(cx, reward);
    name_is_snake_case(cx, reward);
}

/// Rewards are scored synchronously, inside rayon's thread pool.
fn not_async(cx: &Ctxt, reward: &RewardFn) {
    if let Some(asyncness) = &reward.item.sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "a #[reward] fn cannot be async: rewards are scored synchronously on rayon's threads; \
             block on the future inside a plain fn",
        );
    }
}

/// The generated impl calls the fn in safe code, so it could not uphold an `unsafe fn`'s contract.
fn not_unsafe(cx: &Ctxt, reward: &RewardFn) {
    if let Some(unsafety) = &reward.item.sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            "a #[reward] fn cannot be unsafe: the generated `Reward` impl calls it from safe code",
        );
    }
}

/// One struct, one `Reward` impl: type and const parameters have no value to take. Lifetimes are fine.
fn not_generic(cx: &Ctxt, reward: &RewardFn) {
    for param in &reward.item.sig.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            cx.error_spanned_by(
                param,
                format!(
                    "a #[reward] fn cannot be generic: `{}` implements `Reward` for one concrete fn; \
                     make the parameter a `#[param]` or write one fn per type",
                    reward.type_name
                ),
            );
        }
    }
}

/// The macro writes the struct; a method already has one.
fn free_fn(cx: &Ctxt, reward: &RewardFn) {
    if let Some(receiver) = &reward.receiver {
        cx.error_spanned_by(
            receiver,
            format!(
                "a #[reward] fn cannot take `self`: the macro generates the struct (`{}`); \
                 write a free fn and mark the fields as `#[param] name: Type`",
                reward.type_name
            ),
        );
    }
}

fn not_variadic(cx: &Ctxt, reward: &RewardFn) {
    if let Some(variadic) = &reward.item.sig.variadic {
        cx.error_spanned_by(variadic, "a #[reward] fn cannot be variadic");
    }
}

/// The first argument is what is scored: one sequence, or the whole batch under `batched`.
fn sequence_first(cx: &Ctxt, reward: &RewardFn) {
    let batched = reward.options.batched.is_some();
    let Some(sequence) = &reward.sequence else {
        if reward.receiver.is_none() {
            let expected = if batched {
                "batch: &[&[usize]]"
            } else {
                "seq: &[usize]"
            };
            cx.syn_error(syn::Error::new(
                reward.item.sig.paren_token.span.join(),
                format!("a #[reward] fn takes the sequence to score as its first argument: `{expected}`"),
            ));
        }
        return;
    };
    if let Some(marker) = &sequence.marked {
        cx.error_spanned_by(
            marker,
            "the first argument is the sequence being scored, not a `#[param]`: \
             put the sequence first and the parameters after it",
        );
    }
    let found = strip_spaces(&sequence.ty);
    match (&sequence.shape, batched) {
        (Shape::One(_) | Shape::Batch(_), _) if reward.options.failed => {}
        (Shape::One(_), false) | (Shape::Batch(_), true) => {}
        (Shape::One(_), true) => cx.error_spanned_by(
            &sequence.ty,
            format!(
                "a #[reward(batched)] fn takes the whole batch first: `&[&[usize]]` or `&[&[u32]]`, found `{found}`"
            ),
        ),
        (Shape::Batch(_), false) => cx.error_spanned_by(
            &sequence.ty,
            format!(
                "`{found}` is a batch: write `#[reward(batched)]` to score it at once, \
                 or take one sequence `&[usize]`"
            ),
        ),
        (Shape::Other, _) => {
            let expected = if batched {
                "`&[&[usize]]` or `&[&[u32]]`"
            } else {
                "`&[usize]` or `&[u32]`"
            };
            cx.error_spanned_by(
                &sequence.ty,
                format!("the first argument is the sequence being scored: expected {expected}, found `{found}`"),
            );
        }
    }
}

/// Every argument after the sequence is a field; `#[param]` says so where it is read.
fn params_marked(cx: &Ctxt, reward: &RewardFn) {
    if reward.sequence.as_ref().is_some_and(|s| s.marked.is_some()) {
        return; // The arguments are out of order; `sequence_first` says so.
    }
    for param in reward.params.iter().filter(|p| !p.marked) {
        cx.error_spanned_by(
            &param.original,
            format!(
                "argument `{}` needs `#[param]`: every argument after the sequence becomes a field of `{}`",
                param.ident, reward.type_name
            ),
        );
    }
}

/// `()` or `impl Trait` cannot be a score (other types are checked by the compiler, see the module doc).
fn returns_a_score(cx: &Ctxt, reward: &RewardFn) {
    let expected = if reward.options.batched.is_some() {
        "`-> Vec<f32>` or `-> Vec<f64>`, one score per sequence"
    } else {
        "`-> f32` or `-> f64`"
    };
    match &reward.item.sig.output {
        ReturnType::Default => cx.error_spanned_by(
            &reward.item.sig.ident,
            format!("a #[reward] fn returns the score: {expected}"),
        ),
        ReturnType::Type(_, ty) if matches!(**ty, Type::ImplTrait(_)) => cx.error_spanned_by(
            ty,
            format!("a #[reward] fn returns a concrete score type: {expected}"),
        ),
        ReturnType::Type(..) => {}
    }
}

/// `evaluate` rejects every value of an empty range.
fn range_not_empty(cx: &Ctxt, reward: &RewardFn) {
    let Some(bounds) = &reward.options.range else {
        return;
    };
    if let (Some(min), Some(max)) = (bounds.min, bounds.max) {
        if min > max {
            cx.error_spanned_by(
                &bounds.original,
                format!("empty range: the lower bound {min:?} exceeds the upper bound {max:?}"),
            );
        }
    }
}

/// The struct takes the UpperCamelCase name; a fn already named so would clash with it.
fn name_is_snake_case(cx: &Ctxt, reward: &RewardFn) {
    if reward.item.sig.ident == reward.type_name {
        cx.error_spanned_by(
            &reward.item.sig.ident,
            format!(
                "name the fn in snake_case: #[reward] generates a type `{}` from it",
                reward.type_name
            ),
        );
    }
}

/// A type as the user would write it: `&[u32]`, not `& [u32]`.
fn strip_spaces(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    text.replace("& ", "&")
        .replace(" [", "[")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
}
