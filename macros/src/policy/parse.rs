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
//! Every key is read into the typed IR of `ir.rs` ([`Policy`]), recording unknown keys (with "did you
//! mean"), repeated keys and values of the wrong form at their spans. Rules across keys are checked in
//! `validate.rs`. Nothing here names a path of the generated code: that is the expand stage's.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token};

use super::ir::{ConcreteScore, EstimatorValue, Float, LogProb, Mode, Model, Policy, Schedule};
use super::read::{float, int, is_call, named, optional};
use super::shared::{clean, sampler, weights};
use super::{flow, training};
use crate::call;
use crate::ctxt::Ctxt;
use crate::estimator::parse as estimator;
use crate::keys;
use crate::suggest;

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
            "sampler" if is_call(value, keys::FLOW) => {
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
            "log_prob" if is_call(value, keys::IFT) => {
                flow::ift(cx, value).map(|i| policy.ift = Some(i))
            }
            "log_prob" => log_prob(cx, value).map(|l| policy.log_prob = Some(l)),
            "mode" => named(cx, value, "mode", keys::MODES, "`TwoLoop` or `SingleLoop`").map(|m| {
                m.check_options(cx, &[], "");
                policy.mode = Some(if m.name == "SingleLoop" {
                    Mode::SingleLoop
                } else {
                    Mode::TwoLoop
                });
            }),
            "estimator" => {
                policy.estimator = Some(estimator_value(cx, value));
                Some(())
            }
            "optimizer" => optimizer(cx, value).map(|o| policy.optimizer = Some(o)),
            "kl_mode" => named(cx, value, "kl_mode", keys::KL_MODES, "`InReward` or `Path`")
                .map(|m| policy.kl_mode = Some(m.name)),
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

fn model(cx: &Ctxt, value: &Expr) -> Option<Model> {
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
        Some(dir) => Some(Model {
            kind: call.name.clone(),
            dir: dir.clone(),
        }),
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
fn schedule(cx: &Ctxt, value: &Expr) -> Option<Schedule> {
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
                    let v = float(cx, &assign.right, &key.to_string())?;
                    fields.push((key.clone(), v));
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
    Some(Schedule { path, fields })
}

fn log_prob(cx: &Ctxt, value: &Expr) -> Option<LogProb> {
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
        return Some(LogProb::Trajectory);
    }
    if call.name == "Events" {
        call.check_options(cx, &["positions"], "`positions = n`");
        let positions = optional(call.option("positions"), |p| {
            if call::number(p) == Some((0.0, true)) {
                cx.error_spanned_by(p, "`positions` must be ≥ 1: the events read per sample");
                return None;
            }
            int(cx, p, "positions")
        })?;
        return Some(LogProb::Events { positions });
    }
    call.check_options(
        cx,
        &["weights", "clean", "t0"],
        "`weights = Conditional|Enumerate|Snis(draws = n)`, `clean = Masked|Unmasked|MaskedSubset(positions = n)`, `t0 = t`",
    );
    let weights = optional(call.option("weights"), |v| weights(cx, v, "weights"))?;
    let clean = optional(call.option("clean"), |v| clean(cx, v))?;
    let t0 = optional(call.option("t0"), |v| float(cx, v, "t0"))?;
    Some(LogProb::ConcreteScore(Box::new(ConcreteScore {
        weights,
        clean,
        t0,
    })))
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

/// `Adam(..)`: the `AdamW` fields given (each at its value's span), set over the mode's default
/// optimiser by the expansion.
fn optimizer(cx: &Ctxt, value: &Expr) -> Option<Vec<(Ident, Float)>> {
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
            let value = float(cx, v, key)?;
            fields.push((Ident::new(key, v.span()), value));
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
