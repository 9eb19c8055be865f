//! `estimator! { .. }` → typed IR. The grammar, one or more items:
//!
//! ```text
//! item      := attribute* visibility Name "=" mixture ";"
//! mixture   := term ("+" term)*
//! term      := weight "*" component | component "*" weight | component     (a lone component: weight 1)
//! weight    := number literal
//! component := reinforce | ppo | grpo | snis | control_variate, optionally followed by "(" option,* ")"
//! option    := baseline = none|mean|leave_one_out|grpo | clip = ε | group = G | delta = δ
//!            | temperature = τ
//! ```
//!
//! `syn` parses the right-hand side as a Rust expression (so `*` binds tighter than `+`); it is then
//! read into [`Mixture`], recording every mistake at its span. Value rules (ranges, the sum of the
//! weights) are checked in `validate.rs`.

use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{BinOp, Expr, Ident, Token};

use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::keys;
use crate::suggest;

/// Every item of one `estimator!` invocation.
pub struct Items(pub Vec<Item>);

/// `/// docs  pub Mixed = 0.8 * grpo(clip = 0.2) + 0.2 * reinforce;`
pub struct Item {
    /// Attributes and docs, copied onto the struct.
    pub attrs: Vec<syn::Attribute>,
    /// Visibility of the struct.
    pub vis: syn::Visibility,
    /// The struct's name.
    pub name: Ident,
    /// The mixture as written.
    pub mixture: Expr,
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
        input.parse::<Token![=]>()?;
        let mixture = input.parse()?;
        input.parse::<Token![;]>()?;
        Ok(Item {
            attrs,
            vis,
            name,
            mixture,
        })
    }
}

/// A convex mixture of components.
pub struct Mixture {
    /// The terms in order.
    pub terms: Vec<Term>,
    /// The mixture as written, for spans.
    pub original: Expr,
    /// Whether every term was read: otherwise the rules on all weights stay silent.
    pub complete: bool,
}

/// One `weight * component(options)`.
pub struct Term {
    /// The weight as written; `None` for a lone component (weight 1).
    pub weight: Option<(f64, Expr)>,
    /// Which component.
    pub kind: Kind,
    /// The component's name as written, for spans.
    pub name: Ident,
    /// `baseline = ..`, at its value's span.
    pub baseline: Option<(Baseline, Expr)>,
    /// `clip = ε`.
    pub clip: Option<(f64, Expr)>,
    /// `group = G`.
    pub group: Option<(u64, Expr)>,
    /// `delta = δ`.
    pub delta: Option<(f64, Expr)>,
    /// `temperature = τ`.
    pub temperature: Option<(f64, Expr)>,
}

/// The components (`sepo::policy::Estimator`'s table).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `r − b`, no clipping.
    Reinforce,
    /// `r − b`, clipped ratio.
    Ppo,
    /// group-standardised advantages, clipped ratio.
    Grpo,
    /// self-normalised importance weights towards `p_ref·exp(r/τ)`, optionally clipped.
    Snis,
    /// `r − b` minus the score-function control variate, optionally clipped.
    ControlVariate,
}

impl Kind {
    /// The name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Reinforce => keys::REINFORCE,
            Kind::Ppo => keys::PPO,
            Kind::Grpo => keys::GRPO,
            Kind::Snis => keys::SNIS,
            Kind::ControlVariate => keys::CONTROL_VARIATE,
        }
    }

    /// Options it accepts.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Kind::Reinforce => &[keys::BASELINE, keys::GROUP],
            Kind::Ppo => &[keys::BASELINE, keys::CLIP, keys::GROUP],
            Kind::Grpo => &[keys::GROUP, keys::CLIP, keys::DELTA],
            Kind::Snis => &[keys::TEMPERATURE, keys::CLIP, keys::GROUP],
            Kind::ControlVariate => &[keys::BASELINE, keys::CLIP, keys::GROUP],
        }
    }

    /// Options it accepts, as written.
    fn syntax(self) -> &'static str {
        match self {
            Kind::Reinforce => "`baseline = none|mean|leave_one_out|grpo`, `group = G`",
            Kind::Ppo => "`baseline = none|mean|leave_one_out|grpo`, `clip = ε`, `group = G`",
            Kind::Grpo => "`group = G`, `clip = ε`, `delta = δ`",
            Kind::Snis => "`temperature = τ`, `clip = ε`, `group = G`",
            Kind::ControlVariate => {
                "`baseline = none|mean|leave_one_out|grpo`, `clip = ε`, `group = G`"
            }
        }
    }
}

/// `baseline = ..` values (`sepo::weight::Baseline`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Raw rewards.
    None,
    /// Group mean subtracted.
    Mean,
    /// Mean of the others subtracted.
    LeaveOneOut,
    /// Group-standardised with `δ = 1e-8`.
    Grpo,
}

/// Reads a mixture, recording every mistake; the terms that could be read are kept.
pub fn mixture(cx: &Ctxt, expr: &Expr) -> Mixture {
    let mut terms = Vec::new();
    let mut complete = true;
    collect(cx, expr, &mut terms, &mut complete);
    Mixture {
        terms,
        original: expr.clone(),
        complete,
    }
}

fn collect(cx: &Ctxt, expr: &Expr, out: &mut Vec<Term>, ok: &mut bool) {
    match expr {
        Expr::Paren(paren) => collect(cx, &paren.expr, out, ok),
        Expr::Binary(binary) if matches!(binary.op, BinOp::Add(_)) => {
            collect(cx, &binary.left, out, ok);
            collect(cx, &binary.right, out, ok);
        }
        Expr::Binary(binary) if matches!(binary.op, BinOp::Sub(_)) => {
            *ok = false;
            cx.error_spanned_by(
                binary.op,
                "an estimator is a convex mixture: add components with `+`, each with a weight ≥ 0",
            );
        }
        Expr::Binary(binary) if matches!(binary.op, BinOp::Mul(_)) => {
            let (weight, component) = if is_component(&binary.right) {
                (&*binary.left, &*binary.right)
            } else {
                (&*binary.right, &*binary.left)
            };
            let Some(value) = weight_value(cx, weight) else {
                *ok = false;
                return;
            };
            match term(cx, component) {
                Some(mut t) => {
                    t.weight = Some((value, weight.clone()));
                    out.push(t);
                }
                None => *ok = false,
            }
        }
        _ => match term(cx, expr) {
            Some(t) => out.push(t),
            None => *ok = false,
        },
    }
}

/// Whether `expr` looks like `name` or `name(..)` rather than a number.
fn is_component(expr: &Expr) -> bool {
    matches!(expr, Expr::Call(_) | Expr::Path(_))
}

fn weight_value(cx: &Ctxt, expr: &Expr) -> Option<f64> {
    let value = call::number(expr).map(|(v, _)| v);
    if value.is_none() {
        cx.error_spanned_by(
            expr,
            "a mixture weight must be a number literal, such as `0.8`: weights are checked at compile time",
        );
    }
    value
}

/// `name(options)`: the component and its options.
pub fn term(cx: &Ctxt, expr: &Expr) -> Option<Term> {
    let Some(call) = Call::parse(cx, expr) else {
        cx.error_spanned_by(
            expr,
            format!(
                "expected a component such as `grpo(clip = 0.2)`, optionally weighted: `0.5 * reinforce(baseline = mean)`\ncomponents: {}",
                suggest::list(keys::COMPONENTS)
            ),
        );
        return None;
    };
    let word = call.name.to_string();
    let kind = match word.as_str() {
        keys::REINFORCE => Kind::Reinforce,
        keys::PPO => Kind::Ppo,
        keys::GRPO => Kind::Grpo,
        keys::SNIS => Kind::Snis,
        keys::CONTROL_VARIATE => Kind::ControlVariate,
        _ => {
            cx.error_spanned_by(
                &call.name,
                format!(
                    "unknown estimator component `{word}`{}\ncomponents: {}",
                    suggest::hint(&word, keys::COMPONENTS),
                    suggest::list(keys::COMPONENTS)
                ),
            );
            return None;
        }
    };
    call.check_options(cx, kind.options(), kind.syntax());
    let known = |key: &str| kind.options().contains(&key);
    let baseline = call
        .option(keys::BASELINE)
        .filter(|_| known(keys::BASELINE))
        .and_then(|v| baseline(cx, v).map(|b| (b, v.clone())));
    let clip = call
        .option(keys::CLIP)
        .filter(|_| known(keys::CLIP))
        .and_then(|v| call::float(cx, v, keys::CLIP).map(|c| (c, v.clone())));
    let group = call
        .option(keys::GROUP)
        .filter(|_| known(keys::GROUP))
        .and_then(|v| call::integer(cx, v, keys::GROUP).map(|g| (g, v.clone())));
    let delta = call
        .option(keys::DELTA)
        .filter(|_| known(keys::DELTA))
        .and_then(|v| call::float(cx, v, keys::DELTA).map(|d| (d, v.clone())));
    let temperature = call
        .option(keys::TEMPERATURE)
        .filter(|_| known(keys::TEMPERATURE))
        .and_then(|v| call::float(cx, v, keys::TEMPERATURE).map(|t| (t, v.clone())));
    Some(Term {
        weight: None,
        kind,
        name: call.name,
        baseline,
        clip,
        group,
        delta,
        temperature,
    })
}

fn baseline(cx: &Ctxt, expr: &Expr) -> Option<Baseline> {
    let word = match expr {
        Expr::Path(path) => path.path.get_ident().map(ToString::to_string),
        _ => None,
    };
    let found = match word.as_deref() {
        Some("none") => Some(Baseline::None),
        Some("mean") => Some(Baseline::Mean),
        Some("leave_one_out") => Some(Baseline::LeaveOneOut),
        Some("grpo") => Some(Baseline::Grpo),
        _ => None,
    };
    if found.is_none() {
        let hint = word
            .as_deref()
            .map(|w| suggest::hint(w, keys::BASELINES))
            .unwrap_or_default();
        cx.syn_error(syn::Error::new(
            expr.span(),
            format!(
                "unknown baseline{hint}\nbaselines: {}",
                suggest::list(keys::BASELINES)
            ),
        ));
    }
    found
}
