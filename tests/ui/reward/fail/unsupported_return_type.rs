use sepo::prelude::*;

#[reward]
fn count(seq: &[usize]) -> usize {
    seq.len()
}

#[reward]
fn nothing(seq: &[usize]) {
    let _ = seq;
}

#[reward(batched)]
fn single(batch: &[&[usize]]) -> f64 {
    batch.len() as f64
}

fn main() {}
