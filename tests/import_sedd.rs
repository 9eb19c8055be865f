//! SEDD checkpoints in (issue 18, "Models in"): the tiny SEDD-architecture checkpoint that
//! `tools/export_sedd.py` wrote with a faithful re-implementation of SEDD's model code loads into sepo
//! and reproduces the reference log-scores; its F16, BF16 and `torch.save` copies load within their
//! format's precision (bit-identically for the `.bin`); sepo → export → import is bit-identical; and a
//! sepo checkpoint of the imported model reloads identically.

use sepo::dfdx::prelude::Cpu;
use sepo::score::import::{export_dir, import_dir, import_files, ImportedDit, Output};
use sepo::score::{ModelKind, ScoreModel};
use sepo::train::Checkpoint;
use sepo::Error;

#[path = "support/import_fixture.rs"]
mod import_fixture;
use import_fixture::{expected, fixture, max_rel_err, scores, tmp};

fn bits(model: &ImportedDit<f32, Cpu>) -> Vec<u32> {
    model
        .params()
        .to_host()
        .into_iter()
        .flat_map(|(_, _, v)| v)
        .map(f32::to_bits)
        .collect()
}

#[test]
fn sedd_tiny_reproduces_the_reference_log_scores() {
    let model = import_dir::<f32, Cpu>(&fixture("sedd-tiny"), &Cpu::default()).unwrap();
    assert_eq!(
        model.output(),
        Output::Sedd {
            scale_by_sigma: true
        }
    );
    assert_eq!(model.num_states(), 28); // 27 tokens + the mask
    let e = expected("sedd-tiny/expected.json");
    assert!(e.batch >= 8);
    let mask = model.num_states() - 1;
    let masked = e.tokens.iter().filter(|&&t| t == mask).count();
    assert!(
        masked > 0 && masked < e.tokens.len(),
        "masked and clean positions alike"
    );
    let got = scores(&model, &e);
    let err = max_rel_err(&got, &e.outputs);
    eprintln!(
        "sedd-tiny: max relative error {err:.3e} over {} entries",
        got.len()
    );
    assert!(err < 1e-5, "max relative error {err:.3e}");
}

#[test]
fn f16_and_bf16_copies_load_within_their_precision() {
    let dev = Cpu::default();
    let reference = import_dir::<f32, Cpu>(&fixture("sedd-tiny"), &dev).unwrap();
    let config = fixture("sedd-tiny/config.json");
    // Unit roundoff of the format: round-to-nearest moves a value by at most u·|w| (normal range)
    // or half the smallest subnormal spacing.
    for (file, unit, tiny) in [
        ("model.f16.safetensors", 2f64.powi(-11), 2f64.powi(-25)),
        ("model.bf16.safetensors", 2f64.powi(-8), 2f64.powi(-134)),
    ] {
        let half = import_files::<f32, Cpu>(
            &config,
            &fixture(&format!("sedd-tiny/variants/{file}")),
            &dev,
        )
        .unwrap();
        let (a, b) = (reference.params().flat_f64(), half.params().flat_f64());
        assert_eq!(a.len(), b.len());
        let mut changed = 0;
        for (w, h) in a.iter().zip(&b) {
            assert!(
                (w - h).abs() <= unit * w.abs() + tiny,
                "{file}: {w} read as {h}"
            );
            changed += usize::from(w != h);
        }
        assert!(changed > a.len() / 2, "{file} holds rounded values");
    }
}

#[test]
fn torch_save_copy_loads_bit_identically() {
    let dev = Cpu::default();
    let reference = import_dir::<f32, Cpu>(&fixture("sedd-tiny"), &dev).unwrap();
    // A model folder holding only `pytorch_model.bin` (as older hub uploads do).
    let dir = tmp("bin");
    std::fs::copy(fixture("sedd-tiny/config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(
        fixture("sedd-tiny/variants/pytorch_model.bin"),
        dir.join("pytorch_model.bin"),
    )
    .unwrap();
    let from_bin = import_dir::<f32, Cpu>(&dir, &dev).unwrap();
    assert_eq!(bits(&reference), bits(&from_bin));
    let e = expected("sedd-tiny/expected.json");
    assert_eq!(scores(&reference, &e), scores(&from_bin, &e));
}

#[test]
fn sepo_export_import_round_trip_is_bit_identical() {
    let dev = Cpu::default();
    let imported = import_dir::<f32, Cpu>(&fixture("sedd-tiny"), &dev).unwrap();
    // A sepo-initialised model of the same architecture (not the fixture's weights) as well.
    let fresh = ImportedDit::<f32, Cpu>::new(*imported.config(), &dev, 7).unwrap();
    let e = expected("sedd-tiny/expected.json");
    for (name, model) in [("imported", &imported), ("fresh", &fresh)] {
        let dir = tmp(&format!("export-{name}"));
        export_dir(model, &dir).unwrap();
        let back = import_dir::<f32, Cpu>(&dir, &dev).unwrap();
        assert_eq!(back.config(), model.config());
        assert_eq!(bits(&back), bits(model), "{name}");
        assert_eq!(scores(&back, &e), scores(model, &e), "{name}");
    }
}

#[test]
fn imported_model_saves_and_reloads_as_a_sepo_checkpoint() {
    let dev = Cpu::default();
    let model = import_dir::<f32, Cpu>(&fixture("sedd-tiny"), &dev).unwrap();
    let ckpt = Checkpoint::new(tmp("checkpoint"));
    ckpt.save_model(&model, serde_json::json!({ "source": "sedd-tiny" }))
        .unwrap();
    let (back, extra) = ckpt.load_model::<ImportedDit<f32, Cpu>>(&dev).unwrap();
    assert_eq!(extra["source"], "sedd-tiny");
    assert_eq!(back.config(), ModelKind::config(&model));
    assert_eq!(bits(&back), bits(&model));
}

#[test]
fn damaged_or_foreign_checkpoints_are_typed_errors() {
    let dev = Cpu::default();
    // No weights in the folder.
    let empty = tmp("empty");
    std::fs::copy(fixture("sedd-tiny/config.json"), empty.join("config.json")).unwrap();
    assert!(matches!(
        import_dir::<f32, Cpu>(&empty, &dev),
        Err(Error::UnsupportedWeights { .. })
    ));
    // A config.json of neither family.
    let foreign = tmp("foreign");
    std::fs::write(
        foreign.join("config.json"),
        br#"{"model_type": "gpt2", "n_embd": 8}"#,
    )
    .unwrap();
    std::fs::copy(
        fixture("sedd-tiny/model.safetensors"),
        foreign.join("model.safetensors"),
    )
    .unwrap();
    assert!(matches!(
        import_dir::<f32, Cpu>(&foreign, &dev),
        Err(Error::UnsupportedWeights { .. })
    ));
    // Weights of another width: the first tensor whose shape differs is named.
    let wider = tmp("wider");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("sedd-tiny/config.json")).unwrap()).unwrap();
    config["model"]["hidden_size"] = 32.into();
    std::fs::write(wider.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixture("sedd-tiny/model.safetensors"),
        wider.join("model.safetensors"),
    )
    .unwrap();
    assert!(matches!(
        import_dir::<f32, Cpu>(&wider, &dev),
        Err(Error::CheckpointMismatch { .. })
    ));
    // A truncated weights file.
    let cut = tmp("cut");
    std::fs::copy(fixture("sedd-tiny/config.json"), cut.join("config.json")).unwrap();
    let bytes = std::fs::read(fixture("sedd-tiny/model.safetensors")).unwrap();
    std::fs::write(cut.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        import_dir::<f32, Cpu>(&cut, &dev),
        Err(Error::CorruptCheckpoint { .. })
    ));
}
