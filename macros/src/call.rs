//! `Name` and `Name(key = value, ..)`: the value form shared by `estimator!` and `policy!`
//! (`grpo(clip = 0.2)`, `Transformer(checkpoint = "..")`, `Tweedie(steps = 64)`).

use syn::{Expr, Ident, Lit, UnOp};

use crate::ctxt::Ctxt;
use crate::suggest;

/// `Name` or `Name(key = value, ..)`, as written.
pub struct Call {
    /// The name, at its span.
    pub name: Ident,
    /// The options in order; unknown and repeated ones are reported by [`Call::options`].
    pub args: Vec<(Ident, Expr)>,
    /// The whole value as written, for spans.
    pub original: Expr,
}

impl Call {
    /// `Some` if `expr` is `Name` or `Name(..)` with a one-segment name; arguments that are not
    /// `key = value` are reported and skipped.
    pub fn parse(cx: &Ctxt, expr: &Expr) -> Option<Call> {
        let (func, args) = match expr {
            Expr::Call(call) => (&*call.func, Some(&call.args)),
            Expr::Path(_) => (expr, None),
            _ => return None,
        };
        let Expr::Path(path) = func else { return None };
        let name = path.path.get_ident()?.clone();
        let mut out = Vec::new();
        for arg in args.into_iter().flatten() {
            match arg {
                Expr::Assign(assign) => match &*assign.left {
                    Expr::Path(key) if key.path.get_ident().is_some() => {
                        let key = key.path.get_ident().expect("checked").clone();
                        out.push((key, (*assign.right).clone()));
                    }
                    left => cx.error_spanned_by(left, "expected an option name: `key = value`"),
                },
                other => cx
                    .error_spanned_by(other, format!("expected `key = value` inside `{name}(..)`")),
            }
        }
        Some(Call {
            name,
            args: out,
            original: expr.clone(),
        })
    }

    /// The first value given for `key` (repeats are reported by [`Call::check_options`]).
    pub fn option(&self, key: &str) -> Option<&Expr> {
        self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Reports unknown and repeated options of this call.
    pub fn check_options(&self, cx: &Ctxt, accepted: &[&str], syntax: &str) {
        for (i, (key, _)) in self.args.iter().enumerate() {
            let word = key.to_string();
            if !accepted.contains(&word.as_str()) {
                let accepted_list = if syntax.is_empty() {
                    format!("`{}` takes no options", self.name)
                } else {
                    format!("options of `{}`: {syntax}", self.name)
                };
                cx.error_spanned_by(
                    key,
                    format!(
                        "unknown option `{word}`{}\n{accepted_list}",
                        suggest::hint(&word, accepted)
                    ),
                );
            } else if self.args[..i].iter().any(|(k, _)| k == key) {
                cx.error_spanned_by(key, format!("duplicate option `{word}`"));
            }
        }
    }
}

/// A number literal, possibly negated or parenthesised: its value and whether it was an integer.
pub fn number(expr: &Expr) -> Option<(f64, bool)> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok().map(|v| (v, false)),
            Lit::Int(i) => i.base10_parse::<f64>().ok().map(|v| (v, true)),
            _ => None,
        },
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => {
            number(&unary.expr).map(|(v, int)| (-v, int))
        }
        Expr::Paren(paren) => number(&paren.expr),
        Expr::Group(group) => number(&group.expr),
        _ => None,
    }
}

/// A number literal, or an error at `expr` saying what `what` expects.
pub fn float(cx: &Ctxt, expr: &Expr, what: &str) -> Option<f64> {
    let value = number(expr).map(|(v, _)| v);
    if value.is_none() {
        cx.error_spanned_by(
            expr,
            format!("`{what}` takes a number literal, such as `0.2`"),
        );
    }
    value
}

/// A non-negative integer literal, or an error at `expr`.
pub fn integer(cx: &Ctxt, expr: &Expr, what: &str) -> Option<u64> {
    let value = match number(expr) {
        Some((v, true)) if v >= 0.0 => Some(v as u64),
        _ => None,
    };
    if value.is_none() {
        cx.error_spanned_by(
            expr,
            format!("`{what}` takes a non-negative integer literal, such as `16`"),
        );
    }
    value
}

/// Whether `expr` is a literal of another kind than a number (a string, a bool, ..): then a
/// numeric key reports it itself instead of leaving a type error to the compiler.
pub fn non_numeric_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Lit(lit) if !matches!(lit.lit, Lit::Int(_) | Lit::Float(_)))
}
