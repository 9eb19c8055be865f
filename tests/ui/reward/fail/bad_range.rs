use sepo::prelude::*;

#[reward(range = 0.0..1.0)]
fn half_open(_seq: &[usize]) -> f64 {
    0.0
}

#[reward(range = 1.0..=0.0)]
fn empty(_seq: &[usize]) -> f64 {
    0.0
}

const MAX: f64 = 1.0;

#[reward(range = 0.0..=MAX)]
fn not_a_literal(_seq: &[usize]) -> f64 {
    0.0
}

#[reward(range = 1.0)]
fn not_a_range(_seq: &[usize]) -> f64 {
    0.0
}

fn main() {}
