use sepo::prelude::*;

#[reward]
fn count<T: PartialEq + From<u8>, const N: usize>(seq: &[usize]) -> f64 {
    seq.len() as f64
}

fn main() {}
