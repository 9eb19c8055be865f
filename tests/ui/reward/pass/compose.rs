// Rewards compose with `*` and `+` into core's `Scaled` and `Sum`, which are rewards themselves.
use sepo::prelude::*;
use sepo::reward::{evaluate, Reward, Scaled, Sum};

#[reward(range = 0.0..=1.0)]
fn gc_content(seq: &[u32]) -> f32 {
    seq.iter().filter(|&&t| t == 1 || t == 2).count() as f32 / seq.len().max(1) as f32
}

#[reward(range = 0.0..=1.0)]
fn has_motif(seq: &[u32], #[param] motif: &[u32]) -> f32 {
    f32::from(u8::from(seq.windows(motif.len()).any(|w| w == motif)))
}

pub fn main() {
    let reward: Sum<Scaled<GcContent>, HasMotif> = 0.5 * GcContent + HasMotif { motif: vec![1, 2, 2] };
    assert_eq!(reward.range(), Some((0.0, 1.5)));
    let batch: Vec<&[usize]> = vec![&[1, 2, 2, 0], &[0, 0, 3, 3]];
    assert_eq!(evaluate(&reward, &batch).unwrap(), vec![1.375, 0.0]);
    let three = HasMotif::new(vec![0]) * 2.0 + GcContent + 0.25 * GcContent;
    assert_eq!(evaluate(&three, &batch).unwrap(), vec![2.0 + 0.75 * 1.25, 2.0]);
}
