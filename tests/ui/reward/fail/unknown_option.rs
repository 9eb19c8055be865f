use sepo::prelude::*;

#[reward(bathced)]
fn lengths(batch: &[&[usize]]) -> Vec<f64> {
    batch.iter().map(|s| s.len() as f64).collect()
}

#[reward(parallel = true, range = 0.0..=1.0)]
fn gc(seq: &[usize]) -> f64 {
    seq.len() as f64
}

fn main() {}
