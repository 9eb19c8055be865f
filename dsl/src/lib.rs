//! The vocabulary of sepo's DSL: every key and option name `#[reward]`, `noise_schedule!`, `estimator!`
//! and `policy!` accept ([`keys`]), and the "did you mean" rule their errors use ([`suggest`]).
//!
//! One crate so the macros (`sepo-macros`, a proc-macro crate, which cannot export plain items) and the
//! facade's run-file reader (`sepo::config`, which reads `policy!`'s keys from TOML) spell every word
//! alike and suggest corrections by the same distance.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod keys;
pub mod suggest;
