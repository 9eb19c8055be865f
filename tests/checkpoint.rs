//! Checkpoints: bit-identical round trips, resumable pretraining, and typed errors for damaged files
//! (issue "core", must-show 6).

use sepo::error::Integrity;
use sepo::graph::Absorbing;
use sepo::prelude::*;

fn corpus() -> Corpus {
    let seqs: Vec<Vec<usize>> = (0..64)
        .map(|i| vec![i % 4, (i / 4) % 4, (i / 16) % 4])
        .collect();
    Corpus::new(&seqs, 4).unwrap()
}

fn trainer(seed: u64) -> Pretrainer<Mlp<f32, Cpu>, Absorbing, LogLinear> {
    let model = Mlp::new(
        MlpConfig::tiny(5, 3, ScoreHead::Absorbing),
        &Cpu::default(),
        seed,
    )
    .unwrap();
    let config = PretrainConfig {
        batch_size: 16,
        ema_decay: Some(0.9),
        ..PretrainConfig::default()
    };
    Pretrainer::new(
        model,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        config,
    )
    .unwrap()
}

fn bits(store: &ParamStore<f32, Cpu>) -> Vec<u32> {
    store
        .to_host()
        .into_iter()
        .flat_map(|(_, _, v)| v)
        .map(f32::to_bits)
        .collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sepo-ckpt-{}-{name}", std::process::id()))
}

#[test]
fn round_trip_is_bit_identical_and_resume_continues_exactly() {
    let data = corpus();
    let mut a = trainer(1);
    a.fit(&data, 5, false, None).unwrap();
    let ckpt = Checkpoint::new(tmp("resume"));
    a.save(&ckpt).unwrap();
    let (loaded, extra) = ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default()).unwrap();
    assert_eq!(bits(loaded.params()), bits(a.model.params()));
    assert_eq!(extra["step"], 5);
    // Continue the original and a resumed copy (built from another seed: everything must come from disk).
    a.fit(&data, 4, false, None).unwrap();
    let mut b = trainer(2);
    b.resume(&ckpt).unwrap();
    b.fit(&data, 4, false, None).unwrap();
    assert_eq!(bits(a.model.params()), bits(b.model.params()));
    assert_eq!(
        bits(&a.ema.as_ref().unwrap().params),
        bits(&b.ema.as_ref().unwrap().params)
    );
}

#[test]
fn damaged_or_mismatched_checkpoints_are_typed_errors_and_change_nothing() {
    let data = corpus();
    let mut a = trainer(3);
    a.fit(&data, 2, false, None).unwrap();
    let ckpt = Checkpoint::new(tmp("damaged"));
    a.save(&ckpt).unwrap();
    let model_bytes = std::fs::read(ckpt.model_path()).unwrap();
    let mut b = trainer(4);
    let before = bits(b.model.params());

    // A file damaged after its commit fails its size or CRC-64 check before anything parses it.
    std::fs::write(ckpt.model_path(), &model_bytes[..model_bytes.len() / 2]).unwrap();
    let truncated = |r: &sepo::Error| {
        matches!(
            r,
            sepo::Error::CheckpointIntegrity {
                problem: Integrity::Size { .. },
                ..
            }
        )
    };
    assert!(truncated(&b.resume(&ckpt).unwrap_err()));
    assert!(truncated(
        &ckpt
            .load_model::<Mlp<f32, Cpu>>(&Cpu::default())
            .unwrap_err()
    ));
    assert_eq!(
        bits(b.model.params()),
        before,
        "a failed resume leaves the trainer as it was"
    );

    std::fs::write(ckpt.model_path(), &model_bytes).unwrap();
    std::fs::write(ckpt.config_path(), b"{ not json").unwrap();
    assert!(matches!(
        ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default()),
        Err(sepo::Error::CheckpointIntegrity { .. })
    ));
    // Committed as such, a config that does not parse is corrupt.
    ckpt.commit(
        &[
            ("model.safetensors", &model_bytes),
            ("config.json", b"{ not json"),
        ],
        2,
    )
    .unwrap();
    assert!(matches!(
        ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default()),
        Err(sepo::Error::CorruptCheckpoint { .. })
    ));

    a.save(&ckpt).unwrap();
    assert!(matches!(
        ckpt.load_model::<Transformer<f32, Cpu>>(&Cpu::default()),
        Err(sepo::Error::CheckpointMismatch { .. })
    ));
    // A wider model cannot take these weights.
    let wide = Mlp::<f32, Cpu>::new(
        MlpConfig {
            hidden: 64,
            ..MlpConfig::tiny(5, 3, ScoreHead::Absorbing)
        },
        &Cpu::default(),
        0,
    )
    .unwrap();
    let mut wide_trainer = Pretrainer::new(
        wide,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        PretrainConfig::default(),
    )
    .unwrap();
    assert!(matches!(
        wide_trainer.resume(&ckpt),
        Err(sepo::Error::CheckpointMismatch { .. })
    ));
    std::fs::remove_file(ckpt.optimizer_path()).unwrap();
    assert!(matches!(
        b.resume(&ckpt),
        Err(sepo::Error::CheckpointIntegrity {
            problem: Integrity::Missing,
            ..
        })
    ));
}
