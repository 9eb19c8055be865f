//! Symbolic differentiation `d/dt`, done by the macro at compile time so a schedule's rate
//! `σ(t) = dσ̄/dt` is exact (no finite differences) and costs what a hand-written one does.
//!
//! Rules (`a' = da/dt`; parameters, literals, `PI` and `E` are constants):
//!
//! ```text
//! t' = 1                       (a ± b)' = a' ± b'         (a b)' = a' b + a b'
//! (a / b)' = a' / b  if b' = 0,  else (a' b − a b') / b²
//! powi(a, n)' = n · powi(a, n − 1) · a'
//! powf(a, b)' = b · powf(a, b − 1) · a'        if b' = 0
//!             = powf(a, b) · ln(a) · b'         if a' = 0
//!             = powf(a, b) · (b' ln(a) + b a' / a)  otherwise
//! exp(a)' = exp(a) a'     exp_m1(a)' = exp(a) a'      ln(a)' = a' / a     ln_1p(a)' = a' / (1 + a)
//! sqrt(a)' = a' / (2 sqrt(a))     sin(a)' = cos(a) a'     cos(a)' = −sin(a) a'     tan(a)' = a' / cos²(a)
//! ```
//!
//! The constructors of `ir.rs` simplify as the derivative is built (`0 · x`, `x · 1`, `x + 0` vanish).

use super::ir::{add, call, div, is_zero, mul, neg, num, powf, powi, sub, Expr, Func};

/// `de/dt`.
pub fn derivative(e: &Expr) -> Expr {
    match e {
        Expr::Num(_) | Expr::Const(_) | Expr::Param(_) => num(0.0),
        Expr::Time => num(1.0),
        Expr::Neg(a) => neg(derivative(a)),
        Expr::Add(a, b) => add(derivative(a), derivative(b)),
        Expr::Sub(a, b) => sub(derivative(a), derivative(b)),
        Expr::Mul(a, b) => add(
            mul(derivative(a), (**b).clone()),
            mul((**a).clone(), derivative(b)),
        ),
        Expr::Div(a, b) => {
            let (da, db) = (derivative(a), derivative(b));
            if is_zero(&db) {
                div(da, (**b).clone())
            } else {
                div(
                    sub(mul(da, (**b).clone()), mul((**a).clone(), db)),
                    powi((**b).clone(), 2),
                )
            }
        }
        Expr::Powi(a, n) => mul(
            mul(num(f64::from(*n)), powi((**a).clone(), n - 1)),
            derivative(a),
        ),
        Expr::Powf(a, b) => {
            let (da, db) = (derivative(a), derivative(b));
            let (a, b) = ((**a).clone(), (**b).clone());
            if is_zero(&db) {
                mul(mul(b.clone(), powf(a, sub(b, num(1.0)))), da)
            } else if is_zero(&da) {
                mul(mul(powf(a.clone(), b), call(Func::Ln, a)), db)
            } else {
                mul(
                    powf(a.clone(), b.clone()),
                    add(mul(db, call(Func::Ln, a.clone())), div(mul(b, da), a)),
                )
            }
        }
        Expr::Call(func, a) => {
            let da = derivative(a);
            let a = (**a).clone();
            match func {
                Func::Exp | Func::ExpM1 => mul(call(Func::Exp, a), da),
                Func::Ln => div(da, a),
                Func::Ln1p => div(da, add(num(1.0), a)),
                Func::Sqrt => div(da, mul(num(2.0), call(Func::Sqrt, a))),
                Func::Sin => mul(call(Func::Cos, a), da),
                Func::Cos => neg(mul(call(Func::Sin, a), da)),
                Func::Tan => div(da, powi(call(Func::Cos, a), 2)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::ctxt::Ctxt;
    use crate::schedule::ir::eval;
    use crate::schedule::parse;

    /// Parses `tokens` as a schedule expression over parameters `a` and `b`.
    fn parse(tokens: proc_macro2::TokenStream) -> Expr {
        let cx = Ctxt::new();
        let expr = parse::expression(&cx, &syn::parse2(tokens).unwrap(), &["a", "b"]);
        cx.check().unwrap();
        expr
    }

    /// `d/dt` of `tokens`, printed in schedule syntax.
    fn d(tokens: proc_macro2::TokenStream) -> String {
        derivative(&parse(tokens)).to_string()
    }

    #[test]
    fn primitives() {
        assert_eq!(d(quote!(2.5)), "0.0");
        assert_eq!(d(quote!(a * PI + E)), "0.0");
        assert_eq!(d(quote!(t)), "1.0");
        assert_eq!(d(quote!(-t)), "-1.0");
        assert_eq!(d(quote!(a * t + b)), "a");
        assert_eq!(d(quote!(t - a)), "1.0");
        assert_eq!(d(quote!(a - t)), "-1.0");
        assert_eq!(d(quote!(t * t)), "t + t");
        assert_eq!(d(quote!(t / a)), "1.0 / a");
        assert_eq!(d(quote!(a / t)), "-(a / powi(t, 2))");
        assert_eq!(d(quote!(powi(t, 3))), "3.0 * powi(t, 2)");
        assert_eq!(d(quote!(t.powi(2))), "2.0 * t");
        assert_eq!(d(quote!(powf(t, a))), "a * powf(t, a - 1.0)");
        assert_eq!(d(quote!(powf(a, t))), "powf(a, t) * ln(a)");
        assert_eq!(d(quote!(powf(t, t))), "powf(t, t) * (ln(t) + t / t)");
        assert_eq!(d(quote!(exp(t))), "exp(t)");
        assert_eq!(d(quote!(exp_m1(t))), "exp(t)");
        assert_eq!(d(quote!(ln(t))), "1.0 / t");
        assert_eq!(d(quote!(t.ln_1p())), "1.0 / (1.0 + t)");
        assert_eq!(d(quote!(sqrt(t))), "1.0 / (2.0 * sqrt(t))");
        assert_eq!(d(quote!(sin(t))), "cos(t)");
        assert_eq!(d(quote!(cos(t))), "-sin(t)");
        assert_eq!(d(quote!(tan(t))), "1.0 / powi(cos(t), 2)");
    }

    #[test]
    fn chain_rule() {
        assert_eq!(d(quote!(exp(a * t))), "exp(a * t) * a");
        assert_eq!(d(quote!(sin(t * t))), "cos(t * t) * (t + t)");
        assert_eq!(
            d(quote!(-ln(1.0 - (1.0 - a) * t))),
            "(1.0 - a) / (1.0 - (1.0 - a) * t)"
        );
        assert_eq!(
            d(quote!(powf(a, 1.0 - t) * powf(b, t))),
            "powf(a, 1.0 - t) * (powf(b, t) * ln(b)) - powf(a, 1.0 - t) * ln(a) * powf(b, t)"
        );
    }

    /// Every rule at once against a central difference, at several `t`.
    #[test]
    fn matches_finite_differences() {
        let cases = [
            quote!(-ln(cos(PI / 2.0 * (1.0 - a) * t))),
            quote!(powf(a, 1.0 - t) * powf(b, t)),
            quote!(sqrt(1.0 + t * t) / (b + exp(-t))),
            quote!(tan(t / 2.0).powi(3) - E.powf(t * a) + sin(t).ln_1p() + (a * t).exp_m1()),
            quote!(powf(1.0 + t, t) / powi(2.0 + t, -2)),
        ];
        let params = [("a", 0.3), ("b", 4.0)];
        for tokens in cases {
            let e = parse(tokens);
            let de = derivative(&e);
            for t in [0.1, 0.4, 0.7, 0.95] {
                let h = 1e-6;
                let fd = (eval(&e, t + h, &params) - eval(&e, t - h, &params)) / (2.0 * h);
                let exact = eval(&de, t, &params);
                assert!(
                    (fd - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                    "d/dt {e} = {de} at t = {t}: {exact}, finite difference {fd}"
                );
            }
        }
    }
}
