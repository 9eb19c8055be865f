//! The expand stage's leaf: the tokens of the IR values both modes emit (numbers, the graph and
//! schedule, samplers, neighbour weights, clean scores, the optimiser's fields, the run options, the
//! reward, the `build` and `schedule` constructors). `expand.rs` (two loops) and `flow_expand.rs`
//! (one) import it; it imports neither, so the two expansions share code without a circle.
//!
//! Every value starts from the core's: `<T as Default>::default()`, `FinetuneConfig::new`,
//! `SingleLoopConfig::default()`, `RunOptions::default()`, a constructor such as `Adaptive::new`, and
//! sets only what the user wrote. The few options whose core type has no default for them (a field of
//! an enum variant, a constructor argument) take the constants below, documented in the table of the
//! `policy!` entry point.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ir::{Clean, Float, GradClip, LrSchedule, Policy, Sampler, SamplerKind, Weights};

/// `Snis(draws = 2)`: `NeighbourWeights::Snis` has no default draw count.
pub const SNIS_DRAWS: usize = 2;
/// `MaskedSubset(positions = 4)`: `CleanScores::MaskedSubset` has no default; also `Events` and
/// `PathSubset`, which read positions alike.
pub const SUBSET_POSITIONS: usize = 4;

/// What the generated constructors do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// Build the run.
    Build,
    /// `unreachable!()`: the fallback beside compile errors.
    Stub,
}

/// The body of a constructor beside compile errors: `unreachable!()`, after using `args`.
pub fn stub(args: &[&str]) -> TokenStream {
    let args = args
        .iter()
        .map(|a| syn::Ident::new(a, proc_macro2::Span::call_site()));
    quote!(#(let _ = #args;)* ::std::unreachable!("policy! did not expand"))
}

/// An `f64`: a whole literal as an `f64` literal (at its span), anything else as written.
pub fn float(value: &Float) -> TokenStream {
    match value {
        Float::Whole(v, span) => {
            let literal = Literal::f64_suffixed(*v);
            quote_spanned!(*span=> #literal)
        }
        Float::Written(e) => quote!(#e),
    }
}

/// A `usize` option given or its DSL default.
pub fn count_or(value: Option<&syn::Expr>, default: usize) -> TokenStream {
    match value {
        Some(v) => quote!(#v),
        None => {
            let default = Literal::usize_unsuffixed(default);
            quote!(#default)
        }
    }
}

/// `kl`'s value as an `f64` (a number literal becomes an `f64` literal).
pub fn kl(value: &syn::Expr) -> TokenStream {
    match crate::call::number(value) {
        Some((v, _)) => {
            let v = Literal::f64_suffixed(v);
            quote!(#v)
        }
        None => quote!(#value),
    }
}

/// `Some(value)` or `None`.
pub fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::std::option::Option::Some(#v)),
        None => quote!(::std::option::Option::None),
    }
}

/// The graph's type: `Absorbing` unless given.
pub fn graph_type(policy: &Policy) -> TokenStream {
    match &policy.graph {
        Some(g) => quote!(::sepo::__private::#g),
        None => quote!(::sepo::__private::Absorbing),
    }
}

/// The schedule's type: `LogLinear` unless given.
pub fn schedule_type(policy: &Policy) -> TokenStream {
    match &policy.schedule {
        Some(s) => {
            let path = &s.path;
            quote!(#path)
        }
        None => quote!(::sepo::__private::LogLinear),
    }
}

/// `schedule()`: the schedule's `Default` with the given fields, at the type's span.
pub fn schedule_fn(
    policy: &Policy,
    vis: &syn::Visibility,
    bodies: Bodies,
    doc: &str,
) -> TokenStream {
    let ty = schedule_type(policy);
    let body = match (bodies, &policy.schedule) {
        (Bodies::Stub, _) => stub(&[]),
        (Bodies::Build, None) => quote!(<#ty as ::std::default::Default>::default()),
        (Bodies::Build, Some(s)) if s.fields.is_empty() => {
            let path = &s.path;
            quote_spanned!(path.span()=> <#path as ::std::default::Default>::default())
        }
        (Bodies::Build, Some(s)) => {
            let path = &s.path;
            let fields = s.fields.iter().map(|(key, v)| {
                let v = float(v);
                quote!(#key: #v)
            });
            // The user may have named every field: the struct update is then needless, not wrong.
            quote_spanned!(path.span()=>
                #[allow(clippy::needless_update)]
                let schedule = #path { #(#fields,)* ..<#path as ::std::default::Default>::default() };
                schedule
            )
        }
    };
    quote! {
        #[doc = #doc]
        #vis fn schedule() -> #ty {
            #body
        }
    }
}

/// A sampler's `SamplerKind`. `Tweedie(..)`/`Euler(..)` set their options over the settings of the
/// default sampler (`FinetuneConfig::new`'s: Tweedie, 32 steps); `FirstHitting(..)` over
/// `SamplerConfig::default()` (it reads only `max_batch`).
pub fn sampler(sampler: &Sampler) -> TokenStream {
    let root = quote!(::sepo::__private);
    let mut fields = Vec::new();
    let (variant, base) = match sampler.kind {
        SamplerKind::Grid => {
            let predictor = &sampler.name;
            fields.push(quote!(predictor: #root::Predictor::#predictor));
            let base = quote!(#root::sampler_settings(#root::default_sampler()));
            (quote!(Grid), base)
        }
        SamplerKind::FirstHitting => {
            let base = quote!(<#root::SamplerConfig as ::std::default::Default>::default());
            (quote!(FirstHitting), base)
        }
    };
    fields.extend(sampler.steps.iter().map(|s| quote!(steps: #s)));
    fields.extend(sampler.eps.iter().map(|e| {
        let e = float(e);
        quote!(eps: #e)
    }));
    fields.extend(sampler.max_batch.iter().map(|m| quote!(max_batch: #m)));
    let config = if fields.is_empty() {
        base
    } else {
        quote!(#root::SamplerConfig { #(#fields,)* ..#base })
    };
    quote!(#root::SamplerKind::#variant(#config))
}

/// A `NeighbourWeights` value.
pub fn weights(weights: &Weights) -> TokenStream {
    match weights {
        Weights::Unit(name) => quote!(::sepo::__private::NeighbourWeights::#name),
        Weights::Snis { draws } => {
            let draws = count_or(draws.as_ref(), SNIS_DRAWS);
            quote!(::sepo::__private::NeighbourWeights::Snis { draws: #draws })
        }
    }
}

/// A `CleanScores` value.
pub fn clean(clean: &Clean) -> TokenStream {
    match clean {
        Clean::Unit(name) => quote!(::sepo::__private::CleanScores::#name),
        Clean::MaskedSubset { positions } => {
            let positions = count_or(positions.as_ref(), SUBSET_POSITIONS);
            quote!(::sepo::__private::CleanScores::MaskedSubset { positions: #positions })
        }
    }
}

/// `config.optimizer.<field> = value;` for each field of `optimizer:` given: the rest stay the mode's
/// default optimiser's.
pub fn optimizer(policy: &Policy) -> Vec<TokenStream> {
    let fields = policy.optimizer.iter().flatten();
    fields
        .map(|(field, value)| {
            let value = float(value);
            quote!(config.optimizer.#field = #value;)
        })
        .collect()
}

/// `config.grad_clip = ..;` when given.
pub fn grad_clip(policy: &Policy) -> Option<TokenStream> {
    let value = match policy.grad_clip.as_ref()? {
        GradClip::Off => quote!(::std::option::Option::None),
        GradClip::Bound(v) => {
            let v = float(v);
            quote!(::std::option::Option::Some(#v))
        }
        GradClip::Expr(e) => quote_spanned!(e.span()=> ::std::option::Option::<f64>::from(#e)),
    };
    Some(quote!(config.grad_clip = #value;))
}

/// `let config = <start>; <sets> Ok(config)`, `mut` only when something is set.
pub fn config_body(start: TokenStream, sets: &[TokenStream]) -> TokenStream {
    let mutable = if sets.is_empty() {
        quote!()
    } else {
        quote!(mut)
    };
    quote! {
        let #mutable config = #start;
        #(#sets)*
        ::std::result::Result::Ok(config)
    }
}

/// The run's total rounds (`iterations`) as an expression: the given one or `RunOptions::default()`'s.
pub fn rounds(policy: &Policy) -> TokenStream {
    match policy.plain("iterations") {
        Some(e) => quote!(#e),
        None => {
            quote!(<::sepo::__private::RunOptions as ::std::default::Default>::default().rounds)
        }
    }
}

/// `let options = RunOptions::default()` with `iterations`, `progress`, `metrics` and
/// `checkpoint_dir` set where given.
pub fn run_options(policy: &Policy) -> TokenStream {
    let mut sets = Vec::new();
    if let Some(e) = policy.plain("iterations") {
        sets.push(quote!(options.rounds = #e;));
    }
    if let Some(e) = policy.plain("progress") {
        sets.push(quote!(options.progress = #e;));
    }
    for (key, field) in [("metrics", "metrics"), ("checkpoint_dir", "checkpoint")] {
        if let Some(e) = policy.plain(key) {
            let field = syn::Ident::new(field, proc_macro2::Span::call_site());
            let path = quote_spanned!(e.span()=> ::std::path::PathBuf::from(#e));
            sets.push(quote!(options.#field = ::std::option::Option::Some(#path);));
        }
    }
    let mutable = if sets.is_empty() {
        quote!()
    } else {
        quote!(mut)
    };
    quote! {
        let #mutable options = <::sepo::__private::RunOptions as ::std::default::Default>::default();
        #(#sets)*
    }
}

/// `boxed_reward(expr)` at the expression's span: a value that is not a `Reward` is underlined there.
pub fn boxed(reward: &syn::Expr) -> TokenStream {
    quote_spanned!(reward.span()=> ::sepo::__private::boxed_reward(#reward))
}

/// `build(dev)` (given `model:`): loads the checkpoint onto `dev`, then `Self::build_with(model)`;
/// `run` names the returned type for a model type, `then` ends the doc sentence.
pub fn build_from_checkpoint(
    policy: &Policy,
    bodies: Bodies,
    vis: &syn::Visibility,
    run: &dyn Fn(TokenStream) -> TokenStream,
    then: &str,
) -> Option<TokenStream> {
    policy.model.as_ref().map(|m| {
        let (kind, dir) = (&m.kind, &m.dir);
        let model = quote!(::sepo::__private::#kind<f32, D>);
        let ty = run(model.clone());
        let doc = format!(
            " Loads the `{kind}` checkpoint from `{}` onto `dev` and {then}.",
            quote!(#dir).to_string().trim_matches('"')
        );
        let body = match bodies {
            Bodies::Build => quote! {
                let checkpoint = ::sepo::__private::Checkpoint::new(#dir);
                let (model, _) = checkpoint.load_model::<#model>(dev)?;
                Self::build_with(model)
            },
            Bodies::Stub => stub(&["dev"]),
        };
        quote! {
            #[doc = #doc]
            #vis fn build<D: ::sepo::__private::Kernels<f32>>(dev: &D) -> ::sepo::Result<#ty> {
                #body
            }
        }
    })
}

/// `InvSqrt(scale = 100)`: `LrSchedule::InvSqrt` has no default scale (`SingleLoopConfig::default()`'s
/// schedule is `InvSqrt { scale: 100.0 }`).
const INV_SQRT_SCALE: f64 = 100.0;

/// `config.lr_schedule = ..;` when the policy sets `lr_schedule` (either mode: one `LrSchedule`).
/// `WarmupCosine` has no warm-up and decays to 0 unless given; `Linear` reaches 0 at `iterations`.
pub fn lr_schedule(policy: &Policy) -> Option<TokenStream> {
    let path = quote!(::sepo::__private::LrSchedule);
    let value = match policy.lr_schedule.as_ref()? {
        LrSchedule::Constant => quote!(#path::Constant),
        LrSchedule::Warmup { warmup } => quote!(#path::Warmup { warmup: #warmup }),
        LrSchedule::WarmupCosine(options) => {
            let total = &options.total;
            let warmup = count_or(options.warmup.as_ref(), 0);
            let min_ratio = options
                .min_ratio
                .as_ref()
                .map_or_else(|| quote!(0.0), float);
            quote!(#path::WarmupCosine { warmup: #warmup, total: #total, min_ratio: #min_ratio })
        }
        LrSchedule::Linear => {
            let total = rounds(policy);
            quote!(#path::Linear { total: #total })
        }
        LrSchedule::InvSqrt { scale } => {
            let scale = scale.as_ref().map_or_else(
                || {
                    let s = Literal::f64_unsuffixed(INV_SQRT_SCALE);
                    quote!(#s)
                },
                float,
            );
            quote!(#path::InvSqrt { scale: #scale })
        }
    };
    Some(quote!(config.lr_schedule = #value;))
}
