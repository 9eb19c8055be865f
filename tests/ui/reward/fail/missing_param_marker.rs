use sepo::prelude::*;

#[reward]
fn has_motif(seq: &[u32], motif: &[u32]) -> f64 {
    f64::from(u8::from(seq.windows(motif.len()).any(|w| w == motif)))
}

fn main() {}
