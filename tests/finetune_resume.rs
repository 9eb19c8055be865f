//! Resuming a fine-tuning run (issue 17, item 1): a run checkpointed after `k` rounds and resumed in a
//! fresh trainer finishes bit-identical to a straight run of `2k`, metrics included and not duplicated;
//! a resume with a configuration that changes the run is refused, naming the key; a fine-tuned
//! directory loads like a pretrained one.

#[path = "support/tiny_run.rs"]
mod tiny_run;

use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::train::{MetricsWriter, Periodic};
use tiny_run::*;

const K: u64 = 4;

/// Straight: `2K` rounds. Interrupted: `K` rounds checkpointed every 2, one more round whose metrics
/// line is written but never checkpointed (a crash after the metrics write), then a trainer built
/// from another initialisation resumes, rewinds the metrics file and runs the rest. Parameters,
/// reference, AdamW moments and step, and every metrics line (but wall-clock times) are identical.
#[test]
fn a_resumed_run_is_bit_identical_to_a_straight_one_and_logs_each_round_once() {
    let dir = fresh_dir("equivalence");
    let straight_log = dir.join("straight.jsonl");
    let mut straight = tiny(1);
    let mut w = MetricsWriter::append(&straight_log).unwrap();
    straight.fit(2 * K, false, Some(&mut w)).unwrap();

    let log = dir.join("run.jsonl");
    let ckpt = Checkpoint::new(dir.join("ckpt"));
    let periodic = Periodic {
        every: 2,
        keep_last: 2,
    };
    let mut first = tiny(1);
    let mut w = MetricsWriter::append(&log).unwrap();
    first
        .fit_checkpointed(K, false, Some(&mut w), Some((&ckpt, periodic)))
        .unwrap();
    // A round past the checkpoint, logged, then lost.
    first.fit(1, false, Some(&mut w)).unwrap();
    drop((first, w));
    assert_eq!(metric_lines(&log).len() as u64, K + 1);

    let mut resumed = tiny(99);
    let r = resumed.resume(&ckpt).unwrap();
    assert_eq!(r.round, K);
    let mark = r.metrics.expect("saved with a metrics file");
    assert_eq!(mark.path, log);
    mark.rewind().unwrap();
    assert_eq!(
        metric_lines(&log).len() as u64,
        K,
        "the lost round's line is gone"
    );
    let mut w = MetricsWriter::append(&log).unwrap();
    resumed
        .fit_checkpointed(K, false, Some(&mut w), Some((&ckpt, periodic)))
        .unwrap();

    assert_eq!(state_bits(&resumed), state_bits(&straight));
    let (a, b) = (metric_lines(&straight_log), metric_lines(&log));
    assert_eq!(a.len() as u64, 2 * K);
    assert_eq!(a, b);
    let rounds: Vec<u64> = b.iter().map(|m| m["round"].as_u64().unwrap()).collect();
    assert_eq!(rounds, (0..2 * K).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).ok();
}

/// `Run` does the same by itself: `resume` restores and rewinds, `fit` checkpoints periodically.
#[test]
fn run_resume_rewinds_its_metrics_and_continues_exactly() {
    let dir = fresh_dir("run");
    let options = |rounds: u64, name: &str| RunOptions {
        rounds,
        progress: false,
        metrics: Some(dir.join(format!("{name}.jsonl"))),
        checkpoint: Some(dir.join(format!("{name}-ckpt"))),
    };
    let mut straight = Run::new(tiny(1), options(6, "straight"));
    assert!(!straight.resume().unwrap(), "nothing committed yet");
    straight.fit().unwrap();

    let mut part = Run::new(tiny(1), options(3, "split"));
    part.periodic = Periodic {
        every: 2,
        keep_last: 1,
    };
    part.fit().unwrap();
    let mut rest = Run::new(tiny(5), options(6, "split"));
    assert!(rest.resume().unwrap());
    assert_eq!(rest.finetuner.completed(), 3);
    rest.fit().unwrap();
    assert_eq!(state_bits(&rest.finetuner), state_bits(&straight.finetuner));
    assert_eq!(
        metric_lines(&dir.join("straight.jsonl")),
        metric_lines(&dir.join("split.jsonl"))
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn mismatch(ft: &mut Tiny, ckpt: &Checkpoint) -> String {
    match ft.resume(ckpt) {
        Err(sepo::Error::ResumeMismatch { key, .. }) => key,
        other => panic!("expected a refused resume, got {other:?}"),
    }
}

/// Every key that changes the run is compared; the first difference is named, and the refused
/// trainer is left as it was.
#[test]
fn a_resume_with_another_configuration_is_refused_naming_the_key() {
    let dir = fresh_dir("mismatch");
    let ckpt = Checkpoint::new(dir.join("ckpt"));
    let mut a = tiny(1);
    a.fit(2, false, None).unwrap();
    a.save(&ckpt).unwrap();

    let base = config();
    let cases: Vec<(&str, FinetuneConfig)> = vec![
        (
            "seed",
            FinetuneConfig {
                seed: 12,
                ..base.clone()
            },
        ),
        (
            "optimizer.lr",
            FinetuneConfig {
                optimizer: AdamW::with_lr(1e-3),
                ..base.clone()
            },
        ),
        (
            "lr_schedule",
            FinetuneConfig {
                lr_schedule: LrSchedule::Constant,
                ..base.clone()
            },
        ),
        (
            "groups",
            FinetuneConfig {
                groups: 4,
                ..base.clone()
            },
        ),
        (
            "kl",
            FinetuneConfig {
                kl: 0.1,
                ..base.clone()
            },
        ),
        (
            "estimator",
            FinetuneConfig {
                estimator: Mixture::grpo(0.3),
                ..base.clone()
            },
        ),
        (
            "kl_mode",
            FinetuneConfig {
                kl_mode: KlMode::Path,
                ..base.clone()
            },
        ),
    ];
    for (key, cfg) in cases {
        let mut b = tiny_with(3, cfg);
        let before = state_bits(&b);
        let named = mismatch(&mut b, &ckpt);
        assert!(named.starts_with(key), "{key}: named `{named}`");
        assert_eq!(state_bits(&b), before, "{key}: the trainer is unchanged");
    }

    // Beyond the config: the noise schedule (σ̄ read on a grid) and the prompts.
    let mut other_schedule = Finetuner::new(
        Mlp::new(
            MlpConfig::tiny(5, 3, ScoreHead::Absorbing),
            &Cpu::default(),
            0,
        )
        .unwrap(),
        Absorbing::with_tokens(4).unwrap(),
        LogLinear { eps: 1e-2 },
        twos(),
        config(),
    )
    .unwrap();
    assert!(mismatch(&mut other_schedule, &ckpt).starts_with("schedule["));
    let mut prompted = tiny(3).with_prompts(&[vec![1], vec![2]]).unwrap();
    assert_eq!(mismatch(&mut prompted, &ckpt), "condition");

    // The same configuration resumes.
    let mut same = tiny(3);
    assert_eq!(same.resume(&ckpt).unwrap().round, 2);
    assert_eq!(state_bits(&same), state_bits(&a));
    std::fs::remove_dir_all(&dir).ok();
}

/// A fine-tuned checkpoint carries `config.json`, so `Checkpoint::load_model` (and with it `policy!`'s
/// `model: Mlp(checkpoint = ..)`) reads it like a pretrained one.
#[test]
fn a_fine_tuned_directory_loads_like_a_pretrained_one() {
    let dir = fresh_dir("load");
    let ckpt = Checkpoint::new(dir.join("ckpt"));
    let mut ft = tiny(1);
    ft.fit(2, false, None).unwrap();
    ft.save(&ckpt).unwrap();
    let (model, extra) = ckpt.load_model::<Mlp<f32, Cpu>>(&Cpu::default()).unwrap();
    assert_eq!(bits(model.params()), bits(ft.model().params()));
    assert_eq!(model.config(), ft.model().config());
    assert_eq!(extra["round"], 2);
    assert_eq!(extra["finetune"]["seed"], 11);
    assert!(ckpt.exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// A full disk in the middle of a save (the optimiser's file, half written) returns the I/O error and
/// leaves the previous checkpoint published and whole: a resume gets round 2, not a mix.
#[test]
fn a_full_disk_during_a_save_leaves_the_last_checkpoint_intact() {
    use std::sync::Arc;
    let dir = fresh_dir("full");
    let ckpt = Checkpoint::new(dir.join("ckpt"));
    let mut ft = tiny(1);
    ft.fit(2, false, None).unwrap();
    ft.save(&ckpt).unwrap();
    let at_two = state_bits(&ft);
    ft.fit(1, false, None).unwrap();
    sepo::train::commit::set_fault_hook(
        &ckpt.dir,
        Some(Arc::new(|point: &str| {
            if point == "write optimizer.safetensors" {
                Err(std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    "no space left on device",
                ))
            } else {
                Ok(())
            }
        })),
    );
    match ft.save(&ckpt) {
        Err(sepo::Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
        }
        other => panic!("expected the disk-full error, got {other:?}"),
    }
    sepo::train::commit::set_fault_hook(&ckpt.dir, None);
    let mut back = tiny(7);
    assert_eq!(back.resume(&ckpt).unwrap().round, 2);
    assert_eq!(state_bits(&back), at_two);
    let names: Vec<String> = std::fs::read_dir(&ckpt.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "the failed save left {names:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
