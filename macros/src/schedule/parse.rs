//! `noise_schedule! { .. }` → typed IR. The grammar, one or more items:
//!
//! ```text
//! item   := attribute* visibility Name ( "(" param,* ")" )? "=" expr ";"
//! param  := attribute* name ":" "f64" "=" default
//! expr   := number | t | PI | E | param | "(" expr ")" | "-" expr | expr (+ | - | * | /) expr
//!         | f(expr) | expr.f()          f ∈ exp ln sqrt sin cos tan exp_m1 ln_1p
//!         | powi(expr, int) | expr.powi(int) | powf(expr, expr) | expr.powf(expr)
//! ```
//!
//! `syn` parses the items (so Rust's precedence applies); the expression is then lowered to
//! [`Expr`], recording every unsupported function, operator or unknown identifier at its span.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{BinOp, Ident, Lit, Token, UnOp};

use super::ir::{add, call, div, mul, neg, num, powf, powi, sub, Constant, Expr, Func};
use crate::ctxt::Ctxt;
use crate::keys;
use crate::suggest;

/// Every item of one `noise_schedule!` invocation.
pub struct Items(pub Vec<Item>);

/// `/// docs  pub Cosine(eps: f64 = 1e-3) = -ln(cos(PI / 2.0 * (1.0 - eps) * t));`
pub struct Item {
    /// Attributes and docs, copied onto the struct.
    pub attrs: Vec<syn::Attribute>,
    /// Visibility of the struct.
    pub vis: syn::Visibility,
    /// The struct's name.
    pub name: Ident,
    /// Its parameters (fields).
    pub params: Vec<ParamSpec>,
    /// `σ̄(t)` as written.
    pub total: syn::Expr,
}

/// `/// docs  eps: f64 = 1e-3`.
pub struct ParamSpec {
    /// Attributes and docs, copied onto the field.
    pub attrs: Vec<syn::Attribute>,
    /// The field's name.
    pub name: Ident,
    /// The type as written: must be `f64`.
    pub ty: syn::Type,
    /// The default value, required.
    pub default: Option<syn::Expr>,
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
        let params = if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            Punctuated::<ParamSpec, Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        input.parse::<Token![=]>()?;
        let total = input.parse()?;
        input.parse::<Token![;]>()?;
        Ok(Item {
            attrs,
            vis,
            name,
            params,
            total,
        })
    }
}

impl Parse for ParamSpec {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        let default = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(ParamSpec {
            attrs,
            name,
            ty,
            default,
        })
    }
}

/// Records what is wrong with the parameter list: types, defaults, reserved and repeated names.
pub fn check_params(cx: &Ctxt, params: &[ParamSpec]) {
    for (i, param) in params.iter().enumerate() {
        let name = param.name.to_string();
        if [keys::TIME, keys::PI, keys::E].contains(&name.as_str()) {
            cx.error_spanned_by(
                &param.name,
                format!(
                    "`{name}` is reserved in schedule expressions; name the parameter differently"
                ),
            );
        }
        if params[..i].iter().any(|p| p.name == param.name) {
            cx.error_spanned_by(&param.name, format!("duplicate parameter `{name}`"));
        }
        if !matches!(&param.ty, syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("f64")) {
            cx.error_spanned_by(&param.ty, "schedule parameters are `f64`");
        }
        if param.default.is_none() {
            cx.error_spanned_by(
                &param.name,
                format!(
                    "parameter `{name}` needs a default, used by `Default`: `{name}: f64 = 1.0`"
                ),
            );
        }
    }
}

/// Lowers `σ̄(t)` to [`Expr`]. Unsupported parts are recorded in `cx` and replaced by `0`.
pub fn expression(cx: &Ctxt, e: &syn::Expr, params: &[&str]) -> Expr {
    Lower { cx, params }.expr(e)
}

struct Lower<'a> {
    cx: &'a Ctxt,
    params: &'a [&'a str],
}

const SUPPORTED: &str = "supported: `+ - * /`, unary `-`, `powi(x, n)`, `powf(x, y)`, `exp`, `ln`, `sqrt`, \
                         `sin`, `cos`, `tan`, `exp_m1`, `ln_1p` (also as methods: `x.ln()`), number literals, \
                         `t`, `PI`, `E` and the parameters";

impl Lower<'_> {
    /// Records "`what` is not supported" at `tokens`, with the list of what is.
    fn unsupported(&self, tokens: impl quote::ToTokens, what: &str) -> Expr {
        self.cx.error_spanned_by(
            tokens,
            format!("{what} is not supported in a noise schedule\n{SUPPORTED}"),
        );
        num(0.0)
    }

    fn expr(&self, e: &syn::Expr) -> Expr {
        match e {
            syn::Expr::Lit(lit) => self.number(&lit.lit),
            syn::Expr::Paren(paren) => self.expr(&paren.expr),
            syn::Expr::Group(group) => self.expr(&group.expr),
            syn::Expr::Path(path) => match path.path.get_ident() {
                Some(ident) if path.qself.is_none() => self.ident(ident),
                _ => self.path(path),
            },
            syn::Expr::Unary(unary) => match unary.op {
                UnOp::Neg(_) => neg(self.expr(&unary.expr)),
                op => {
                    self.unsupported(op, &format!("the operator `{}`", quote::quote!(#op)));
                    self.expr(&unary.expr)
                }
            },
            syn::Expr::Binary(binary) => {
                // The operator is checked before its operands so errors read left to right.
                let op = binary.op;
                let supported = matches!(
                    op,
                    BinOp::Add(_) | BinOp::Sub(_) | BinOp::Mul(_) | BinOp::Div(_)
                );
                if let BinOp::BitXor(xor) = op {
                    self.cx.error_spanned_by(
                        xor,
                        "`^` is exclusive or in Rust, not a power: write `powi(x, n)` or `powf(x, y)`",
                    );
                } else if !supported {
                    self.unsupported(op, &format!("the operator `{}`", quote::quote!(#op)));
                }
                let (a, b) = (self.expr(&binary.left), self.expr(&binary.right));
                match op {
                    BinOp::Add(_) => add(a, b),
                    BinOp::Sub(_) => sub(a, b),
                    BinOp::Mul(_) => mul(a, b),
                    BinOp::Div(_) => div(a, b),
                    _ => num(0.0),
                }
            }
            syn::Expr::Call(c) => {
                let syn::Expr::Path(path) = &*c.func else {
                    return self.unsupported(&c.func, "calling this");
                };
                let Some(name) = path.path.get_ident().filter(|_| path.qself.is_none()) else {
                    return self.path(path);
                };
                let args: Vec<&syn::Expr> = c.args.iter().collect();
                self.function(name, &args)
            }
            syn::Expr::MethodCall(m) => {
                if let Some(turbofish) = &m.turbofish {
                    return self.unsupported(turbofish, "a turbofish");
                }
                let args: Vec<&syn::Expr> = std::iter::once(&*m.receiver).chain(&m.args).collect();
                self.function(&m.method, &args)
            }
            other => self.unsupported(other, "this kind of expression"),
        }
    }

    /// `std::f64::consts::PI`, `f64::exp`, ..: only bare names are known.
    fn path(&self, path: &syn::ExprPath) -> Expr {
        let last = path
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let instead =
            if [keys::PI, keys::E].contains(&last.as_str()) || Func::from_name(&last).is_some() {
                format!("write `{last}`")
            } else {
                "write `t`, a parameter, `PI`, `E` or a function by its bare name".to_owned()
            };
        self.cx.error_spanned_by(
            path,
            format!("paths are not supported in a noise schedule: {instead}"),
        );
        num(0.0)
    }

    fn number(&self, lit: &Lit) -> Expr {
        let (value, suffix) = match lit {
            Lit::Float(f) => (f.base10_parse::<f64>().ok(), f.suffix()),
            Lit::Int(i) => (i.base10_parse::<f64>().ok(), i.suffix()),
            other => return self.unsupported(other, "this literal"),
        };
        if !(suffix.is_empty() || suffix == "f64") {
            self.cx.error_spanned_by(
                lit,
                format!("schedules compute in `f64`; drop the `{suffix}` suffix"),
            );
        }
        match value {
            Some(v) if v.is_finite() => num(v),
            Some(v) => {
                self.cx.error_spanned_by(
                    lit,
                    format!(
                        "this literal is {v} in f64 (beyond ±{:e}): write a finite number",
                        f64::MAX
                    ),
                );
                num(0.0)
            }
            None => self.unsupported(lit, "this literal"),
        }
    }

    fn ident(&self, ident: &Ident) -> Expr {
        let name = ident.to_string();
        match name.as_str() {
            keys::TIME => Expr::Time,
            keys::PI => Expr::Const(Constant::Pi),
            keys::E => Expr::Const(Constant::E),
            _ if self.params.contains(&name.as_str()) => Expr::Param(name),
            _ => {
                let mut known = vec![keys::TIME, keys::PI, keys::E];
                known.extend_from_slice(self.params);
                let parameters = if self.params.is_empty() {
                    "the schedule has no parameters".to_owned()
                } else {
                    format!("parameters: {}", suggest::list(self.params))
                };
                self.cx.error_spanned_by(
                    ident,
                    format!(
                        "unknown identifier `{name}`{}\nexpected the time `t`, a constant (`PI`, `E`) or a \
                         parameter; {parameters}",
                        suggest::hint(&name, &known)
                    ),
                );
                num(0.0)
            }
        }
    }

    /// `name(args..)`, the receiver of a method call being the first argument.
    fn function(&self, name: &Ident, args: &[&syn::Expr]) -> Expr {
        let text = name.to_string();
        let arity = |n: usize| {
            if args.len() == n {
                true
            } else {
                let plural = if n == 1 { "" } else { "s" };
                self.cx
                    .error_spanned_by(name, format!("`{text}` takes {n} argument{plural}"));
                false
            }
        };
        match text.as_str() {
            "powi" => {
                if !arity(2) {
                    return num(0.0);
                }
                match integer(args[1]) {
                    Some(n) => powi(self.expr(args[0]), n),
                    None => {
                        self.cx.error_spanned_by(
                            args[1],
                            "`powi` takes an integer literal exponent, such as `2` or `-1`; \
                             use `powf` for a real one",
                        );
                        num(0.0)
                    }
                }
            }
            "powf" => {
                if !arity(2) {
                    return num(0.0);
                }
                powf(self.expr(args[0]), self.expr(args[1]))
            }
            _ => match Func::from_name(&text) {
                Some(func) if arity(1) => call(func, self.expr(args[0])),
                Some(_) => num(0.0),
                None => {
                    // Lowered only to report the mistakes inside too.
                    for arg in args {
                        self.expr(arg);
                    }
                    let mut names: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
                    names.extend(["powi", "powf"]);
                    // `tanh` is not a typo of `tan`: no hint for functions `f64` really has.
                    let hint = if OTHER_F64_FUNCTIONS.contains(&text.as_str()) {
                        String::new()
                    } else {
                        suggest::hint(&text, &names)
                    };
                    self.cx.error_spanned_by(
                        name,
                        format!(
                            "unsupported function `{text}`{hint}\nsupported functions: {}",
                            suggest::list(&names)
                        ),
                    );
                    num(0.0)
                }
            },
        }
    }
}

/// Methods of `f64` without a derivative rule here, named as they are (never "did you mean").
const OTHER_F64_FUNCTIONS: &[&str] = &[
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "cosh", "exp2",
    "hypot", "log", "log10", "log2", "max", "min", "sinh", "tanh",
];

/// An `i32` literal, optionally negated.
fn integer(e: &syn::Expr) -> Option<i32> {
    match e {
        syn::Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        syn::Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => integer(&u.expr).map(|n: i32| -n),
        syn::Expr::Paren(p) => integer(&p.expr),
        _ => None,
    }
}
