//! Property tests over checkpoint bytes (issue 17, item 5): model, config and manifest files damaged
//! after a commit (bit flips, truncation, random bytes), or damaged bytes committed as such, never load
//! as a model with non-finite weights and never panic: each is a typed error or finite weights. Every
//! case works in a fresh temporary directory, removed afterwards.

use proptest::prelude::*;
use sepo::prelude::*;
use sepo::score::{Mlp, MlpConfig, ScoreHead, ScoreModel};

fn tiny_mlp(seed: u64) -> Mlp<f32, Cpu> {
    let config = MlpConfig {
        hidden: 8,
        depth: 1,
        ..MlpConfig::tiny(5, 3, ScoreHead::Absorbing)
    };
    Mlp::new(config, &Cpu::default(), seed).unwrap()
}

/// A fresh checkpoint directory for one case, removed when dropped.
struct TempCheckpoint(Checkpoint, std::path::PathBuf);

impl TempCheckpoint {
    fn new() -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sepo-proptest-ckpt-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(Checkpoint::new(&dir), dir)
    }
}

impl Drop for TempCheckpoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// How one file of a committed checkpoint is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Flip bit `bit % 8` of byte `at % len`.
    Flip { at: usize, bit: u8 },
    /// Keep the first `at % len` bytes.
    Truncate { at: usize },
    /// Replace the whole file.
    Replace(Vec<u8>),
}

impl Damage {
    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        match self {
            Damage::Flip { at, bit } if !out.is_empty() => {
                let i = at % out.len();
                out[i] ^= 1 << (bit % 8);
            }
            Damage::Flip { .. } => out.push(0),
            Damage::Truncate { at } => out.truncate(at % bytes.len().max(1)),
            Damage::Replace(b) => out = b.clone(),
        }
        out
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Damage::Replace),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A committed checkpoint whose model, config or manifest is damaged on disk afterwards loads as a
    /// typed error (size, CRC-64 or parse), never a panic and never a model.
    #[test]
    fn damaged_checkpoint_files_are_typed_errors(which in 0..3usize, damage in damage()) {
        let tmp = TempCheckpoint::new();
        let ckpt = &tmp.0;
        ckpt.save_model(&tiny_mlp(1), serde_json::json!({"step": 3})).unwrap();
        let path = match which {
            0 => ckpt.model_path(),
            1 => ckpt.config_path(),
            _ => tmp.1.join("manifest.json"),
        };
        let bytes = std::fs::read(&path).unwrap();
        let damaged = damage.apply(&bytes);
        std::fs::write(&path, &damaged).unwrap();
        let loaded = ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default());
        if damaged != bytes {
            prop_assert!(loaded.is_err(), "{damage:?} of {} loaded", path.display());
        }
    }

    /// Damaged bytes committed as such (so the integrity checks pass) either fail to parse with a
    /// typed error or load a model whose weights are all finite.
    #[test]
    fn committed_damaged_bytes_load_finite_or_err(model in any::<bool>(), damage in damage()) {
        let tmp = TempCheckpoint::new();
        let ckpt = &tmp.0;
        ckpt.save_model(&tiny_mlp(2), serde_json::json!({})).unwrap();
        let weights = std::fs::read(ckpt.model_path()).unwrap();
        let config = std::fs::read(ckpt.config_path()).unwrap();
        let (weights, config) = if model {
            (damage.apply(&weights), config)
        } else {
            (weights, damage.apply(&config))
        };
        ckpt.commit(&[("model.safetensors", &weights), ("config.json", &config)], 2).unwrap();
        if let Ok((m, _)) = ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default()) {
            prop_assert!(m.params().flat_f64().iter().all(|x| x.is_finite()), "{damage:?} loaded non-finite weights");
        }
    }
}

/// The last weight of a committed checkpoint set to NaN or ±∞ (its CRC then matches): loading it must
/// refuse the non-finite weight rather than hand back a model that reads NaN.
#[test]
fn committed_non_finite_weight_is_refused() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let tmp = TempCheckpoint::new();
        let ckpt = &tmp.0;
        ckpt.save_model(&tiny_mlp(3), serde_json::json!({}))
            .unwrap();
        let mut weights = std::fs::read(ckpt.model_path()).unwrap();
        let config = std::fs::read(ckpt.config_path()).unwrap();
        let n = weights.len();
        weights[n - 4..].copy_from_slice(&bad.to_le_bytes());
        ckpt.commit(
            &[("model.safetensors", &weights), ("config.json", &config)],
            2,
        )
        .unwrap();
        let loaded = ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default());
        assert!(
            matches!(loaded, Err(sepo::Error::CorruptCheckpoint { .. })),
            "{bad}: {:?}",
            loaded.map(|(m, _)| m
                .params()
                .flat_f64()
                .iter()
                .filter(|x| !x.is_finite())
                .count())
        );
    }
}
