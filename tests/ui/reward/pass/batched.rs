// `batched`: the fn scores the whole batch at once (a classifier) and returns one score per sequence.
use sepo::prelude::*;
use sepo::reward::evaluate;

#[reward(batched)]
fn classifier(batch: &[&[u32]], #[param] threshold: usize) -> Vec<f32> {
    batch.iter().map(|s| f32::from(u8::from(s.len() > threshold))).collect()
}

#[reward(batched)]
fn lengths(batch: &[&[usize]]) -> Vec<f64> {
    batch.iter().map(|s| s.len() as f64).collect()
}

pub fn main() {
    let batch: Vec<&[usize]> = vec![&[1, 2, 3], &[0]];
    let reward = Classifier { threshold: 2 } + Lengths;
    assert_eq!(evaluate(&reward, &batch).unwrap(), vec![4.0, 1.0]);
}
