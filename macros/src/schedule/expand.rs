//! Typed IR → a struct with `Default`, serde and `NoiseSchedule` impls. `σ̄` and `σ` are written as
//! plain `f64` arithmetic (`f64::ln(..)`), with only the parentheses precedence needs, and are also
//! shown in the struct's docs.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::ir::{precedence, Constant, Expr};
use super::parse::Item;

/// What `total` and `rate` do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// Compute `σ̄` and `σ`.
    Formulas,
    /// `unreachable!()`: the fallback beside compile errors, so uses of the struct do not cascade.
    Stub,
}

/// The struct for one schedule, `total = σ̄`, `rate = σ = dσ̄/dt`.
pub fn schedule(item: &Item, total: &Expr, rate: &Expr, bodies: Bodies) -> TokenStream {
    let Item {
        attrs, vis, name, ..
    } = item;
    // A repeated parameter is an error already reported; the stub keeps its first declaration.
    let params: Vec<_> = item
        .params
        .iter()
        .enumerate()
        .filter(|(i, p)| !item.params[..*i].iter().any(|q| q.name == p.name))
        .map(|(_, p)| p)
        .collect();
    let formulas = [
        String::new(),
        format!(" `σ̄(t) = {total}`"),
        String::new(),
        format!(" `σ(t) = dσ̄/dt = {rate}` (derived by `noise_schedule!`)"),
    ];
    let fields: Vec<_> = params.iter().map(|p| &p.name).collect();
    let field_docs = params.iter().map(|p| {
        if p.attrs.is_empty() {
            let default = p
                .default
                .as_ref()
                .map(|d| quote!(#d).to_string())
                .unwrap_or_default();
            let doc = format!(" Parameter `{}` (default `{default}`).", p.name);
            quote!(#[doc = #doc])
        } else {
            let attrs = &p.attrs;
            quote!(#(#attrs)*)
        }
    });
    let defaults = params.iter().map(|p| match &p.default {
        Some(default) => as_float(default),
        None => quote!(::std::default::Default::default()),
    });
    let body = if fields.is_empty() {
        quote!(;)
    } else {
        quote!({ #(#field_docs pub #fields: f64,)* })
    };
    let (total_fn, rate_fn) = match bodies {
        Bodies::Formulas => (method("total", total), method("rate", rate)),
        Bodies::Stub => {
            let stub = quote!(::std::unreachable!("noise_schedule! did not expand"));
            (
                quote!(fn total(&self, _t: f64) -> f64 { #stub }),
                quote!(fn rate(&self, _t: f64) -> f64 { #stub }),
            )
        }
    };
    quote! {
        #(#attrs)*
        #(#[doc = #formulas])*
        #[derive(
            ::std::fmt::Debug,
            ::std::clone::Clone,
            ::std::marker::Copy,
            ::std::cmp::PartialEq,
            ::sepo::__private::serde::Serialize,
            ::sepo::__private::serde::Deserialize,
        )]
        #[serde(crate = "::sepo::__private::serde")]
        #vis struct #name #body

        impl ::std::default::Default for #name {
            fn default() -> Self {
                Self { #(#fields: #defaults),* }
            }
        }

        impl ::sepo::__private::NoiseSchedule for #name {
            #total_fn
            #rate_fn
        }
    }
}

/// `fn name(&self, t: f64) -> f64 { let p = self.p; .. }`, binding only the parameters it reads
/// (and naming the argument `_t` when `t` does not occur), so the expansion compiles without warnings.
fn method(name: &str, e: &Expr) -> TokenStream {
    let name = format_ident!("{name}");
    let time = if e.uses_time() {
        format_ident!("t")
    } else {
        format_ident!("_t")
    };
    let bindings = e.params().into_iter().map(|p| {
        let p = format_ident!("{p}");
        quote!(let #p = self.#p;)
    });
    let value = tokens(e);
    quote! {
        fn #name(&self, #time: f64) -> f64 {
            #(#bindings)*
            #value
        }
    }
}

/// A default written as an integer literal (`sigma_max: f64 = 20`) becomes `20.0`, at its span.
fn as_float(default: &syn::Expr) -> TokenStream {
    match default {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) if int.suffix().is_empty() && int.base10_parse::<f64>().is_ok_and(f64::is_finite) => {
            let value = int.base10_parse::<f64>().unwrap_or_default();
            let mut literal = Literal::f64_unsuffixed(value);
            literal.set_span(int.span());
            quote!(#literal)
        }
        syn::Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Neg(_)) => {
            let inner = as_float(&unary.expr);
            let op = &unary.op;
            quote!(#op #inner)
        }
        other => quote_spanned!(other.span()=> #other),
    }
}

/// `e` as Rust tokens, with only the parentheses precedence needs.
pub fn tokens(e: &Expr) -> TokenStream {
    let operand = |e: &Expr, min: u8| {
        let inner = tokens(e);
        if precedence(e) < min {
            quote!((#inner))
        } else {
            inner
        }
    };
    match e {
        Expr::Num(v) => {
            let literal = Literal::f64_unsuffixed(v.abs());
            if *v < 0.0 {
                quote!(-#literal)
            } else {
                quote!(#literal)
            }
        }
        Expr::Const(Constant::Pi) => quote!(::std::f64::consts::PI),
        Expr::Const(Constant::E) => quote!(::std::f64::consts::E),
        Expr::Param(name) => {
            let ident = format_ident!("{name}");
            quote!(#ident)
        }
        Expr::Time => quote!(t),
        Expr::Neg(a) => {
            let a = operand(a, 4);
            quote!(-#a)
        }
        Expr::Add(a, b) => {
            let (a, b) = (operand(a, 1), operand(b, 2));
            quote!(#a + #b)
        }
        Expr::Sub(a, b) => {
            let (a, b) = (operand(a, 1), operand(b, 2));
            quote!(#a - #b)
        }
        Expr::Mul(a, b) => {
            let (a, b) = (operand(a, 2), operand(b, 3));
            quote!(#a * #b)
        }
        Expr::Div(a, b) => {
            let (a, b) = (operand(a, 2), operand(b, 3));
            quote!(#a / #b)
        }
        Expr::Powi(a, n) => {
            let (a, n) = (tokens(a), Literal::i32_unsuffixed(*n));
            quote!(f64::powi(#a, #n))
        }
        Expr::Powf(a, b) => {
            let (a, b) = (tokens(a), tokens(b));
            quote!(f64::powf(#a, #b))
        }
        Expr::Call(func, a) => {
            let (func, a) = (format_ident!("{}", func.name()), tokens(a));
            quote!(f64::#func(#a))
        }
    }
}
