// `range` declares bounds (`min..=max`, `min..`, `..=max`, negative or integer literals) that
// `evaluate` checks; `name` renames the reward in errors and metrics.
use sepo::prelude::*;
use sepo::reward::Reward;

#[reward(range = -1.0..=1)]
fn signed(seq: &[usize]) -> f64 {
    if seq.is_empty() { -1.0 } else { 1.0 }
}

#[reward(range = 0.., name = "length")]
fn len(seq: &[usize]) -> f64 {
    seq.len() as f64
}

#[reward(range = ..=0.5)]
fn small(_seq: &[usize]) -> f64 {
    0.0
}

pub fn main() {
    assert_eq!(Reward::range(&Signed), Some((-1.0, 1.0)));
    assert_eq!(Reward::range(&Len), Some((0.0, f64::INFINITY)));
    assert_eq!(Reward::name(&Len), "length");
    assert_eq!(Reward::range(&Small), Some((f64::NEG_INFINITY, 0.5)));
}
