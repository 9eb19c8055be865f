use proc_macro2::TokenStream;
