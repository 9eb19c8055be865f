use sepo::prelude::*;

#[reward]
fn has_motif(#[param] motif: &[u32], seq: &[u32]) -> f64 {
    f64::from(u8::from(seq.windows(motif.len()).any(|w| w == motif)))
}

fn main() {}
