//! sepo facade
pub use sepo_core as core;
