//! `policy!`: a declarative fine-tuning configuration becomes a unit struct whose constructors build
//! a `sepo::train::Run` (a `Finetuner` plus rounds, progress bar, metrics file and checkpoint).
//!
//! With `mode: SingleLoop` the constructors build a `sepo::train::FlowRun` (the gradient-flow single
//! loop) instead.
//!
//! parse (`parse.rs`: keys read into [`parse::Policy`], errors collected; `training.rs` for the
//! optimisation-loop keys, `flow.rs` for the single loop's values) → validate (`validate.rs`:
//! rules across keys, the mode's included) → expand (`expand.rs`; `flow_expand.rs` for the single
//! loop).

mod expand;
mod flow;
mod flow_expand;
mod literals;
mod parse;
mod training;
mod validate;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

/// The expansion of `policy! { input }`. On error: each struct with stub constructors of the same
/// signatures (so its uses do not cascade) and every error.
pub fn policy(input: TokenStream) -> TokenStream {
    let items: parse::Items = match syn::parse2(input) {
        Ok(items) => items,
        Err(error) => return error.into_compile_error(),
    };
    let cx = Ctxt::new();
    let policies: Vec<_> = items
        .0
        .iter()
        .map(|item| {
            let policy = parse::policy(&cx, item);
            validate::check(&cx, item, &policy);
            policy
        })
        .collect();
    let (bodies, errors) = match cx.check() {
        Ok(()) => (expand::Bodies::Build, TokenStream::new()),
        Err(errors) => (expand::Bodies::Stub, errors.into_compile_error()),
    };
    let structs = items
        .0
        .iter()
        .zip(&policies)
        .map(|(item, policy)| expand::item(item, policy, bodies));
    quote::quote!(#(#structs)* #errors)
}
