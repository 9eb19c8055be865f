//! Procedural macros of sepo's declarative DSL (`#[reward]`, `noise_schedule!`, `estimator!`,
//! `policy!`). They expand to plain code against `::sepo` paths and are re-exported by the `sepo` facade.
//!
//! The DSL is built on top of the core and the SEPO trainer; until it lands this crate exports nothing.
