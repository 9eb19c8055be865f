//! In-library classifier rewards trained on labelled sequences read from a CSV (issue 18, "Rewards
//! that are models"): typed errors per bad row, a train/validation split, save and reload, and
//! held-out quality on synthetic data whose label is a known motif function, against derived bounds.

use std::io::Write;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use sepo::prelude::*;
use sepo::reward::{
    ConvClassifier, ConvClassifierConfig, LabelKind, Labelled, Pooling, TrainConfig,
};

const DNA: [char; 4] = ['A', 'C', 'G', 'T'];
const L: usize = 20;
const ROWS: usize = 2000;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sepo-classifier-{}-{name}", std::process::id()))
}

fn write_csv(name: &str, rows: &[(String, String)]) -> PathBuf {
    let path = temp(name);
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "sequence,label").unwrap();
    for (s, y) in rows {
        writeln!(f, "{s},{y}").unwrap();
    }
    path
}

fn random_dna<R: Rng>(rng: &mut R) -> Vec<char> {
    (0..L).map(|_| DNA[rng.gen_range(0..4)]).collect()
}

fn occurrences(seq: &[char], motif: &str) -> usize {
    let m: Vec<char> = motif.chars().collect();
    seq.windows(m.len()).filter(|w| *w == m.as_slice()).count()
}

#[test]
fn bad_rows_are_typed_errors_naming_their_line() {
    let cases: [(&str, &str, usize, &str); 6] = [
        (
            "ACGT,1\nACGN,0\n",
            "binary",
            3,
            "unknown symbol 'N' at position 3",
        ),
        ("ACGT,1\nACGT,yes\n", "binary", 3, "not a number"),
        ("ACGT,1\nACGT,2\n", "binary", 3, "must be 0 or 1"),
        ("ACGT,1\nACGTA,0\n", "binary", 3, "length 5"),
        ("ACGT,1\nACGT,0,extra\n", "binary", 3, "expected 2 fields"),
        ("ACGT,0.5\nACGT,inf\n", "regression", 3, "not finite"),
    ];
    for (i, (body, kind, line, needle)) in cases.iter().enumerate() {
        let path = temp(&format!("bad{i}.csv"));
        std::fs::write(&path, format!("sequence,label\n{body}")).unwrap();
        let kind = if *kind == "binary" {
            LabelKind::Binary
        } else {
            LabelKind::Regression
        };
        match Labelled::from_csv(&path, "ACGT", kind) {
            Err(sepo::Error::BadRecord { record, reason, .. }) => {
                assert_eq!(record, *line, "{body}: {reason}");
                assert!(reason.contains(needle), "{body}: {reason}");
            }
            other => panic!("{body}: {other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
    }
    // Header only: nothing to train on. Lower case and comments are accepted.
    let path = temp("empty.csv");
    std::fs::write(&path, "sequence,label\n").unwrap();
    assert!(matches!(
        Labelled::from_csv(&path, "ACGT", LabelKind::Binary),
        Err(sepo::Error::EmptyCorpus { .. })
    ));
    std::fs::write(&path, "# a comment\nacgt,1\nTTTT,0\n").unwrap();
    let data = Labelled::from_csv(&path, "ACGT", LabelKind::Binary).unwrap();
    assert_eq!(data.sequences, vec![vec![0, 1, 2, 3], vec![3, 3, 3, 3]]);
    assert_eq!(data.labels, vec![1.0, 0.0]);
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        Labelled::from_csv(&temp("missing.csv"), "ACGT", LabelKind::Binary),
        Err(sepo::Error::Io { .. })
    ));
}

/// Binary task: label 1 iff `TATA` occurs in a random 20-mer (planted in half of the rows).
///
/// Bound: the label is a deterministic function of the sequence that the architecture represents
/// exactly (a width-4 filter `+1` on `T,A,T,A` and `−1` elsewhere with bias −3 fires 1 on an
/// occurrence and 0 otherwise; max-pooling over all 17 windows gives presence), so the Bayes accuracy
/// is 1. The held-out accuracy on 400 rows must reach 0.97: at most 12 errors, a residual for
/// optimisation, far above the majority-class rate (≈ 0.5; its 4-standard-error band on 400 rows
/// ends near 0.6).
#[test]
fn a_binary_motif_classifier_trains_validates_saves_and_scores() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let rows: Vec<(String, String)> = (0..ROWS)
        .map(|i| {
            let mut s = random_dna(&mut rng);
            if i % 2 == 0 {
                let at = rng.gen_range(0..=L - 4);
                s[at..at + 4].copy_from_slice(&['T', 'A', 'T', 'A']);
            }
            let y = u8::from(occurrences(&s, "TATA") > 0);
            (s.into_iter().collect(), y.to_string())
        })
        .collect();
    let path = write_csv("binary.csv", &rows);
    let data = Labelled::from_csv(&path, "ACGT", LabelKind::Binary).unwrap();
    assert_eq!((data.len(), data.seq_len()), (ROWS, L));
    let config = ConvClassifierConfig {
        alphabet: 4,
        len: L,
        width: 4,
        channels: 8,
        hidden: 8,
        pooling: Pooling::Max,
        kind: LabelKind::Binary,
    };
    let train = TrainConfig {
        epochs: 25,
        batch_size: 64,
        optimizer: AdamW::with_lr(1e-2),
        valid_fraction: 0.2,
        seed: 3,
    };
    let (model, valid) = ConvClassifier::fit(config, &data, &train).unwrap();
    let majority = data.labels.iter().sum::<f64>() / ROWS as f64;
    eprintln!("binary: {valid:?}, label-1 rate {majority:.3}");
    assert_eq!(valid.rows, 400);
    assert!(valid.accuracy.unwrap() >= 0.97, "{valid:?}");

    // Saved and reloaded: identical predictions; used as a reward with range [0, 1].
    let file = temp("binary.safetensors");
    model.save(&file).unwrap();
    let back = ConvClassifier::load(&file).unwrap();
    let batch: Vec<&[usize]> = data.sequences[..64].iter().map(Vec::as_slice).collect();
    assert_eq!(
        model.predict(&batch).unwrap(),
        back.predict(&batch).unwrap()
    );
    assert_eq!(back.range(), Some((0.0, 1.0)));
    let scores = evaluate(&back, &batch).unwrap();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    // A mask token or a wrong length: typed errors.
    let bad: Vec<&[usize]> = vec![&[4; L]];
    assert!(matches!(
        back.predict(&bad),
        Err(sepo::Error::TokenOutOfVocab { token: 4, .. })
    ));
    assert!(evaluate(&back, &bad).is_err());
    std::fs::write(&file, b"junk").unwrap();
    assert!(matches!(
        ConvClassifier::load(&file),
        Err(sepo::Error::CorruptCheckpoint { .. })
    ));
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// Regression task: label = (number of `GC` dinucleotides) + N(0, 0.5²) on uniform random 20-mers.
///
/// Bound: with `f` the count and `ε` the noise, the best predictor is `f` itself, whose correlation
/// with the label is `ρ* = sd(f)/√(Var f + σ²)`. `f = Σ_{i<19} I_i`, `I_i = [x_i x_{i+1} = GC]`,
/// `P(I_i) = 1/16`; neighbours cannot both fire (`x_{i+1}` would be C and G), so
/// `Cov(I_i, I_{i+1}) = −1/256` and others vanish: `Var f = 19·(1/16)(15/16) − 2·18/256 = 249/256`,
/// `ρ* = √(249/(249 + 64)) ≈ 0.892`. The architecture represents `f` exactly (a width-2 filter firing
/// on `GC`, mean-pooled over the 19 windows, scaled by 19). The sample correlation on `n = 400`
/// held-out rows has standard error ≈ `(1 − ρ*²)/√n ≈ 0.010`, so the fit must land within 4 standard
/// errors of the ceiling from below, `ρ̂ ≥ ρ* − 0.041`, and cannot exceed it by more (a check that the
/// validation rows were not trained on).
#[test]
fn a_regression_on_a_motif_count_reaches_the_derived_correlation_ceiling() {
    let sigma = 0.5;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let rows: Vec<(String, String)> = (0..ROWS)
        .map(|_| {
            let s = random_dna(&mut rng);
            let noise: f64 =
                rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            let y = occurrences(&s, "GC") as f64 + sigma * noise;
            (s.into_iter().collect(), format!("{y:.6}"))
        })
        .collect();
    let path = write_csv("regression.csv", &rows);
    let data = Labelled::from_csv(&path, "ACGT", LabelKind::Regression).unwrap();
    let config = ConvClassifierConfig {
        alphabet: 4,
        len: L,
        width: 2,
        channels: 8,
        hidden: 8,
        pooling: Pooling::Mean,
        kind: LabelKind::Regression,
    };
    let train = TrainConfig {
        epochs: 25,
        batch_size: 64,
        optimizer: AdamW::with_lr(1e-2),
        valid_fraction: 0.2,
        seed: 5,
    };
    let (model, valid) = ConvClassifier::fit(config, &data, &train).unwrap();
    let var_f = 249.0 / 256.0;
    let ceiling = (var_f / (var_f + sigma * sigma)).sqrt();
    let se = (1.0 - ceiling * ceiling) / (valid.rows as f64).sqrt();
    let rho = valid.correlation.unwrap();
    eprintln!(
        "regression: {valid:?}; ceiling ρ* = {ceiling:.4}, 4·se = {:.4}",
        4.0 * se
    );
    assert!(
        rho >= ceiling - 4.0 * se,
        "ρ̂ = {rho:.4} < {:.4}",
        ceiling - 4.0 * se
    );
    assert!(rho <= ceiling + 4.0 * se, "ρ̂ = {rho:.4} above the ceiling");
    // No declared range for a regression; predictions on the label scale.
    assert_eq!(model.range(), None);
    let mut two = vec![0; L]; // A…AGCA…AGCA…: 2 occurrences
    two[2..4].copy_from_slice(&[2, 1]);
    two[10..12].copy_from_slice(&[2, 1]);
    let none: Vec<usize> = vec![0; L];
    let p = model.predict(&[&two, &none]).unwrap();
    assert!((p[0] - 2.0).abs() < 0.75 && p[1].abs() < 0.75, "{p:?}");
    std::fs::remove_file(&path).unwrap();
}
