//! `policy! { .. }` → typed IR. The grammar, one or more items:
//!
//! ```text
//! item  := attribute* visibility Name "{" (key ":" value),* "}"
//! value := a Rust expression; its form depends on the key (the table in the entry point's docs):
//!          Name | Name(option = value, ..) for models, graphs, schedules, samplers, log-probabilities
//!          and optimisers; an estimator mixture or any `Estimator` value; any `Reward` expression;
//!          numbers, strings and bools for the rest
//! ```
//!
//! Every key is read into [`Policy`], recording unknown keys (with "did you mean"), repeated keys and
//! values of the wrong form at their spans. Rules across keys are checked in `validate.rs`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token};

use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::estimator::parse::{self as estimator, Mixture};
use crate::keys;
use crate::suggest;

use super::{flow, training};

/// Every item of one `policy!` invocation.
pub struct Items(pub Vec<Item>);

/// `/// docs  pub DnaPolicy { key: value, .. }`.
pub struct Item {
    /// Attributes and docs, copied onto the struct.
    pub attrs: Vec<syn::Attribute>,
    /// Visibility of the struct and its constructors.
    pub vis: syn::Visibility,
    /// The struct's name.
    pub name: Ident,
    /// The entries as written.
    pub entries: Vec<(Ident, Expr)>,
}

impl Parse for Items {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut items = Vec::new();
        while !input.is_empty() {
            items.push(input.parse()?);
        }
        Ok(Items(items))
    }
}

impl Parse for Item {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis = input.parse()?;
        let name = input.parse()?;
        let content;
        syn::braced!(content in input);
        let entries = Punctuated::<Entry, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        Ok(Item {
            attrs,
            vis,
            name,
            entries,
        })
    }
}

struct Entry {
    key: Ident,
    value: Expr,
}

impl Parse for Entry {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = input.parse()?;
        input.parse::<Token![:]>()?;
        let value = input.parse()?;
        Ok(Entry { key, value })
    }
}

/// A policy's keys, read. Values that stay expressions keep the user's tokens (and spans).
#[derive(Default)]
pub struct Policy {
    /// `model: Transformer(checkpoint = "..")`: the model type's name and the directory.
    pub model: Option<(Ident, Expr)>,
    /// `graph: Absorbing | Uniform`.
    pub graph: Option<Ident>,
    /// `schedule: Type | Type(field = value, ..)`: its type and value.
    pub schedule: Option<(syn::Path, TokenStream)>,
    /// `sampler: ..`: the `SamplerKind` value, and whether it is first-hitting (at its name).
    pub sampler: Option<(TokenStream, Option<Ident>)>,
    /// `reward: expr`.
    pub reward: Option<Expr>,
    /// `eval_reward: expr`.
    pub eval_reward: Option<Expr>,
    /// `log_prob: ..`: the `LogProb` value.
    pub log_prob: Option<TokenStream>,
    /// `estimator: ..`.
    pub estimator: Option<EstimatorValue>,
    /// `optimizer: Adam(..)`: the `AdamW` fields given (the rest from the mode's default rate).
    pub optimizer: Option<Vec<TokenStream>>,
    /// `mode: TwoLoop | SingleLoop`, at its span.
    pub mode: Option<Ident>,
    /// `sampler: Flow(..)`: the single loop's chain.
    pub flow: Option<flow::Flow>,
    /// `log_prob: Ift(..)`: the single loop's estimator.
    pub ift: Option<flow::IftValue>,
    /// `lr_decay: ..`: the single loop's learning-rate decay.
    pub lr_decay: Option<flow::LrDecay>,
    /// `kl_mode: InReward | Path`: the `KlMode` value.
    pub kl_mode: Option<TokenStream>,
    /// `lr_schedule: ..`: the `LrSchedule` value.
    pub lr_schedule: Option<TokenStream>,
    /// `grad_clip: ..`: the `Option<f64>` value.
    pub grad_clip: Option<TokenStream>,
    /// `prompts: expr`, with its key (for spans).
    pub prompts: Option<(Ident, Expr)>,
    /// `allocation: ..`: the `Allocation` value and the strategy's name.
    pub allocation: Option<(TokenStream, Ident)>,
    /// Keys whose value is a plain expression (numbers, strings, bools), by name.
    pub plain: Vec<(String, Expr)>,
    /// Whether a key failed to read: cross-key rules that depend on it stay silent.
    pub failed: bool,
}

/// `estimator: ..`.
pub enum EstimatorValue {
    /// A mixture written inline: `grpo(clip = 0.2)`, `0.5 * ppo + 0.5 * reinforce`.
    Inline(Mixture),
    /// Any value implementing `Estimator`: a type from `estimator!`, `Mixture::grpo(0.2)`, ..
    Value(Expr),
}

impl Policy {
    /// Whether the policy is a gradient-flow single loop (`mode: SingleLoop`).
    pub fn single_loop(&self) -> bool {
        self.mode.as_ref().is_some_and(|m| m == "SingleLoop")
    }

    /// The plain expression given for `key`.
    pub fn plain(&self, key: &str) -> Option<&Expr> {
        self.plain.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// Reads every entry of `item`.
pub fn policy(cx: &Ctxt, item: &Item) -> Policy {
    let mut policy = Policy::default();
    for (i, (key, value)) in item.entries.iter().enumerate() {
        let word = key.to_string();
        if !keys::POLICY_KEYS.contains(&word.as_str()) {
            cx.error_spanned_by(
                key,
                format!(
                    "unknown key `{word}`{}\nkeys: {}",
                    suggest::hint(&word, keys::POLICY_KEYS),
                    suggest::list(keys::POLICY_KEYS)
                ),
            );
            continue;
        }
        if item.entries[..i].iter().any(|(k, _)| k == key) {
            cx.error_spanned_by(key, format!("duplicate key `{word}`"));
            continue;
        }
        let read = match word.as_str() {
            "model" => model(cx, value).map(|m| policy.model = Some(m)),
            "graph" => named(cx, value, "graph", keys::GRAPHS, "`Absorbing` or `Uniform`")
                .map(|g| policy.graph = Some(g.name)),
            "schedule" => schedule(cx, value).map(|s| policy.schedule = Some(s)),
            "sampler" if flow::is_call(value, keys::FLOW) => {
                flow::flow(cx, value).map(|f| policy.flow = Some(f))
            }
            "sampler" => sampler(cx, value, "sampler").map(|s| policy.sampler = Some(s)),
            "reward" => {
                policy.reward = Some(value.clone());
                Some(())
            }
            "eval_reward" => {
                policy.eval_reward = Some(value.clone());
                Some(())
            }
            "log_prob" if flow::is_call(value, keys::IFT) => {
                flow::ift(cx, value).map(|i| policy.ift = Some(i))
            }
            "log_prob" => log_prob(cx, value).map(|l| policy.log_prob = Some(l)),
            "mode" => named(cx, value, "mode", keys::MODES, "`TwoLoop` or `SingleLoop`").map(|m| {
                m.check_options(cx, &[], "");
                policy.mode = Some(m.name);
            }),
            "lr_decay" => flow::lr_decay(cx, value).map(|d| policy.lr_decay = Some(d)),
            "estimator" => {
                policy.estimator = Some(estimator_value(cx, value));
                Some(())
            }
            "optimizer" => optimizer(cx, value).map(|o| policy.optimizer = Some(o)),
            "kl_mode" => {
                named(cx, value, "kl_mode", keys::KL_MODES, "`InReward` or `Path`").map(|m| {
                    let name = m.name;
                    policy.kl_mode = Some(quote!(::sepo::__private::KlMode::#name));
                })
            }
            "lr_schedule" => training::lr_schedule(cx, value).map(|l| policy.lr_schedule = Some(l)),
            "grad_clip" => training::grad_clip(cx, value).map(|g| policy.grad_clip = Some(g)),
            "prompts" => {
                training::prompts(cx, value).map(|p| policy.prompts = Some((key.clone(), p)))
            }
            "allocation" => training::allocation(cx, value).map(|a| policy.allocation = Some(a)),
            _ => plain(cx, &word, value).map(|()| policy.plain.push((word, value.clone()))),
        };
        policy.failed |= read.is_none();
    }
    policy
}

/// `Name` or `Name(..)` with `Name` among `accepted`; else an error listing them.
pub(super) fn named(
    cx: &Ctxt,
    value: &Expr,
    key: &str,
    accepted: &[&str],
    syntax: &str,
) -> Option<Call> {
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

fn model(cx: &Ctxt, value: &Expr) -> Option<(Ident, Expr)> {
    let call = named(
        cx,
        value,
        "model",
        keys::MODELS,
        "`Transformer(checkpoint = \"dir\")` or `Mlp(checkpoint = \"dir\")`; \
         for a model built in code, leave `model` out and call `build_with(model)`",
    )?;
    call.check_options(cx, &["checkpoint"], "`checkpoint = \"dir\"`");
    match call.option("checkpoint") {
        Some(dir) => Some((call.name.clone(), dir.clone())),
        None => {
            cx.error_spanned_by(
                &call.original,
                format!(
                    "`{}` is loaded from a checkpoint: write `{}(checkpoint = \"dir\")`",
                    call.name, call.name
                ),
            );
            None
        }
    }
}

/// `Type` or `Type(field = value, ..)`: the built-ins and any `noise_schedule!` type (fields set by
/// name, the rest from `Default`).
fn schedule(cx: &Ctxt, value: &Expr) -> Option<(syn::Path, TokenStream)> {
    let (path, args) = match value {
        Expr::Path(path) => (path.path.clone(), None),
        Expr::Call(c) => match &*c.func {
            Expr::Path(path) => (path.path.clone(), Some(&c.args)),
            _ => (syn::Path::from(Ident::new("_", value.span())), None),
        },
        _ => (syn::Path::from(Ident::new("_", value.span())), None),
    };
    if path.is_ident("_") {
        cx.error_spanned_by(
            value,
            "`schedule` expects a schedule type, with fields set by name: `LogLinear(eps = 1e-3)`, \
             `Geometric`, or a type from `noise_schedule!`",
        );
        return None;
    }
    let mut fields = Vec::new();
    for arg in args.into_iter().flatten() {
        match arg {
            Expr::Assign(assign) => match &*assign.left {
                Expr::Path(key) if key.path.get_ident().is_some() => {
                    let key = key.path.get_ident().expect("checked");
                    let v = float_tokens(cx, &assign.right, &key.to_string())?;
                    fields.push(quote!(#key: #v));
                }
                left => {
                    cx.error_spanned_by(left, "expected a field name: `field = value`");
                    return None;
                }
            },
            other => {
                cx.error_spanned_by(other, "expected `field = value`");
                return None;
            }
        }
    }
    let tokens = if fields.is_empty() {
        quote_spanned!(path.span()=> <#path as ::std::default::Default>::default())
    } else {
        // The user may have named every field: the struct update is then needless, not wrong.
        quote_spanned!(path.span()=> {
            #[allow(clippy::needless_update)]
            let schedule = #path { #(#fields,)* ..<#path as ::std::default::Default>::default() };
            schedule
        })
    };
    Some((path, tokens))
}

/// `Tweedie(..) | Euler(..) | FirstHitting(..)`: the `SamplerKind` value, and the name when
/// first-hitting (which needs the absorbing graph).
/// `key` is `sampler` or the single loop's `init`, which names no `Flow`.
pub(super) fn sampler(cx: &Ctxt, value: &Expr, key: &str) -> Option<(TokenStream, Option<Ident>)> {
    let syntax = "`Tweedie(steps = 32)`, `Euler(steps = 32)` or `FirstHitting`";
    let syntax = if key == "sampler" {
        format!("{syntax} (or `Flow(..)` with `mode: SingleLoop`)")
    } else {
        syntax.to_string()
    };
    let call = named(cx, value, key, keys::SAMPLERS, &syntax)?;
    let first_hitting = call.name == "FirstHitting";
    if first_hitting {
        call.check_options(cx, &["max_batch"], "`max_batch = n`");
    } else {
        call.check_options(
            cx,
            &["steps", "eps", "max_batch"],
            "`steps = n`, `eps = t_min`, `max_batch = n`",
        );
    }
    let mut fields = Vec::new();
    if !first_hitting {
        let predictor = &call.name;
        fields.push(quote!(predictor: ::sepo::__private::Predictor::#predictor));
        let steps = match call.option("steps") {
            Some(v) => int_tokens(cx, v, "steps")?,
            None => quote!(32),
        };
        fields.push(quote!(steps: #steps));
        if let Some(v) = call.option("eps") {
            let v = float_tokens(cx, v, "eps")?;
            fields.push(quote!(eps: #v));
        }
    }
    if let Some(v) = call.option("max_batch") {
        let v = int_tokens(cx, v, "max_batch")?;
        fields.push(quote!(max_batch: #v));
    }
    let config = quote! {
        ::sepo::__private::SamplerConfig { #(#fields,)* ..::sepo::__private::SamplerConfig::default() }
    };
    let kind = if first_hitting {
        quote!(::sepo::__private::SamplerKind::FirstHitting(#config))
    } else {
        quote!(::sepo::__private::SamplerKind::Grid(#config))
    };
    Some((kind, first_hitting.then(|| call.name.clone())))
}

fn log_prob(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    let call = named(
        cx,
        value,
        "log_prob",
        keys::LOG_PROBS,
        "`ConcreteScore(weights = .., clean = .., t0 = ..)`, `Trajectory` or \
         `Events(positions = n)` (or `Ift(..)` with `mode: SingleLoop`)",
    )?;
    if call.name == "Trajectory" {
        call.check_options(cx, &[], "");
        return Some(quote!(::sepo::__private::LogProb::Trajectory));
    }
    if call.name == "Events" {
        call.check_options(cx, &["positions"], "`positions = n`");
        let positions = match call.option("positions") {
            Some(p) if call::number(p) == Some((0.0, true)) => {
                cx.error_spanned_by(p, "`positions` must be ≥ 1: the events read per sample");
                return None;
            }
            Some(p) => int_tokens(cx, p, "positions")?,
            None => quote!(4),
        };
        return Some(quote!(::sepo::__private::LogProb::Events { positions: #positions }));
    }
    call.check_options(
        cx,
        &["weights", "clean", "t0"],
        "`weights = Conditional|Enumerate|Snis(draws = n)`, `clean = Masked|Unmasked|MaskedSubset(positions = n)`, `t0 = t`",
    );
    let mut fields = Vec::new();
    if let Some(v) = call.option("weights") {
        let value = weights(cx, v, "weights")?;
        fields.push(quote!(weights: #value));
    }
    if let Some(v) = call.option("clean") {
        let value = clean(cx, v)?;
        fields.push(quote!(clean: #value));
    }
    if let Some(v) = call.option("t0") {
        let v = float_tokens(cx, v, "t0")?;
        fields.push(quote!(t0: #v));
    }
    Some(quote! {
        ::sepo::__private::LogProb::ConcreteScore(::sepo::__private::ConcreteScore {
            #(#fields,)* ..::sepo::__private::ConcreteScore::default()
        })
    })
}

/// `Conditional | Enumerate | Snis(draws = n)` for `key`: the `NeighbourWeights` value.
pub(super) fn weights(cx: &Ctxt, value: &Expr, key: &str) -> Option<TokenStream> {
    let w = named(
        cx,
        value,
        key,
        keys::WEIGHTS,
        "`Conditional`, `Enumerate` or `Snis(draws = 2)`",
    )?;
    let name = &w.name;
    Some(if *name == "Snis" {
        w.check_options(cx, &["draws"], "`draws = n`");
        let draws = match w.option("draws") {
            Some(d) => int_tokens(cx, d, "draws")?,
            None => quote!(2),
        };
        quote!(::sepo::__private::NeighbourWeights::Snis { draws: #draws })
    } else {
        w.check_options(cx, &[], "");
        quote!(::sepo::__private::NeighbourWeights::#name)
    })
}

/// `clean = Masked | Unmasked | MaskedSubset(positions = n)`: the `CleanScores` value.
pub(super) fn clean(cx: &Ctxt, value: &Expr) -> Option<TokenStream> {
    let c = named(
        cx,
        value,
        "clean",
        keys::CLEANS,
        "`Masked`, `Unmasked` or `MaskedSubset(positions = 4)`",
    )?;
    let name = &c.name;
    Some(if *name == "MaskedSubset" {
        c.check_options(cx, &["positions"], "`positions = n`");
        let positions = match c.option("positions") {
            Some(p) => int_tokens(cx, p, "positions")?,
            None => quote!(4),
        };
        quote!(::sepo::__private::CleanScores::MaskedSubset { positions: #positions })
    } else {
        c.check_options(cx, &[], "");
        quote!(::sepo::__private::CleanScores::#name)
    })
}

/// Inline when the value is a component (a lower-case name) or an arithmetic mixture; otherwise any
/// expression implementing `Estimator`.
fn estimator_value(cx: &Ctxt, value: &Expr) -> EstimatorValue {
    let lower_case = |e: &Expr| {
        let func = match e {
            Expr::Call(c) => &*c.func,
            e => e,
        };
        matches!(func, Expr::Path(p) if p.path.get_ident()
            .is_some_and(|i| i.to_string().starts_with(|c: char| c.is_lowercase())))
    };
    let inline = matches!(value, Expr::Binary(_)) || lower_case(value);
    if inline {
        EstimatorValue::Inline(estimator::mixture(cx, value))
    } else {
        EstimatorValue::Value(value.clone())
    }
}

/// `Adam(..)`: the `AdamW` fields given, set over the mode's default by the expansion.
fn optimizer(cx: &Ctxt, value: &Expr) -> Option<Vec<TokenStream>> {
    let call = named(
        cx,
        value,
        "optimizer",
        keys::OPTIMIZERS,
        "`Adam(lr = 1e-4, weight_decay = 0.0)` (AdamW)",
    )?;
    let options = ["lr", "weight_decay", "beta1", "beta2", "eps"];
    call.check_options(
        cx,
        &options,
        "`lr`, `weight_decay`, `beta1`, `beta2`, `eps` (numbers)",
    );
    let mut fields = Vec::new();
    for key in options {
        if let Some(v) = call.option(key) {
            let field = Ident::new(key, v.span());
            let v = float_tokens(cx, v, key)?;
            fields.push(quote!(#field: #v));
        }
    }
    Some(fields)
}

/// Keys whose value is a plain number, string or bool: literals of the wrong kind are reported here,
/// other expressions are typed by the compiler at their own span.
fn plain(cx: &Ctxt, key: &str, value: &Expr) -> Option<()> {
    let expected = match key {
        k if keys::POLICY_COUNTS.contains(&k) => "an integer, such as `64`",
        "seed" => "an integer seed, such as `0`",
        "kl" => "a number ≥ 0, such as `0.05`",
        "metrics" | "checkpoint_dir" => "a path, such as `\"runs/policy\"`",
        _ => "`true` or `false`",
    };
    let (value_kind_ok, literal) = match value {
        Expr::Lit(lit) => (
            match (&lit.lit, key) {
                (syn::Lit::Int(_), "kl") | (syn::Lit::Float(_), "kl") => true,
                (syn::Lit::Int(_), k) => keys::POLICY_COUNTS.contains(&k) || k == "seed",
                (syn::Lit::Str(_), k) => k == "metrics" || k == "checkpoint_dir",
                (syn::Lit::Bool(_), k) => k == "progress",
                _ => false,
            },
            true,
        ),
        _ => (true, false),
    };
    if !value_kind_ok {
        cx.error_spanned_by(value, format!("`{key}` expects {expected}"));
        return None;
    }
    if key == "kl" && call::number(value).is_some_and(|(v, _)| v < 0.0) {
        cx.error_spanned_by(value, "`kl` must be ≥ 0: it weighs a divergence");
        return None;
    }
    if literal && keys::POLICY_COUNTS.contains(&key) && call::number(value) == Some((0.0, true)) {
        cx.error_spanned_by(value, format!("`{key}` must be ≥ 1"));
        return None;
    }
    Some(())
}

/// A number for an `f64` field: an integer literal becomes a float literal; a literal of another
/// kind is an error; other expressions are left to the compiler.
pub(super) fn float_tokens(cx: &Ctxt, value: &Expr, key: &str) -> Option<TokenStream> {
    if call::non_numeric_literal(value) {
        cx.error_spanned_by(value, format!("`{key}` expects a number, such as `0.2`"));
        return None;
    }
    Some(match call::number(value) {
        Some((v, true)) if v.is_finite() => {
            let literal = proc_macro2::Literal::f64_suffixed(v);
            quote_spanned!(value.span()=> #literal)
        }
        _ => quote!(#value),
    })
}

/// A count for a `usize` field: a literal must be an integer.
pub(super) fn int_tokens(cx: &Ctxt, value: &Expr, key: &str) -> Option<TokenStream> {
    match call::number(value) {
        Some((_, true)) => Some(quote!(#value)),
        Some(_) => {
            cx.error_spanned_by(value, format!("`{key}` expects an integer, such as `32`"));
            None
        }
        None if call::non_numeric_literal(value) => {
            cx.error_spanned_by(value, format!("`{key}` expects an integer, such as `32`"));
            None
        }
        None => Some(quote!(#value)),
    }
}
