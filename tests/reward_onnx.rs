//! ONNX rewards (issue 18, "Rewards that are models"): a 1-D CNN over one-hot DNA exported from
//! PyTorch by `tools/export_onnx_classifier.py` scores the committed inputs as PyTorch did (≤ 1e-5),
//! through both declared encodings; declarations that do not fit the file are typed errors; the
//! reward is usable from `#[reward]` declarations and from `policy!` by path.

use std::path::{Path, PathBuf};

use sepo::prelude::*;
use sepo::reward::{OnnxDtype, OnnxEncoding, OnnxReward, OnnxSpec};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(name)
}

/// (inputs, PyTorch logits) from `classifier_expected.json`.
fn expected() -> (Vec<Vec<usize>>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(fixture("classifier_expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = |key: &str| -> Vec<Vec<f64>> {
        json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let inputs = rows("inputs")
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as usize).collect())
        .collect();
    (inputs, rows("logits"))
}

fn onehot(output: usize) -> OnnxReward {
    OnnxReward::load(
        &fixture("classifier_onehot.onnx"),
        OnnxSpec::one_hot(4, Some(8), output),
    )
    .unwrap()
}

/// The GC-rich logit of the committed classifier, as a `policy!` reward path would name it.
pub fn gc_logit() -> sepo::Result<OnnxReward> {
    OnnxReward::load(
        &fixture("classifier_onehot.onnx"),
        OnnxSpec::one_hot(4, Some(8), 1),
    )
}

#[test]
fn onnx_scores_match_the_pytorch_original() {
    let (inputs, logits) = expected();
    assert!(inputs.len() >= 8);
    let batch: Vec<&[usize]> = inputs.iter().map(Vec::as_slice).collect();
    let ids = |output: usize| {
        OnnxReward::load(
            &fixture("classifier_ids.onnx"),
            OnnxSpec::token_ids(4, Some(8), output),
        )
        .unwrap()
    };
    let any_length = |output: usize| {
        OnnxReward::load(
            &fixture("classifier_onehot.onnx"),
            OnnxSpec::one_hot(4, None, output),
        )
        .unwrap()
    };
    let mut worst: f64 = 0.0;
    for output in 0..2 {
        for reward in [onehot(output), ids(output), any_length(output)] {
            let got = evaluate(&reward, &batch).unwrap();
            for (g, row) in got.iter().zip(&logits) {
                worst = worst.max((g - row[output]).abs());
                assert!(
                    (g - row[output]).abs() <= 1e-5,
                    "{:?} column {output}: {g} vs PyTorch {}",
                    reward.spec().encoding,
                    row[output]
                );
            }
        }
    }
    eprintln!("largest |tract − PyTorch| over 12 inputs × 2 columns × 3 declarations: {worst:.2e}");
    // Probability readout: softmax of the reference logits, computed here from PyTorch's numbers.
    let p = OnnxReward::load(
        &fixture("classifier_onehot.onnx"),
        OnnxSpec::one_hot(4, Some(8), 1).probability(),
    )
    .unwrap();
    assert_eq!(p.range(), Some((0.0, 1.0)));
    for (g, row) in evaluate(&p, &batch).unwrap().iter().zip(&logits) {
        let want = 1.0 / (1.0 + (row[0] - row[1]).exp());
        assert!((g - want).abs() <= 1e-5, "{g} vs {want}");
    }
    // Batching: one sequence at a time, or in chunks of 5 rows, gives the same values.
    let mut spec = OnnxSpec::one_hot(4, Some(8), 1);
    spec.max_batch = 5;
    let chunked = OnnxReward::load(&fixture("classifier_onehot.onnx"), spec).unwrap();
    let whole = evaluate(&onehot(1), &batch).unwrap();
    let single: Vec<f64> = batch
        .iter()
        .map(|s| evaluate(&onehot(1), &[*s]).unwrap()[0])
        .collect();
    let by_chunks = evaluate(&chunked, &batch).unwrap();
    for i in 0..batch.len() {
        assert!((whole[i] - single[i]).abs() <= 1e-5 && (whole[i] - by_chunks[i]).abs() <= 1e-5);
    }
    // The classifier learnt its task: GC-rich row 0 scores high, AT-rich row 1 low.
    assert!(whole[0] > 0.0 && whole[1] < 0.0);
}

#[test]
fn declarations_that_do_not_fit_the_model_are_typed_errors() {
    let path = fixture("classifier_onehot.onnx");
    let load = |spec: OnnxSpec| OnnxReward::load(&path, spec).unwrap_err();
    // Wrong alphabet: the file fixes the last axis at 4.
    let e = load(OnnxSpec::one_hot(5, Some(8), 0));
    assert!(
        matches!(&e, sepo::Error::CheckpointMismatch { what, .. } if what == "input shape"),
        "{e}"
    );
    // Token ids declared for a one-hot float model: the element type differs.
    let e = load(OnnxSpec::token_ids(4, Some(8), 0));
    assert!(
        matches!(&e, sepo::Error::CheckpointMismatch { what, .. } if what == "input element type"),
        "{e}"
    );
    // One-hot declared for the ids model: the element type differs too.
    let e = OnnxReward::load(
        &fixture("classifier_ids.onnx"),
        OnnxSpec::one_hot(4, Some(8), 0),
    )
    .unwrap_err();
    assert!(matches!(e, sepo::Error::CheckpointMismatch { .. }), "{e}");
    // Ids in int32 where the file says int64.
    let mut spec = OnnxSpec::token_ids(4, Some(8), 0);
    spec.dtype = OnnxDtype::I32;
    let e = OnnxReward::load(&fixture("classifier_ids.onnx"), spec).unwrap_err();
    assert!(
        matches!(&e, sepo::Error::CheckpointMismatch { what, .. } if what == "input element type"),
        "{e}"
    );
    // An output column the model does not have (it has 2).
    let e = load(OnnxSpec::one_hot(4, Some(8), 2));
    assert!(
        matches!(&e, sepo::Error::CheckpointMismatch { what, .. } if what == "output column"),
        "{e}"
    );
    // An inconsistent declaration, a file that is not ONNX, a missing file.
    let mut spec = OnnxSpec::one_hot(4, Some(8), 0);
    spec.encoding = OnnxEncoding::OneHot { alphabet: 0 };
    assert!(matches!(load(spec), sepo::Error::InvalidParameter { .. }));
    let garbage =
        std::env::temp_dir().join(format!("sepo-onnx-garbage-{}.onnx", std::process::id()));
    std::fs::write(&garbage, b"definitely not protobuf \xff\xff\xff").unwrap();
    let e = OnnxReward::load(&garbage, OnnxSpec::one_hot(4, Some(8), 0)).unwrap_err();
    assert!(matches!(e, sepo::Error::CorruptCheckpoint { .. }), "{e}");
    std::fs::remove_file(&garbage).unwrap();
    assert!(matches!(
        OnnxReward::load(
            Path::new("/nonexistent/x.onnx"),
            OnnxSpec::one_hot(4, Some(8), 0)
        ),
        Err(sepo::Error::Io { .. })
    ));
}

#[test]
fn bad_sequences_are_typed_errors_naming_the_sample() {
    let r = onehot(1);
    // A mask token (4) is outside the one-hot alphabet.
    let bad: Vec<&[usize]> = vec![&[0, 1, 2, 3, 0, 1, 2, 3], &[0, 1, 2, 3, 4, 1, 2, 3]];
    assert!(matches!(
        r.try_score(&bad),
        Err(sepo::Error::TokenOutOfVocab {
            sequence: 1,
            position: 4,
            token: 4,
            vocab: 4
        })
    ));
    assert!(matches!(
        evaluate(&r, &bad),
        Err(sepo::Error::NonFiniteReward { .. })
    ));
    let short: Vec<&[usize]> = vec![&[0, 1, 2]];
    assert!(matches!(
        r.try_score(&short),
        Err(sepo::Error::ShapeMismatch { .. })
    ));
}

/// A `#[reward]` declaration around an ONNX model: the model is a `#[param]` (a field of the type).
#[reward(batched)]
fn gc_rich(batch: &[&[usize]], #[param] model: &OnnxReward) -> Vec<f64> {
    model.score_batch(batch)
}

#[test]
fn reward_declarations_wrap_an_onnx_model() {
    let (inputs, logits) = expected();
    let batch: Vec<&[usize]> = inputs.iter().map(Vec::as_slice).collect();
    let reward = GcRich::new(gc_logit().unwrap());
    assert_eq!(Reward::name(&reward), "gc_rich");
    let got = evaluate(&reward, &batch).unwrap();
    for (g, row) in got.iter().zip(&logits) {
        assert!((g - row[1]).abs() <= 1e-5);
    }
    // Composes like any reward.
    let half = evaluate(&(0.5 * GcRich::new(gc_logit().unwrap())), &batch).unwrap();
    assert!((half[0] - 0.5 * got[0]).abs() < 1e-12);
}

policy! {
    /// The ONNX reward named by path (a fn returning `Result<OnnxReward>`), no macro support needed.
    ByPath {
        reward: gc_logit()?,
        eval_reward: GcRich::new(gc_logit()?),
        batch: 8,
        group_size: 4,
        iterations: 2,
        epochs: 1,
        minibatch: 8,
        progress: false,
    }
}

#[test]
fn policies_name_onnx_rewards_by_path() {
    let model = Mlp::new(
        MlpConfig::tiny(5, 8, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap();
    let mut run = ByPath::build_with(model).unwrap();
    let history = run.fit().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|m| m.reward.is_finite()));
}
