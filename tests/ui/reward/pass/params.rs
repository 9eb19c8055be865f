// `#[param]` arguments become public fields (`&[T]` → `Vec<T>`, `&str` → `String`, `&T` → `T`,
// values stay) with a constructor `new` in declaration order.
use sepo::prelude::*;
use sepo::reward::evaluate;

#[reward]
fn weighted_motif(
    seq: &[u32],
    #[param] motif: &[u32],
    #[param] weight: f64,
    #[param] label: &str,
    #[param] offset: &f64,
) -> f64 {
    let hits = seq.windows(motif.len()).filter(|w| *w == motif).count();
    assert!(!label.is_empty());
    weight * hits as f64 + offset
}

pub fn main() {
    let reward = WeightedMotif::new(vec![1, 2], 2.0, "motif".to_string(), 0.5);
    let same = WeightedMotif {
        motif: vec![1, 2],
        weight: 2.0,
        label: String::from("motif"),
        offset: 0.5,
    };
    assert_eq!(reward, same);
    let batch: Vec<&[usize]> = vec![&[1, 2, 1, 2], &[0]];
    assert_eq!(evaluate(&reward, &batch).unwrap(), vec![4.5, 0.5]);
}
