//! Saves and resumes of the single loop: bit-identical continuation, a full disk at every write of a
//! save, refused mismatches and corrupt populations.

use std::io;
use std::sync::{Arc, Mutex};

use dfdx::prelude::*;

use crate::error::Error;
use crate::graph::Absorbing;
use crate::reward::FnReward;
use crate::score::{ScoreModel, Tabular};
use crate::train::commit::set_fault_hook;
use crate::train::{Checkpoint, RatioMode, SingleLoop, SingleLoopConfig};

type Loop = SingleLoop<Tabular<f64, Cpu>, Absorbing>;

/// 8 particles of length 2 over 3 tokens; path log-ratios with a KL, so the anchor and the
/// reference's cached path values are part of the state. `init` sets the particles.
fn trainer(init: usize) -> Loop {
    let graph = Absorbing::with_tokens(3).unwrap();
    let logits: Vec<f64> = (0..9).map(|i| (i as f64 * 0.37).sin()).collect();
    let model = Tabular::<f64, Cpu>::new(&graph, 2, logits, &Cpu::default()).unwrap();
    let reward = FnReward::new("zeros", |s: &[usize]| {
        s.iter().filter(|&&t| t == 0).count() as f64
    });
    let mut config = SingleLoopConfig {
        ratio: RatioMode::Path,
        steps_per_update: 2,
        seed: 5,
        ..SingleLoopConfig::default()
    };
    config.kl = 0.2;
    let particles = (0..16).map(|i| (i * 7 + init) % 3).collect();
    SingleLoop::new(model, graph, reward, config, particles, 8).unwrap()
}

/// Every piece of state as bits (the reference path cache included).
fn bits(sl: &Loop) -> Vec<u64> {
    let floats = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let mut out = floats(&sl.model.params().flat_f64());
    out.extend(floats(&sl.reference.flat_f64()));
    for t in sl.state.m.iter().chain(&sl.state.v) {
        out.extend(floats(&t.as_vec()));
    }
    out.push(sl.state.step);
    out.extend(sl.particles.iter().map(|&t| t as u64));
    out.extend(floats(&sl.rewards));
    out.extend(floats(&sl.log_ratio));
    out.extend(sl.anchor.iter().map(|&t| t as u64));
    out.extend(
        sl.reference_path
            .iter()
            .map(|r| r.map_or(u64::MAX, f64::to_bits)),
    );
    out.extend([sl.update, sl.evaluations]);
    out
}

fn fresh(name: &str) -> Checkpoint {
    let dir = std::env::temp_dir().join(format!("sepo-single-loop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Checkpoint::new(dir)
}

/// Saved after 3 updates and resumed into a trainer with other particles, the run continues with
/// the uninterrupted one's state after each of 4 more updates, bit for bit.
#[test]
fn a_resumed_single_loop_continues_bit_identically() {
    let ckpt = fresh("resume");
    let mut whole = trainer(0);
    for _ in 0..3 {
        whole.step().unwrap();
    }
    whole.save(&ckpt).unwrap();
    let mut back = trainer(1);
    assert_ne!(bits(&back), bits(&whole));
    let resumed = back.resume(&ckpt).unwrap();
    assert_eq!((resumed.round, resumed.generation), (3, 1));
    assert_eq!(bits(&back), bits(&whole));
    for _ in 0..4 {
        assert_eq!(back.step().unwrap().reward, whole.step().unwrap().reward);
        assert_eq!(bits(&back), bits(&whole));
    }
    std::fs::remove_dir_all(&ckpt.dir).ok();
}

/// A full disk at each fault point of a save before its publication (every file's mid-write and
/// fsync, the generation's manifest, its rename, the new pointer's mid-write): the save fails with
/// the I/O error, the previous generation stays published, whole, and resumes into a run that
/// continues bit-identically to the uninterrupted one.
#[test]
fn a_full_disk_at_any_write_of_a_save_leaves_the_last_checkpoint_intact() {
    let ckpt = fresh("full");
    let mut run = trainer(0);
    run.step().unwrap();
    run.step().unwrap();
    run.save(&ckpt).unwrap();
    let at_two = bits(&run);
    run.step().unwrap();
    // The points a save passes, from a traced one into a scratch directory.
    let scratch = fresh("full-trace");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    set_fault_hook(
        &scratch.dir,
        Some(Arc::new(move |p: &str| {
            log.lock().unwrap().push(p.to_string());
            Ok(())
        })),
    );
    run.save(&scratch).unwrap();
    set_fault_hook(&scratch.dir, None);
    let points: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .take_while(|p| *p != "published")
        .cloned()
        .collect();
    assert!(
        points.iter().any(|p| p == "write single_loop.json"),
        "{points:?}"
    );
    let mut continued = trainer(0);
    continued.resume(&ckpt).unwrap();
    for _ in 0..3 {
        continued.step().unwrap();
    }
    for point in &points {
        let target = point.clone();
        set_fault_hook(
            &ckpt.dir,
            Some(Arc::new(move |p: &str| {
                if p == target {
                    Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"))
                } else {
                    Ok(())
                }
            })),
        );
        match run.save(&ckpt) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::StorageFull, "at {point}")
            }
            other => panic!("at {point}: expected the disk-full error, got {other:?}"),
        }
        set_fault_hook(&ckpt.dir, None);
        let mut back = trainer(2);
        assert_eq!(back.resume(&ckpt).unwrap().round, 2, "at {point}");
        assert_eq!(bits(&back), at_two, "at {point}");
        for _ in 0..3 {
            back.step().unwrap();
        }
        assert_eq!(bits(&back), bits(&continued), "at {point}");
    }
    std::fs::remove_dir_all(&ckpt.dir).ok();
    std::fs::remove_dir_all(&scratch.dir).ok();
}

/// Another seed is refused naming `seed`; another particle count naming `particles`; a state file
/// whose particles leave the vocabulary is corrupt, and the trainer is left as it was.
#[test]
fn mismatches_and_corrupt_populations_are_refused() {
    let ckpt = fresh("mismatch");
    let mut run = trainer(0);
    run.step().unwrap();
    run.save(&ckpt).unwrap();
    let mut other = trainer(0);
    other.config.seed = 6;
    match other.resume(&ckpt) {
        Err(Error::ResumeMismatch { key, .. }) => assert_eq!(key, "seed"),
        e => panic!("{e:?}"),
    }
    let graph = Absorbing::with_tokens(3).unwrap();
    let model = run.model.clone();
    let reward = FnReward::new("zeros", |_: &[usize]| 0.0);
    let config = run.config.clone();
    let mut fewer = SingleLoop::new(model, graph, reward, config, vec![0; 12], 6).unwrap();
    match fewer.resume(&ckpt) {
        Err(Error::ResumeMismatch { key, .. }) => assert_eq!(key, "particles"),
        e => panic!("{e:?}"),
    }
    // Particles out of the vocabulary, committed with a valid manifest.
    let committed = ckpt.open().unwrap();
    let mut state: serde_json::Value =
        serde_json::from_slice(&committed.read(super::SINGLE_LOOP_FILE).unwrap()).unwrap();
    state["particles"][0] = 99.into();
    let names: Vec<String> = committed
        .manifest()
        .unwrap()
        .files
        .keys()
        .cloned()
        .collect();
    let mut files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| (n.clone(), committed.read(n).unwrap()))
        .collect();
    for (n, b) in &mut files {
        if n == super::SINGLE_LOOP_FILE {
            *b = serde_json::to_vec(&state).unwrap();
        }
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    ckpt.commit(&refs, 2).unwrap();
    let mut victim = trainer(1);
    let before = bits(&victim);
    assert!(matches!(
        victim.resume(&ckpt),
        Err(Error::CorruptCheckpoint { .. })
    ));
    assert_eq!(bits(&victim), before);
    std::fs::remove_dir_all(&ckpt.dir).ok();
}
