//! The expression tree of a schedule `σ̄(t)`, with constructors that simplify as they build (drop `0 *`,
//! `* 1`, `+ 0`, fold two literals, pull negations out) so derivatives stay readable.

use std::fmt;

/// A real-valued expression in `t`, the schedule's parameters, `π` and `e`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number literal.
    Num(f64),
    /// `PI` or `E`.
    Const(Constant),
    /// A parameter of the schedule (a field of its struct).
    Param(String),
    /// The time `t`.
    Time,
    /// `-a`.
    Neg(Box<Expr>),
    /// `a + b`.
    Add(Box<Expr>, Box<Expr>),
    /// `a - b`.
    Sub(Box<Expr>, Box<Expr>),
    /// `a * b`.
    Mul(Box<Expr>, Box<Expr>),
    /// `a / b`.
    Div(Box<Expr>, Box<Expr>),
    /// `a^n`, integer `n`.
    Powi(Box<Expr>, i32),
    /// `a^b`, real `b`.
    Powf(Box<Expr>, Box<Expr>),
    /// `f(a)` for a supported one-argument function.
    Call(Func, Box<Expr>),
}

/// The named constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constant {
    /// π.
    Pi,
    /// Euler's number.
    E,
}

/// Supported functions; `powi` and `powf` are [`Expr`] variants of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// `e^a`.
    Exp,
    /// `e^a − 1`, accurate near 0.
    ExpM1,
    /// Natural logarithm.
    Ln,
    /// `ln(1 + a)`, accurate near 0.
    Ln1p,
    /// Square root.
    Sqrt,
    /// Sine.
    Sin,
    /// Cosine.
    Cos,
    /// Tangent.
    Tan,
}

impl Func {
    /// Every one-argument function, in the order error messages list them.
    pub const ALL: [Func; 8] = [
        Func::Exp,
        Func::Ln,
        Func::Sqrt,
        Func::Sin,
        Func::Cos,
        Func::Tan,
        Func::ExpM1,
        Func::Ln1p,
    ];

    /// The name as written in a schedule, and as the `f64` method the expansion calls.
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::ExpM1 => "exp_m1",
            Func::Ln => "ln",
            Func::Ln1p => "ln_1p",
            Func::Sqrt => "sqrt",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
        }
    }

    /// The function called `name`, if supported.
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Binding strength when printing: sums < products < unary minus < atoms and calls. Operators are
/// left-associative, so a right operand of the same strength is parenthesised.
pub fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Add(..) | Expr::Sub(..) => 1,
        Expr::Mul(..) | Expr::Div(..) => 2,
        Expr::Neg(_) => 3,
        Expr::Num(v) if *v < 0.0 => 3,
        _ => 4,
    }
}

/// Whether `e` is the literal `v`.
fn is(e: &Expr, v: f64) -> bool {
    matches!(e, Expr::Num(x) if *x == v)
}

/// Whether `e` is the literal 0.
pub fn is_zero(e: &Expr) -> bool {
    is(e, 0.0)
}

/// A literal.
pub fn num(v: f64) -> Expr {
    Expr::Num(v)
}

/// `-a`: `-(-x) = x`, `-(literal)` folds.
pub fn neg(a: Expr) -> Expr {
    match a {
        Expr::Num(v) => Expr::Num(-v + 0.0), // `+ 0.0` turns -0.0 into 0.0
        Expr::Neg(x) => *x,
        a => Expr::Neg(Box::new(a)),
    }
}

/// `a + b`: `0 + b = b`, `a + 0 = a`, `a + (-x) = a - x`, `(-x) + b = b - x`.
pub fn add(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (a, b) if is_zero(&b) => a,
        (a, b) if is_zero(&a) => b,
        // Literals fold only to a finite literal: otherwise the sum is left to run time.
        (Expr::Num(x), Expr::Num(y)) if (x + y).is_finite() => Expr::Num(x + y),
        (a, Expr::Neg(x)) => sub(a, *x),
        (Expr::Neg(x), b) => sub(b, *x),
        (a, b) => Expr::Add(Box::new(a), Box::new(b)),
    }
}

/// `a - b`: `a - 0 = a`, `0 - b = -b`, `a - (-x) = a + x`.
pub fn sub(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (a, b) if is_zero(&b) => a,
        (a, b) if is_zero(&a) => neg(b),
        (Expr::Num(x), Expr::Num(y)) if (x - y).is_finite() => Expr::Num(x - y),
        (a, Expr::Neg(x)) => add(a, *x),
        (a, b) => Expr::Sub(Box::new(a), Box::new(b)),
    }
}

/// `a * b`: drops `0 *` (the whole product), `1 *`, `* 1`; turns `-1 *` into a negation; pulls
/// negations out; folds two literals.
pub fn mul(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (a, b) if is_zero(&a) || is_zero(&b) => num(0.0),
        (a, b) if is(&a, 1.0) => b,
        (a, b) if is(&b, 1.0) => a,
        (a, b) if is(&a, -1.0) => neg(b),
        (a, b) if is(&b, -1.0) => neg(a),
        (Expr::Num(x), Expr::Num(y)) if (x * y).is_finite() => Expr::Num(x * y),
        (Expr::Neg(x), b) => neg(mul(*x, b)),
        (a, Expr::Neg(y)) => neg(mul(a, *y)),
        (a, b) => Expr::Mul(Box::new(a), Box::new(b)),
    }
}

/// `a / b`: `0 / b = 0`, `a / 1 = a`, negations pulled out.
pub fn div(a: Expr, b: Expr) -> Expr {
    match (a, b) {
        (a, _) if is_zero(&a) => num(0.0),
        (a, b) if is(&b, 1.0) => a,
        (Expr::Neg(x), b) => neg(div(*x, b)),
        (a, Expr::Neg(y)) => neg(div(a, *y)),
        (a, b) => Expr::Div(Box::new(a), Box::new(b)),
    }
}

/// `a^n`: `a^0 = 1`, `a^1 = a`.
pub fn powi(a: Expr, n: i32) -> Expr {
    match n {
        0 => num(1.0),
        1 => a,
        n => Expr::Powi(Box::new(a), n),
    }
}

/// `a^b`.
pub fn powf(a: Expr, b: Expr) -> Expr {
    Expr::Powf(Box::new(a), Box::new(b))
}

/// `f(a)`.
pub fn call(f: Func, a: Expr) -> Expr {
    Expr::Call(f, Box::new(a))
}

impl Expr {
    /// Whether `t` occurs in the expression.
    pub fn uses_time(&self) -> bool {
        let mut found = false;
        self.visit(&mut |e| found |= matches!(e, Expr::Time));
        found
    }

    /// The parameters that occur, in order of first occurrence.
    pub fn params(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Param(name) = e {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        });
        names
    }

    fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        match self {
            Expr::Num(_) | Expr::Const(_) | Expr::Param(_) | Expr::Time => {}
            Expr::Neg(a) | Expr::Powi(a, _) | Expr::Call(_, a) => a.visit(f),
            Expr::Add(a, b)
            | Expr::Sub(a, b)
            | Expr::Mul(a, b)
            | Expr::Div(a, b)
            | Expr::Powf(a, b) => {
                a.visit(f);
                b.visit(f);
            }
        }
    }
}

/// The schedule syntax (`-ln(1.0 - (1.0 - eps) * t)`), with only the parentheses precedence needs.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, e: &Expr, min: u8| {
            if precedence(e) < min {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Expr::Num(v) => write!(f, "{v:?}"),
            Expr::Const(Constant::Pi) => f.write_str("PI"),
            Expr::Const(Constant::E) => f.write_str("E"),
            Expr::Param(name) => f.write_str(name),
            Expr::Time => f.write_str("t"),
            Expr::Neg(a) => {
                f.write_str("-")?;
                operand(f, a, 4)
            }
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) | Expr::Div(a, b) => {
                // A right operand of the same level keeps its parentheses: `a * (b * c)` is a
                // different floating-point computation from `a * b * c`.
                let (symbol, level) = match self {
                    Expr::Add(..) => ("+", 1),
                    Expr::Sub(..) => ("-", 1),
                    Expr::Mul(..) => ("*", 2),
                    _ => ("/", 2),
                };
                operand(f, a, level)?;
                write!(f, " {symbol} ")?;
                operand(f, b, level + 1)
            }
            Expr::Powi(a, n) => write!(f, "powi({a}, {n})"),
            Expr::Powf(a, b) => write!(f, "powf({a}, {b})"),
            Expr::Call(func, a) => write!(f, "{}({a})", func.name()),
        }
    }
}

/// Numerical value, for tests of the differentiator against finite differences.
#[cfg(test)]
pub fn eval(e: &Expr, t: f64, params: &[(&str, f64)]) -> f64 {
    let ev = |x: &Expr| eval(x, t, params);
    match e {
        Expr::Num(v) => *v,
        Expr::Const(Constant::Pi) => std::f64::consts::PI,
        Expr::Const(Constant::E) => std::f64::consts::E,
        Expr::Param(name) => {
            params
                .iter()
                .find(|(n, _)| n == name)
                .expect("unbound parameter")
                .1
        }
        Expr::Time => t,
        Expr::Neg(a) => -ev(a),
        Expr::Add(a, b) => ev(a) + ev(b),
        Expr::Sub(a, b) => ev(a) - ev(b),
        Expr::Mul(a, b) => ev(a) * ev(b),
        Expr::Div(a, b) => ev(a) / ev(b),
        Expr::Powi(a, n) => ev(a).powi(*n),
        Expr::Powf(a, b) => ev(a).powf(ev(b)),
        Expr::Call(func, a) => {
            let x = ev(a);
            match func {
                Func::Exp => x.exp(),
                Func::ExpM1 => x.exp_m1(),
                Func::Ln => x.ln(),
                Func::Ln1p => x.ln_1p(),
                Func::Sqrt => x.sqrt(),
                Func::Sin => x.sin(),
                Func::Cos => x.cos(),
                Func::Tan => x.tan(),
            }
        }
    }
}
