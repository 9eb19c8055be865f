//! Kill-and-resume harness (issue 17, item 1): a real fine-tuning child process (this test binary
//! re-invoked with `SEPO_KILL_CHILD_DIR` set, running [`child_process_entry`]) checkpoints after
//! every round and is SIGKILLed again and again, each time resumed by the next child.
//!
//! Kills land (a) at chosen fault points of the commit protocol, by index: the child counts the
//! points it passes ([`sepo::train::commit::fault`]: half of each file written, each fsync, the
//! generation's rename, half of the new manifest written, the publish, the pruning, and each round's
//! metrics write) and, at the `n`-th, prints where it is and waits to be killed; and (b) after a
//! random delay, wherever the child happens to be.
//!
//! After every kill the published checkpoint must verify and equal, bit for bit, the uninterrupted
//! run's state at its round (policy, reference, AdamW moments and step), and the committed part of
//! the metrics file must be that run's lines. When a child finally runs to the end, the parameters,
//! moments and the whole metrics file (wall-clock fields aside) must equal the uninterrupted run's,
//! and no temporary may remain.
//!
//! The default suite runs a few kills; `SEPO_KILL_HARNESS=1` runs the long version (every fault point
//! of a save and of a round in turn, then random points and random moments until at least 150 kills,
//! 60 of them at random moments).

#[path = "support/tiny_run.rs"]
mod tiny_run;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sepo::prelude::*;
use sepo::train::commit::{self, Committed};
use sepo::train::{MetricsWriter, Periodic};
use tiny_run::*;

const ROUNDS: u64 = 8;
const CHILD_DIR: &str = "SEPO_KILL_CHILD_DIR";
const CHILD_STOP: &str = "SEPO_KILL_CHILD_STOP";
const CHILD_TRACE: &str = "SEPO_KILL_CHILD_TRACE";

fn ckpt_dir(dir: &Path) -> PathBuf {
    dir.join("ckpt")
}

/// The child: a `Run` of [`ROUNDS`] rounds checkpointing every round into `$SEPO_KILL_CHILD_DIR`,
/// resumed from whatever is committed there. With `SEPO_KILL_CHILD_STOP=n` it stops at its `n`-th
/// fault point and waits to be killed. Without `SEPO_KILL_CHILD_DIR` (the ordinary test run) it does
/// nothing.
#[test]
fn child_process_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else {
        return;
    };
    let stop: Option<u64> = std::env::var(CHILD_STOP).ok().map(|s| s.parse().unwrap());
    let trace = std::env::var_os(CHILD_TRACE).is_some();
    let points = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&points);
    commit::set_fault_hook(
        &ckpt_dir(&dir),
        Some(Arc::new(move |point: &str| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if trace {
                println!("POINT {n} {point}");
            }
            if Some(n) == stop {
                println!("STOPPED {n} {point}");
                std::io::stdout().flush().unwrap();
                // Wait to be killed; a parent that never does gets a failure, not a hang.
                std::thread::sleep(Duration::from_secs(600));
                std::process::exit(3);
            }
            Ok(())
        })),
    );
    let mut run = Run::new(
        tiny(1),
        RunOptions {
            rounds: ROUNDS,
            progress: false,
            metrics: Some(dir.join("metrics.jsonl")),
            checkpoint: Some(ckpt_dir(&dir)),
        },
    );
    run.periodic = Periodic {
        every: 1,
        keep_last: 2,
    };
    run.resume().unwrap();
    run.fit().unwrap();
    println!("FINISHED {}", points.load(Ordering::SeqCst));
}

fn spawn(dir: &Path, stop: Option<u64>, trace: bool, piped: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .env_remove(CHILD_STOP)
    .env_remove(CHILD_TRACE)
    .stdout(if piped { Stdio::piped() } else { Stdio::null() })
    .stderr(Stdio::null());
    if let Some(n) = stop {
        cmd.env(CHILD_STOP, n.to_string());
    }
    if trace {
        cmd.env(CHILD_TRACE, "1");
    }
    cmd.spawn().expect("the test binary re-runs itself")
}

/// How a child ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Killed, at the named fault point if it was stopped at one.
    Killed(Option<String>),
    /// Ran to the end.
    Finished,
}

/// The text after `marker` in a line of the child's output (libtest may print its own text before
/// ours on the same line).
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// Runs a child to its `stop`-th fault point and SIGKILLs it there (or lets it finish).
fn kill_at_point(dir: &Path, stop: u64) -> Outcome {
    let mut child = spawn(dir, Some(stop), false, true);
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(rest) = after(&line, "STOPPED ") {
            child.kill().unwrap();
            child.wait().unwrap();
            let point = rest.split_once(' ').map(|(_, p)| p.to_string());
            return Outcome::Killed(point);
        }
    }
    assert!(child.wait().unwrap().success(), "the child failed");
    Outcome::Finished
}

/// Runs a child for `delay` and SIGKILLs it wherever it is (or lets it finish).
fn kill_after(dir: &Path, delay: Duration) -> Outcome {
    let mut child = spawn(dir, None, false, false);
    let start = Instant::now();
    while start.elapsed() < delay {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the child failed");
            return Outcome::Finished;
        }
        std::thread::sleep(Duration::from_millis(1).min(delay));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    if status.success() {
        Outcome::Finished
    } else {
        Outcome::Killed(None)
    }
}

/// The uninterrupted run: its state after each round and its metrics lines.
struct Reference {
    states: Vec<StateBits>,
    lines: Vec<serde_json::Value>,
}

fn reference(dir: &Path) -> Reference {
    let log = dir.join("reference.jsonl");
    let mut w = MetricsWriter::append(&log).unwrap();
    let mut ft = tiny(1);
    let mut states = vec![state_bits(&ft)];
    for _ in 0..ROUNDS {
        ft.fit(1, false, Some(&mut w)).unwrap();
        states.push(state_bits(&ft));
    }
    Reference {
        states,
        lines: metric_lines(&log),
    }
}

/// The published checkpoint, read without cleaning anything (the next child must do that): verified,
/// equal to the reference at its round, the committed part of the metrics file equal to the
/// reference's lines. Returns its round (`None` if nothing is published yet).
fn check_published(dir: &Path, reference: &Reference) -> Option<u64> {
    let root = ckpt_dir(dir);
    let committed = Committed::open(&root).unwrap()?;
    committed.verify().unwrap();
    let trainer: serde_json::Value =
        serde_json::from_slice(&committed.read("trainer.json").unwrap()).unwrap();
    let round = trainer["round"].as_u64().unwrap();
    let checkpoint = Checkpoint::new(&root);
    let (model, _) = checkpoint
        .load_model::<Mlp<f32, Cpu>>(&Cpu::default())
        .unwrap();
    let mut reference_store = model.params().clone();
    reference_store
        .load_bytes(
            &committed.read("reference.safetensors").unwrap(),
            &committed.path("reference.safetensors"),
        )
        .unwrap();
    let state = checkpoint.load_optimizer(model.params()).unwrap();
    let moments: Vec<u32> = state
        .m
        .iter()
        .chain(&state.v)
        .flat_map(|t| t.as_vec())
        .map(f32::to_bits)
        .collect();
    let got = (
        bits(model.params()),
        bits(&reference_store),
        moments,
        state.step,
        round,
    );
    assert!(
        got == reference.states[round as usize],
        "the checkpoint of round {round} differs from the uninterrupted run's"
    );
    let bytes = trainer["metrics"]["bytes"].as_u64().unwrap() as usize;
    let text = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    let committed_lines: Vec<serde_json::Value> = {
        let cut = dir.join("committed.jsonl");
        std::fs::write(&cut, &text[..bytes]).unwrap();
        metric_lines(&cut)
    };
    assert_eq!(committed_lines, reference.lines[..round as usize]);
    Some(round)
}

/// The end state: the uninterrupted run's parameters, moments and metrics, and nothing but the
/// manifest, the lock and at most `keep_last` generations in the directory.
fn check_final(dir: &Path, reference: &Reference) {
    assert_eq!(check_published(dir, reference), Some(ROUNDS));
    assert_eq!(
        metric_lines(&dir.join("metrics.jsonl")),
        reference.lines,
        "every round logged once"
    );
    let entries: Vec<String> = std::fs::read_dir(ckpt_dir(dir))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let generations = entries.iter().filter(|n| n.starts_with("gen-")).count();
    assert!(
        entries
            .iter()
            .all(|n| n == "manifest.json" || n == "lock" || n.starts_with("gen-")),
        "leftovers: {entries:?}"
    );
    assert!((1..=2).contains(&generations), "{entries:?}");
}

/// Whether the directory holds a temporary or a generation newer than the published one.
fn partial_save_left(dir: &Path) -> bool {
    let newest = Committed::open(&ckpt_dir(dir))
        .unwrap()
        .and_then(|c| c.generation())
        .unwrap_or(0);
    std::fs::read_dir(ckpt_dir(dir))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".tmp")
                || name
                    .strip_prefix("gen-")
                    .and_then(|g| g.parse::<u64>().ok())
                    .is_some_and(|g| g > newest)
        })
}

/// An uninterrupted child from scratch, tracing its fault points: their names by index, and how
/// long it ran.
fn probe(dir: &Path) -> (Vec<String>, Duration) {
    let start = Instant::now();
    let mut child = spawn(dir, None, true, true);
    let out = BufReader::new(child.stdout.take().unwrap());
    let names: Vec<String> = out
        .lines()
        .map(Result::unwrap)
        .filter_map(|l| {
            after(&l, "POINT ")
                .and_then(|r| r.split_once(' '))
                .map(|(_, p)| p.to_string())
        })
        .collect();
    assert!(child.wait().unwrap().success());
    (names, start.elapsed())
}

/// Tallies kills and checks the checkpoint after each.
struct Harness {
    dir: PathBuf,
    reference: Reference,
    kills: u64,
    /// Kills at a fault point inside a save.
    during_saves: u64,
    /// Kills after a random delay.
    at_random_times: u64,
    /// Kills that left a partial save behind (a temporary or an unpublished generation).
    left_partial: u64,
    /// Of those, kills after a random delay.
    random_partial: u64,
}

impl Harness {
    fn new(name: &str) -> Self {
        let dir = fresh_dir(name);
        let reference = reference(&dir);
        Self {
            dir,
            reference,
            kills: 0,
            during_saves: 0,
            at_random_times: 0,
            left_partial: 0,
            random_partial: 0,
        }
    }

    fn episode(&self, n: usize) -> PathBuf {
        let d = self.dir.join(format!("episode-{n}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(&mut self, dir: &Path, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Killed(point) => {
                self.kills += 1;
                match point.as_deref() {
                    None => self.at_random_times += 1,
                    Some("metrics written") => {}
                    Some(_) => self.during_saves += 1,
                }
                check_published(dir, &self.reference);
                if partial_save_left(dir) {
                    self.left_partial += 1;
                    self.random_partial += u64::from(point.is_none());
                }
                false
            }
            Outcome::Finished => true,
        }
    }

    fn finish(&mut self, dir: &Path) {
        assert_eq!(kill_at_point(dir, u64::MAX), Outcome::Finished);
        check_final(dir, &self.reference);
    }
}

/// A few kills at the delicate moments (mid-file, between the generation's rename and the publish,
/// mid-manifest, after a metrics line), one at a random moment, then a clean finish.
#[test]
fn a_killed_run_resumes_bit_identically() {
    let mut h = Harness::new("short");
    let (names, elapsed) = probe(&h.episode(0));
    let index = |name: &str, nth: usize| -> u64 {
        names
            .iter()
            .enumerate()
            .filter(|(_, n)| *n == name)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {name} #{nth} in {names:?}"))
            .0 as u64
            + 1
    };
    let dir = h.episode(1);
    for (name, nth) in [
        ("write model.safetensors", 0),
        ("renamed generation", 1),
        ("write manifest", 1),
        ("metrics written", 0),
        ("synced trainer.json", 2),
    ] {
        let outcome = kill_at_point(&dir, index(name, nth));
        assert_eq!(outcome, Outcome::Killed(Some(name.to_string())));
        h.record(&dir, &outcome);
    }
    let outcome = kill_after(&dir, elapsed / 2);
    h.record(&dir, &outcome);
    h.finish(&dir);
    eprintln!(
        "kill harness (short): {} kills survived, {} inside a save, {} left a partial save behind",
        h.kills, h.during_saves, h.left_partial
    );
    assert!(h.kills >= 5);
    std::fs::remove_dir_all(&h.dir).ok();
}

/// The long version (`SEPO_KILL_HARNESS=1`): each fault point of the first save and round in turn
/// (every file's mid-write and fsync, the rename, the manifest, the publish, the pruning, the metrics
/// write), then random points over the remaining run and random moments, in fresh episodes until at
/// least 150 kills of which at least 60 at random moments; every episode ends bit-identical to the
/// uninterrupted run.
#[test]
fn many_kills_at_every_point_and_random_moments() {
    if std::env::var_os("SEPO_KILL_HARNESS").is_none() {
        return;
    }
    let mut h = Harness::new("long");
    let (names, elapsed) = probe(&h.episode(0));
    let metrics_at: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] == "metrics written")
        .collect();
    let per_round = (metrics_at[1] - metrics_at[0]) as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut covered = std::collections::BTreeSet::new();

    // Every point of the initial save and of the first round, in turn.
    let dir = h.episode(1);
    for n in 1..=(2 * per_round + 1) {
        let outcome = kill_at_point(&dir, n);
        if let Outcome::Killed(Some(p)) = &outcome {
            covered.insert(p.clone());
        }
        if h.record(&dir, &outcome) {
            break;
        }
    }
    h.finish(&dir);

    let mut episode = 2;
    while h.kills < 150 || h.at_random_times < 60 {
        let dir = h.episode(episode);
        let random_time = episode % 2 == 1 || h.kills >= 150;
        loop {
            let round = check_published(&dir, &h.reference).unwrap_or(0);
            let outcome = if random_time {
                kill_after(&dir, elapsed.mul_f64(rng.gen_range(0.0..1.0)))
            } else {
                let left = per_round * (ROUNDS - round + 1);
                kill_at_point(&dir, rng.gen_range(1..=left.max(1)))
            };
            if let Outcome::Killed(Some(p)) = &outcome {
                covered.insert(p.clone());
            }
            if h.record(&dir, &outcome) || h.kills >= 400 {
                break;
            }
        }
        h.finish(&dir);
        episode += 1;
    }
    let all: std::collections::BTreeSet<String> = names.into_iter().collect();
    assert_eq!(covered, all, "every fault point was hit");
    eprintln!(
        "kill harness (long): {} kills survived over {} episodes: {} at a fault point inside a save \
         ({} distinct points), {} at random moments; {} left a partial save behind ({} of the \
         random ones)",
        h.kills,
        episode - 1,
        h.during_saves,
        covered.len(),
        h.at_random_times,
        h.left_partial,
        h.random_partial
    );
    std::fs::remove_dir_all(&h.dir).ok();
}
