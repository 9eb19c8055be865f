//! `#[reward]`: a fn scoring a token sequence becomes a type implementing sepo's `Reward`.
//!
//! parse (`parse.rs`, typed IR) → validate (`validate.rs`, spanned errors) → expand (`expand.rs`).

mod expand;
mod parse;
mod validate;

#[cfg(test)]
mod tests;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

/// The expansion of `#[reward(args)] item`. On error: the fn as written (so IDEs keep resolving it),
/// a stub of its type when one can be built (so its uses do not cascade), and every error.
pub fn reward(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let parsed = match parse::reward_fn(&cx, args, item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = cx.check();
            let error = error.into_compile_error();
            return quote::quote!(#error #item);
        }
    };
    validate::check(&cx, &parsed);
    match cx.check() {
        Ok(()) => expand::reward(&parsed, expand::Bodies::Call),
        Err(errors) => {
            let errors = errors.into_compile_error();
            // A method stays in its impl block, where a struct cannot go; a type named like the fn
            // would clash with it.
            let fallback = if parsed.receiver.is_some() || parsed.item.sig.ident == parsed.type_name
            {
                let item = &parsed.item;
                quote::quote!(#item)
            } else {
                expand::reward(&parsed, expand::Bodies::Stub)
            };
            quote::quote!(#fallback #errors)
        }
    }
}
