//! The words of a run configuration file: exactly `policy!`'s, from the `sepo-dsl` leaf both read (its
//! docs' table is the reference for values and defaults), plus the names of the built-in schedules a
//! file can name without code.

pub use sepo_dsl::keys::{
    ALLOCATIONS, BASELINES, CLEANS, COMPONENTS, GRAPHS, KL_MODES, LOG_PROBS, LR_SCHEDULES, MODELS,
    MODES, OPTIMIZERS, SAMPLERS, WEIGHTS,
};

/// Every key, in the order of `policy!`'s table.
pub const KEYS: &[&str] = sepo_dsl::keys::POLICY_KEYS;

/// Built-in schedules ([`crate::config::AnySchedule`]).
pub const SCHEDULES: &[&str] = &["LogLinear", "Geometric"];
