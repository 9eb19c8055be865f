//! `policy!`: a declarative fine-tuning configuration becomes a unit struct whose constructors build
//! a `sepo::train::Run` (a `Finetuner` plus rounds, progress bar, metrics file and checkpoint), or with
//! `mode: SingleLoop` a `sepo::train::FlowRun` (the gradient-flow single loop). Both modes emit the
//! same constructors: `build(&dev)` (given `model:`), `build_with(model)`, `config(seq_len)` and
//! `schedule()`.
//!
//! parse (`parse.rs`: keys read into the typed IR of `ir.rs`, errors collected; `training.rs` for the
//! optimisation-loop keys, `flow.rs` for the single loop's values, `shared.rs` for values both read,
//! `read.rs` for one number or name) → validate (`validate.rs`: rules across keys, the mode's
//! included; `literals.rs`: number literals against the core's ranges) → expand (`expand.rs` for two
//! loops, `flow_expand.rs` for one, `emit.rs` for the values both emit). Only the expand stage names
//! `::sepo::__private` paths; the IR holds the user's tokens and which variant they chose.
//!
//! Imports within `policy/` (`a → b`: `a` uses `b`):
//!
//! ```text
//! before, three circles (⇄):
//!   mod         → parse, validate, expand
//!   parse       ⇄ flow, training   (they used parse's readers; parse dispatched keys to them)
//!   validate    → literals → parse
//!   expand      ⇄ flow_expand      (expand dispatched by mode; flow_expand used expand's helpers)
//!
//! after, no circle; each stage has its leaf (`read` for parse, `emit` for expand) under `ir`:
//!   mod         → parse, validate, expand, flow_expand, emit (the mode picks the expansion)
//!   parse       → flow, training, shared, read, ir
//!   flow        → shared, read, ir
//!   training    → read, ir
//!   shared      → read, ir
//!   read        → ir
//!   validate    → literals, parse (`Item`), ir
//!   literals    → parse (`Item`), ir
//!   expand      → emit, parse (`Item`), ir
//!   flow_expand → emit, parse (`Item`), ir
//!   emit        → ir
//!   ir          → (nothing in `policy/`)
//! ```

mod emit;
mod expand;
mod flow;
mod flow_expand;
mod ir;
mod literals;
mod parse;
mod read;
mod shared;
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
        Ok(()) => (emit::Bodies::Build, TokenStream::new()),
        Err(errors) => (emit::Bodies::Stub, errors.into_compile_error()),
    };
    let structs = items.0.iter().zip(&policies).map(|(item, policy)| {
        if policy.single_loop() {
            flow_expand::item(item, policy, bodies)
        } else {
            expand::item(item, policy, bodies)
        }
    });
    quote::quote!(#(#structs)* #errors)
}
