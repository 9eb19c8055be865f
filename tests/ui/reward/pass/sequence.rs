// One sequence of sepo tokens in, an `f64` out: a unit struct with `Default`, scored in parallel.
use sepo::prelude::*;
use sepo::reward::{evaluate, Reward};

/// Fraction of G or C (tokens 0..4 = A, C, G, T).
#[reward]
pub fn gc_content(seq: &[usize]) -> f64 {
    let gc = seq.iter().filter(|&&t| t == 1 || t == 2).count();
    gc as f64 / seq.len().max(1) as f64
}

pub fn main() {
    let reward: GcContent = Default::default();
    assert_eq!(Reward::name(&reward), "gc_content");
    let batch: Vec<&[usize]> = vec![&[1, 2], &[0, 3]];
    assert_eq!(evaluate(&GcContent, &batch).unwrap(), vec![1.0, 0.0]);
}
