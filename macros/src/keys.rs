//! One constant per key the macros accept, so parsing, error messages and docs spell them alike.

/// `#[reward(batched)]`: the fn scores a whole batch.
pub const BATCHED: &str = "batched";
/// `#[reward(range = min..=max)]`: declared bounds.
pub const RANGE: &str = "range";
/// `#[reward(name = "...")]`: the reward's name in errors and metrics.
pub const NAME: &str = "name";
/// Every option of `#[reward(..)]`.
pub const REWARD_OPTIONS: &[&str] = &[BATCHED, RANGE, NAME];
/// Every option of `#[reward(..)]` as the user writes it, for error messages.
pub const REWARD_OPTIONS_SYNTAX: &str = "`batched`, `range = min..=max`, `name = \"...\"`";
/// `#[param]` on an argument of a `#[reward]` fn.
pub const PARAM: &str = "param";

/// The time variable of `noise_schedule!` expressions.
pub const TIME: &str = "t";
/// `π` in `noise_schedule!` expressions.
pub const PI: &str = "PI";
/// Euler's number in `noise_schedule!` expressions.
pub const E: &str = "E";
