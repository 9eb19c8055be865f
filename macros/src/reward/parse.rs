//! `#[reward(..)] fn ..` → typed IR. Syntax errors (unknown options, malformed bounds, arguments the
//! struct cannot hold) are recorded in the [`Ctxt`]; signature rules are checked later in `validate.rs`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, Lit, Pat, RangeLimits, Type, UnOp};

use crate::ctxt::Ctxt;
use crate::keys;
use crate::suggest;

/// A `#[reward]` fn, its options and its arguments.
pub struct RewardFn {
    /// The user's fn with `#[param]` markers removed: re-emitted as written.
    pub item: ItemFn,
    /// The options inside `#[reward(..)]`.
    pub options: Options,
    /// The `self` receiver, if the user wrote one (an error).
    pub receiver: Option<syn::Receiver>,
    /// The first typed argument: the sequence (or batch) being scored.
    pub sequence: Option<Sequence>,
    /// The arguments after the sequence: fields of the generated struct.
    pub params: Vec<Param>,
    /// UpperCamelCase of the fn name, at the fn name's span.
    pub type_name: Ident,
}

/// `#[reward(batched, range = 0.0..=1.0, name = "gc")]`.
#[derive(Default)]
pub struct Options {
    /// `batched`, at its span.
    pub batched: Option<Span>,
    /// `range = ..`.
    pub range: Option<Bounds>,
    /// `name = ".."`.
    pub name: Option<syn::LitStr>,
    /// Whether an option was unknown or malformed: then whether `batched` was meant is unknown,
    /// and the checks that depend on it stay silent.
    pub failed: bool,
}

/// Declared bounds; a missing side is unbounded.
pub struct Bounds {
    /// Lower bound.
    pub min: Option<f64>,
    /// Upper bound.
    pub max: Option<f64>,
    /// The range as written, for spans.
    pub original: Expr,
}

/// The sequence argument.
pub struct Sequence {
    /// Its type as written.
    pub ty: Type,
    /// Its shape: `&[X]`, `&[&[X]]` or something else.
    pub shape: Shape,
    /// A `#[param]` the user put on it (an error).
    pub marked: Option<syn::Attribute>,
}

/// The shape of the sequence argument's type.
pub enum Shape {
    /// `&[X]`: one sequence of tokens `X`.
    One(Type),
    /// `&[&[X]]`: a batch of sequences of tokens `X`.
    Batch(Type),
    /// Anything else (an error).
    Other,
}

/// An argument after the sequence: a field of the generated struct.
pub struct Param {
    /// Field name.
    pub ident: Ident,
    /// Field type: `Vec<T>` for `&[T]`, `String` for `&str`, `T` for `&T` and `T`.
    pub field_ty: Type,
    /// Whether the fn borrows the field (`&self.x`) or gets a clone (`Clone::clone(&self.x)`).
    pub by_ref: bool,
    /// Whether the user marked it `#[param]`.
    pub marked: bool,
    /// The argument as written, for spans.
    pub original: FnArg,
}

/// Parses the attribute's options and the fn. `Err` only when the item is not a fn at all.
pub fn reward_fn(cx: &Ctxt, args: TokenStream, item: TokenStream) -> syn::Result<RewardFn> {
    let mut item: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[reward] applies to a free fn: `fn gc_content(seq: &[usize]) -> f64 { .. }`",
        )
    })?;
    let options = options(cx, args);
    let type_name = Ident::new(
        &upper_camel(&item.sig.ident.to_string()),
        item.sig.ident.span(),
    );
    let mut receiver = None;
    let mut sequence = None;
    let mut params = Vec::new();
    for arg in &mut item.sig.inputs {
        let marked = take_param_marker(cx, arg);
        match arg {
            FnArg::Receiver(r) => receiver = Some(r.clone()),
            FnArg::Typed(typed) if sequence.is_none() => {
                sequence = Some(Sequence {
                    ty: (*typed.ty).clone(),
                    shape: shape(&typed.ty),
                    marked,
                });
            }
            FnArg::Typed(typed) => {
                let original = FnArg::Typed(typed.clone());
                if let Some(param) = param(cx, typed, marked.is_some(), original) {
                    params.push(param);
                }
            }
        }
    }
    Ok(RewardFn {
        item,
        options,
        receiver,
        sequence,
        params,
        type_name,
    })
}

fn options(cx: &Ctxt, args: TokenStream) -> Options {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.get_ident().map(ToString::to_string);
        let duplicate = |seen: bool| {
            if seen {
                cx.error_spanned_by(
                    &meta.path,
                    format!("duplicate option `{}`", key.as_deref().unwrap_or("")),
                );
            }
        };
        match key.as_deref() {
            Some(keys::BATCHED) => {
                duplicate(options.batched.is_some());
                if meta.input.peek(syn::Token![=]) {
                    cx.error_spanned_by(
                        &meta.path,
                        "`batched` takes no value: write `#[reward(batched)]`",
                    );
                    meta.value()?.parse::<Expr>()?;
                }
                options.batched = Some(meta.path.span());
            }
            Some(keys::RANGE) => {
                duplicate(options.range.is_some());
                let expr: Expr = meta.value()?.parse()?;
                options.range = bounds(cx, expr);
            }
            Some(keys::NAME) => {
                duplicate(options.name.is_some());
                options.name = Some(meta.value()?.parse()?);
            }
            _ => {
                options.failed = true;
                let path = &meta.path;
                let word = key.unwrap_or_else(|| quote::quote!(#path).to_string().replace(' ', ""));
                cx.error_spanned_by(
                    &meta.path,
                    format!(
                        "unknown option `{word}`{}\naccepted options: {}",
                        suggest::hint(&word, keys::REWARD_OPTIONS),
                        keys::REWARD_OPTIONS_SYNTAX
                    ),
                );
                // Skip the unknown option's value so the options after it are still read.
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<Expr>()?;
                } else if meta.input.peek(syn::token::Paren) {
                    meta.input.parse::<proc_macro2::Group>()?;
                }
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        options.failed = true;
        cx.syn_error(error);
    }
    options
}

/// `min..=max`, `min..` or `..=max`, with number literals (optionally negated) as bounds.
fn bounds(cx: &Ctxt, expr: Expr) -> Option<Bounds> {
    let Expr::Range(range) = &expr else {
        cx.error_spanned_by(
            &expr,
            "expected a range of number literals: `range = min..=max`, `min..` or `..=max`",
        );
        return None;
    };
    if let (RangeLimits::HalfOpen(dots), Some(_)) = (&range.limits, &range.end) {
        cx.error_spanned_by(dots, "declared bounds are inclusive: write `min..=max`");
        return None;
    }
    if range.start.is_none() && range.end.is_none() {
        cx.error_spanned_by(
            &expr,
            "`..` declares no bound: write `min..=max`, `min..` or `..=max`",
        );
        return None;
    }
    let min = range.start.as_deref().map(|e| number(cx, e));
    let max = range.end.as_deref().map(|e| number(cx, e));
    Some(Bounds {
        min: min.map(|m| m.unwrap_or(f64::NEG_INFINITY)),
        max: max.map(|m| m.unwrap_or(f64::INFINITY)),
        original: expr,
    })
}

/// A number literal, `-` a number literal, or either in parentheses.
fn number(cx: &Ctxt, expr: &Expr) -> Option<f64> {
    let value = match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok(),
            Lit::Int(i) => i.base10_parse::<f64>().ok(),
            _ => None,
        },
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => {
            return number(cx, &unary.expr).map(|v| -v)
        }
        Expr::Paren(paren) => return number(cx, &paren.expr),
        _ => None,
    };
    match value {
        None => cx.error_spanned_by(
            expr,
            "a range bound must be a number literal, such as `0.0` or `-1`",
        ),
        // `1e400` would silently be no bound (or, as a lower bound, refuse every value).
        Some(v) if v.is_infinite() => cx.error_spanned_by(
            expr,
            "this literal is beyond f64's range: leave the side out for no bound (`min..`, `..=max`)",
        ),
        Some(_) => {}
    }
    value
}

/// Removes `#[param]` from the argument, returning it.
fn take_param_marker(cx: &Ctxt, arg: &mut FnArg) -> Option<syn::Attribute> {
    let attrs = match arg {
        FnArg::Typed(typed) => &mut typed.attrs,
        FnArg::Receiver(receiver) => &mut receiver.attrs,
    };
    let index = attrs.iter().position(|a| a.path().is_ident(keys::PARAM))?;
    let attr = attrs.remove(index);
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        cx.error_spanned_by(&attr, "`#[param]` takes no arguments");
    }
    Some(attr)
}

fn shape(ty: &Type) -> Shape {
    match slice_elem(ty) {
        Some(elem) => match slice_elem(elem) {
            Some(token) => Shape::Batch(token.clone()),
            None => Shape::One(elem.clone()),
        },
        None => Shape::Other,
    }
}

/// `X` in `&[X]` (any lifetime, not `&mut`).
fn slice_elem(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Group(group) => slice_elem(&group.elem),
        Type::Reference(reference) if reference.mutability.is_none() => match &*reference.elem {
            Type::Slice(slice) => Some(&slice.elem),
            _ => None,
        },
        _ => None,
    }
}

/// The field for an argument after the sequence; `None` (with an error) if no field can hold it.
fn param(cx: &Ctxt, typed: &syn::PatType, marked: bool, original: FnArg) -> Option<Param> {
    let ident = match &*typed.pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => pat.ident.clone(),
        pat => {
            cx.error_spanned_by(
                pat,
                "a #[param] needs a plain name: it becomes a field of the reward's struct",
            );
            return None;
        }
    };
    let (field_ty, by_ref): (Type, bool) = match &*typed.ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            cx.error_spanned_by(
                &typed.ty,
                "a #[param] cannot be `&mut`: rewards are shared across threads and score through `&self`",
            );
            return None;
        }
        Type::Reference(reference) => match &*reference.elem {
            Type::Slice(slice) => {
                let elem = &slice.elem;
                (syn::parse_quote!(::std::vec::Vec<#elem>), true)
            }
            Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => {
                (syn::parse_quote!(::std::string::String), true)
            }
            elem => (elem.clone(), true),
        },
        Type::ImplTrait(_) => {
            cx.error_spanned_by(
                &typed.ty,
                "a #[param] cannot be `impl Trait`: it becomes a field of the reward's struct, which needs a concrete type",
            );
            return None;
        }
        ty => (ty.clone(), false),
    };
    Some(Param {
        ident,
        field_ty,
        by_ref,
        marked,
        original,
    })
}

/// `gc_content` → `GcContent`, `has_motif2` → `HasMotif2`, `r#loop` → `Loop`.
pub fn upper_camel(snake: &str) -> String {
    snake
        .trim_start_matches("r#")
        .split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_upper_camel_case() {
        assert_eq!(upper_camel("gc_content"), "GcContent");
        assert_eq!(upper_camel("has_motif2"), "HasMotif2");
        assert_eq!(upper_camel("_private__score"), "PrivateScore");
        assert_eq!(upper_camel("r#loop"), "Loop");
    }
}
