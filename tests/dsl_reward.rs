//! `#[reward]`: values, token conversion, parameters, composition, and typed errors naming the sample.

use sepo::prelude::*;
use sepo::reward::{evaluate, Reward};

/// Fraction of G or C in a DNA sequence (tokens 0..4 = A, C, G, T).
#[reward(range = 0.0..=1.0)]
fn gc_content(seq: &[u32]) -> f32 {
    let gc = seq.iter().filter(|&&t| t == 1 || t == 2).count();
    gc as f32 / seq.len().max(1) as f32
}

/// 1 if `motif` occurs, else 0.
#[reward(range = 0.0..=1.0)]
fn has_motif(seq: &[usize], #[param] motif: &[usize]) -> f64 {
    f64::from(u8::from(
        !motif.is_empty() && seq.windows(motif.len()).any(|w| w == motif),
    ))
}

/// Length minus `offset`, scaled: parameters of several kinds.
#[reward(name = "shifted_length")]
fn length(seq: &[u8], #[param] offset: f64, #[param] label: &str, #[param] scale: &f64) -> f64 {
    assert_eq!(label, "len");
    (seq.len() as f64 - offset) * scale
}

/// A "classifier": the whole batch at once, normalised by the longest sequence.
#[reward(batched, range = 0.0..)]
fn relative_length(batch: &[&[u32]]) -> Vec<f32> {
    let longest = batch.iter().map(|s| s.len()).max().unwrap_or(0).max(1) as f32;
    batch.iter().map(|s| s.len() as f32 / longest).collect()
}

/// NaN on sequences starting with token 3.
#[reward]
fn nan_on_t(seq: &[usize]) -> f64 {
    if seq.first() == Some(&3) {
        f64::NAN
    } else {
        0.0
    }
}

/// Declares `[0, 1]` but returns the first token.
#[reward(range = 0.0..=1.0)]
fn first_token(seq: &[u64]) -> f64 {
    seq[0] as f64
}

fn batch() -> Vec<&'static [usize]> {
    vec![&[1, 2, 0, 3], &[0, 0, 0, 3], &[2, 2, 1, 2, 0, 0, 0, 0]]
}

#[test]
fn functions_stay_callable_as_written() {
    assert_eq!(gc_content(&[1, 2, 0, 3]), 0.5);
    assert_eq!(has_motif(&[0, 1, 2], &[1, 2]), 1.0);
    assert_eq!(length(&[0, 0, 0], 1.0, "len", &2.0), 4.0);
}

#[test]
fn sequence_rewards_score_each_sequence() {
    assert_eq!(Reward::name(&GcContent), "gc_content");
    assert_eq!(Reward::range(&GcContent), Some((0.0, 1.0)));
    let default: GcContent = Default::default();
    assert_eq!(GcContent, default);
    assert_eq!(evaluate(&GcContent, &batch()).unwrap(), vec![0.5, 0.0, 0.5]);

    let motif = HasMotif::new(vec![2, 0]);
    assert_eq!(motif.motif, vec![2, 0]);
    assert_eq!(evaluate(&motif, &batch()).unwrap(), vec![1.0, 0.0, 1.0]);
}

#[test]
fn parameters_become_fields_of_their_owned_types() {
    let reward = Length {
        offset: 1.0,
        label: String::from("len"),
        scale: 0.5,
    };
    assert_eq!(Reward::name(&reward), "shifted_length");
    assert_eq!(Reward::range(&reward), None);
    assert_eq!(evaluate(&reward, &batch()).unwrap(), vec![1.5, 1.5, 3.5]);
    assert_eq!(reward.clone(), Length::new(1.0, "len".into(), 0.5));
}

#[test]
fn batched_rewards_see_the_whole_batch() {
    assert_eq!(Reward::range(&RelativeLength), Some((0.0, f64::INFINITY)));
    assert_eq!(
        evaluate(&RelativeLength, &batch()).unwrap(),
        vec![0.5, 0.5, 1.0]
    );
    let empty: Vec<&[usize]> = vec![&[], &[]];
    assert_eq!(evaluate(&RelativeLength, &empty).unwrap(), vec![0.0, 0.0]);
}

#[test]
fn tokens_too_large_for_the_fn_type_saturate() {
    #[reward]
    fn largest(seq: &[u8]) -> f64 {
        f64::from(*seq.iter().max().unwrap_or(&0))
    }
    let batch: Vec<&[usize]> = vec![&[3, 300]];
    assert_eq!(evaluate(&Largest, &batch).unwrap(), vec![255.0]);
}

#[test]
fn rewards_compose_with_operators() {
    let reward = 0.5 * GcContent + HasMotif { motif: vec![2, 0] };
    assert_eq!(reward.name(), "0.5*gc_content+has_motif");
    assert_eq!(reward.range(), Some((0.0, 1.5)));
    assert_eq!(evaluate(&reward, &batch()).unwrap(), vec![1.25, 0.0, 1.25]);

    let longer = GcContent * 2.0 + RelativeLength + -1.0 * GcContent;
    assert_eq!(
        evaluate(&longer, &batch()).unwrap(),
        vec![0.5 + 0.5, 0.5, 0.5 + 1.0]
    );
    let _: Box<dyn Reward> = Box::new(HasMotif::new(vec![1]) + GcContent);
}

#[test]
fn a_non_finite_score_is_an_error_naming_the_sample() {
    let batch: Vec<&[usize]> = vec![&[0], &[1], &[3, 0]];
    match evaluate(&NanOnT, &batch) {
        Err(Error::NonFiniteReward {
            reward,
            sample,
            value,
        }) => {
            assert_eq!((reward.as_str(), sample), ("nan_on_t", 2));
            assert!(value.is_nan());
        }
        other => panic!("expected NonFiniteReward, got {other:?}"),
    }
    // Also through a composition, where the sum is what is named.
    match evaluate(&(GcContent + NanOnT), &batch) {
        Err(Error::NonFiniteReward { reward, sample, .. }) => {
            assert_eq!((reward.as_str(), sample), ("gc_content+nan_on_t", 2))
        }
        other => panic!("expected NonFiniteReward, got {other:?}"),
    }
}

#[test]
fn a_score_outside_the_declared_range_is_an_error_naming_the_sample() {
    let batch: Vec<&[usize]> = vec![&[0], &[1], &[2]];
    match evaluate(&FirstToken, &batch) {
        Err(Error::RewardOutOfRange {
            reward,
            sample,
            value,
            min,
            max,
        }) => {
            assert_eq!(reward, "first_token");
            assert_eq!((sample, value, min, max), (2, 2.0, 0.0, 1.0));
        }
        other => panic!("expected RewardOutOfRange, got {other:?}"),
    }
}
