use sepo::prelude::*;

#[reward]
fn owned(seq: Vec<u32>) -> f64 {
    seq.len() as f64
}

#[reward]
fn forgot_batched(batch: &[&[usize]]) -> Vec<f64> {
    vec![0.0; batch.len()]
}

#[reward(batched)]
fn not_a_batch(seq: &[usize]) -> Vec<f64> {
    vec![seq.len() as f64]
}

#[reward]
fn no_sequence() -> f64 {
    0.0
}

fn main() {}
