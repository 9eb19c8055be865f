//! Fixtures of the importer tests (`import_sedd.rs`, `import_mdlm.rs`): the committed checkpoints under
//! `tests/fixtures/models`, their reference inputs and outputs, and the comparison.

use std::path::{Path, PathBuf};

use sepo::dfdx::prelude::Cpu;
use sepo::score::import::ImportedDit;
use sepo::score::ScoreModel;

/// A path under `tests/fixtures/models`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(rel)
}

pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sepo-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fixed inputs and the reference outputs of an `expected*.json`.
pub struct Expected {
    pub batch: usize,
    pub length: usize,
    pub tokens: Vec<usize>,
    pub sigma_bar: Vec<f64>,
    pub outputs: Vec<f64>,
}

pub fn expected(rel: &str) -> Expected {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap();
    let nums = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    Expected {
        batch: v["batch"].as_u64().unwrap() as usize,
        length: v["length"].as_u64().unwrap() as usize,
        tokens: nums("tokens").into_iter().map(|t| t as usize).collect(),
        sigma_bar: nums("sigma_bar"),
        outputs: nums("outputs"),
    }
}

/// Largest `|a − b| / max(|b|, 1)`: relative error, absolute below magnitude 1.
pub fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

pub fn scores(model: &ImportedDit<f32, Cpu>, e: &Expected) -> Vec<f64> {
    model
        .log_scores_host(&e.tokens, e.batch, e.length, &e.sigma_bar)
        .unwrap()
}
