// `&[u32]` (or u8/u16/u64) sequences get a converted copy; `f32` scores are widened to `f64`.
use sepo::prelude::*;
use sepo::reward::evaluate;

#[reward]
fn first(seq: &[u32]) -> f32 {
    seq[0] as f32
}

#[reward]
fn last(seq: &[u8]) -> f64 {
    f64::from(seq[seq.len() - 1])
}

pub fn main() {
    let batch: Vec<&[usize]> = vec![&[3, 1], &[2, 7]];
    assert_eq!(evaluate(&(First + Last), &batch).unwrap(), vec![4.0, 9.0]);
}
