//! `noise_schedule!`: a schedule `σ̄(t)` written as a formula becomes a struct implementing
//! `NoiseSchedule`, its rate `σ(t) = dσ̄/dt` differentiated symbolically by the macro.
//!
//! parse (`parse.rs`: items, then the formula lowered to the tree of `ir.rs`, errors collected)
//! → differentiate (`diff.rs`) → expand (`expand.rs`).

mod diff;
mod expand;
mod ir;
mod parse;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

/// The expansion of `noise_schedule! { input }`. On error: each struct with stub methods (so its uses
/// do not cascade) and every error.
pub fn noise_schedule(input: TokenStream) -> TokenStream {
    let items: parse::Items = match syn::parse2(input) {
        Ok(items) => items,
        Err(error) => return error.into_compile_error(),
    };
    let cx = Ctxt::new();
    let lowered: Vec<_> = items
        .0
        .iter()
        .map(|item| {
            parse::check_params(&cx, &item.params);
            let names: Vec<String> = item.params.iter().map(|p| p.name.to_string()).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let total = parse::expression(&cx, &item.total, &names);
            let rate = diff::derivative(&total);
            (item, total, rate)
        })
        .collect();
    let (bodies, errors) = match cx.check() {
        Ok(()) => (expand::Bodies::Formulas, TokenStream::new()),
        Err(errors) => (expand::Bodies::Stub, errors.into_compile_error()),
    };
    let schedules = lowered
        .iter()
        .map(|(item, total, rate)| expand::schedule(item, total, rate, bodies));
    quote::quote!(#(#schedules)* #errors)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::noise_schedule;

    fn squash(text: &str) -> String {
        text.split_whitespace().collect()
    }

    /// The readable expansion promised in the docs of the `noise_schedule` entry point.
    #[test]
    fn expansion_of_the_cosine_schedule() {
        let got = noise_schedule(quote! {
            pub Cosine(eps: f64 = 1e-3) = -ln(cos(PI / 2.0 * (1.0 - eps) * t));
        })
        .to_string();
        let methods = quote! {
            impl ::sepo::__private::NoiseSchedule for Cosine {
                fn total(&self, t: f64) -> f64 {
                    let eps = self.eps;
                    -f64::ln(f64::cos(::std::f64::consts::PI / 2.0 * (1.0 - eps) * t))
                }
                fn rate(&self, t: f64) -> f64 {
                    let eps = self.eps;
                    f64::sin(::std::f64::consts::PI / 2.0 * (1.0 - eps) * t)
                        * (::std::f64::consts::PI / 2.0 * (1.0 - eps))
                        / f64::cos(::std::f64::consts::PI / 2.0 * (1.0 - eps) * t)
                }
            }
        };
        assert!(
            squash(&got).contains(&squash(&methods.to_string())),
            "{got}"
        );
        assert!(got.contains("pub struct Cosine { # [doc = \" Parameter `eps` (default `1e-3`).\"] pub eps : f64 , }"), "{got}");
        assert!(got.contains("Self { eps : 1e-3 }"), "{got}");
    }

    /// No `t` in `σ` and no parameters: the argument is `_t` and nothing is bound (no warnings).
    #[test]
    fn unused_names_are_not_bound() {
        let got = noise_schedule(quote!(Linear(rate: f64 = 2) = rate * t;)).to_string();
        assert!(
            got.contains("fn rate (& self , _t : f64) -> f64 { let rate = self . rate ; rate }"),
            "{got}"
        );
        assert!(got.contains("Self { rate : 2.0 }"), "{got}");
        let got = noise_schedule(quote!(Flat = 2.0 * t;)).to_string();
        assert!(got.contains("struct Flat ;"), "{got}");
        assert!(
            got.contains("fn total (& self , t : f64) -> f64 { 2.0 * t }"),
            "{got}"
        );
    }

    #[test]
    fn every_error_is_reported_beside_a_stub() {
        let got = noise_schedule(quote! {
            pub Bad(t: f64 = 1.0, k: f32) = tanh(x) + k % 2.0 + powi(t, 0.5);
        })
        .to_string();
        for message in [
            "`t` is reserved",
            "schedule parameters are `f64`",
            "parameter `k` needs a default",
            "unsupported function `tanh`",
            "unknown identifier `x`",
            "the operator `%` is not supported",
            "`powi` takes an integer literal exponent",
        ] {
            assert!(got.contains(message), "missing {message:?} in {got}");
        }
        assert!(got.contains("pub struct Bad"), "{got}");
        assert!(got.contains("unreachable"), "{got}");
    }

    /// A literal beyond f64's range is an error at the literal (it panicked in `f64_unsuffixed`);
    /// literals whose product or sum overflows are left to run time unfolded, where
    /// `NoiseSchedule::check` refuses a non-finite σ̄.
    #[test]
    fn literals_beyond_f64_are_errors_and_overflowing_folds_are_kept() {
        let got = noise_schedule(quote!(Huge = 1e400 * t;)).to_string();
        assert!(got.contains("this literal is inf in f64"), "{got}");
        assert!(got.contains("unreachable"), "{got}");
        let got = noise_schedule(quote!(Big(k: f64 = 1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000) = 1e300 * 1e300 * t + k;)).to_string();
        assert!(squash(&got).contains(&squash("1e300 * 1e300 * t")), "{got}");
        assert!(!got.contains("compile_error"), "{got}");
    }
}
