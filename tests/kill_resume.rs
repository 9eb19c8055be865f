//! Kill-and-resume harness (issue 17, item 1): a real fine-tuning child process (this test binary
//! re-invoked with `SEPO_KILL_CHILD_DIR` set, running [`child_process_entry`]) checkpoints after
//! every round and is SIGKILLed again and again, each time resumed by the next child. The child runs
//! the two-loop trainer (`Run`) or, with `SEPO_KILL_CHILD_KIND=flow`, the single loop (`FlowRun`:
//! particles, cached rewards and tracked log-ratios are part of what must survive).
//!
//! Kills land (a) at chosen fault points of the commit protocol, by index: the child counts the
//! points it passes ([`sepo::train::commit::fault`]: half of each file written, each fsync, the
//! generation's rename, half of the new manifest written, the publish, the pruning, and each round's
//! metrics write) and, at the `n`-th, prints where it is and waits to be killed; and (b) after a
//! random delay, wherever the child happens to be.
//!
//! After every kill the published checkpoint must verify and equal, bit for bit, the uninterrupted
//! run's state at its round (policy, reference, AdamW moments and step; for the single loop also
//! the particles, rewards, log-ratios, anchor and counters), and the committed part of
//! the metrics file must be that run's lines. When a child finally runs to the end, the parameters,
//! moments and the whole metrics file (wall-clock fields aside) must equal the uninterrupted run's,
//! and no temporary may remain.
//!
//! The default suite runs a few kills of each loop; `SEPO_KILL_HARNESS=1` runs the long version (every
//! fault point of a save and of a round in turn, then random points and random moments until at
//! least 150 kills, 60 of them at random moments, for the two-loop trainer; 60 kills, 20 at random
//! moments, for the single loop).

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
const CHILD_KIND: &str = "SEPO_KILL_CHILD_KIND";

/// Which trainer the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `Run` over [`tiny`].
    TwoLoop,
    /// `FlowRun` over [`tiny_flow`].
    Flow,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::TwoLoop => "two_loop",
            Kind::Flow => "flow",
        }
    }
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        rounds: ROUNDS,
        progress: false,
        metrics: Some(dir.join("metrics.jsonl")),
        checkpoint: Some(ckpt_dir(dir)),
    }
}

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
    let periodic = Periodic {
        every: 1,
        keep_last: 2,
    };
    if std::env::var(CHILD_KIND).as_deref() == Ok(Kind::Flow.name()) {
        let mut run = tiny_flow(1, options(&dir));
        run.periodic = periodic;
        run.resume().unwrap();
        run.fit().unwrap();
    } else {
        let mut run = Run::new(tiny(1), options(&dir));
        run.periodic = periodic;
        run.resume().unwrap();
        run.fit().unwrap();
    }
    println!("FINISHED {}", points.load(Ordering::SeqCst));
}

fn spawn(kind: Kind, dir: &Path, stop: Option<u64>, trace: bool, piped: bool) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .env(CHILD_KIND, kind.name())
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
fn kill_at_point(kind: Kind, dir: &Path, stop: u64) -> Outcome {
    let mut child = spawn(kind, dir, Some(stop), false, true);
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
fn kill_after(kind: Kind, dir: &Path, delay: Duration) -> Outcome {
    let mut child = spawn(kind, dir, None, false, false);
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

/// The uninterrupted run: its state after each round (as bits) and its metrics lines.
struct Reference {
    kind: Kind,
    states: Vec<Vec<u64>>,
    lines: Vec<serde_json::Value>,
}

fn two_loop_bits(s: StateBits) -> Vec<u64> {
    let (policy, reference, moments, step, round) = s;
    let mut out: Vec<u64> = [policy, reference, moments]
        .into_iter()
        .flatten()
        .map(u64::from)
        .collect();
    out.extend([step, round]);
    out
}

fn reference(kind: Kind, dir: &Path) -> Reference {
    let log = dir.join("reference.jsonl");
    let mut w = MetricsWriter::append(&log).unwrap();
    let mut states = Vec::new();
    match kind {
        Kind::TwoLoop => {
            let mut ft = tiny(1);
            states.push(two_loop_bits(state_bits(&ft)));
            for _ in 0..ROUNDS {
                ft.fit(1, false, Some(&mut w)).unwrap();
                states.push(two_loop_bits(state_bits(&ft)));
            }
        }
        Kind::Flow => {
            let mut run = tiny_flow(1, RunOptions::default());
            states.push(flow_bits(&run));
            for _ in 0..ROUNDS {
                let m = run.single_loop.step().unwrap();
                w.write(&m).unwrap();
                states.push(flow_bits(&run));
            }
        }
    }
    Reference {
        kind,
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
    let checkpoint = Checkpoint::new(&root);
    let state_file = match reference.kind {
        Kind::TwoLoop => "trainer.json",
        Kind::Flow => "single_loop.json",
    };
    let trainer: serde_json::Value =
        serde_json::from_slice(&committed.read(state_file).unwrap()).unwrap();
    let (got, round) = match reference.kind {
        Kind::TwoLoop => {
            let round = trainer["round"].as_u64().unwrap();
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
            (two_loop_bits(got), round)
        }
        Kind::Flow => flow_bits_published(&committed, &checkpoint),
    };
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
fn probe(kind: Kind, dir: &Path) -> (Vec<String>, Duration) {
    let start = Instant::now();
    let mut child = spawn(kind, dir, None, true, true);
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
    kind: Kind,
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
    fn new(kind: Kind, name: &str) -> Self {
        let dir = fresh_dir(&format!("{}-{name}", kind.name()));
        let reference = reference(kind, &dir);
        Self {
            kind,
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
        assert_eq!(kill_at_point(self.kind, dir, u64::MAX), Outcome::Finished);
        check_final(dir, &self.reference);
    }
}

/// A few kills at the delicate moments (mid-file, between the generation's rename and the publish,
/// mid-manifest, after a metrics line, after the state file's fsync), one at a random moment, then a
/// clean finish.
fn short(kind: Kind) {
    let mut h = Harness::new(kind, "short");
    let (names, elapsed) = probe(kind, &h.episode(0));
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
    let state_synced = match kind {
        Kind::TwoLoop => "synced trainer.json",
        Kind::Flow => "synced single_loop.json",
    };
    let dir = h.episode(1);
    for (name, nth) in [
        ("write model.safetensors", 0),
        ("renamed generation", 1),
        ("write manifest", 1),
        ("metrics written", 0),
        (state_synced, 2),
    ] {
        let outcome = kill_at_point(kind, &dir, index(name, nth));
        assert_eq!(outcome, Outcome::Killed(Some(name.to_string())));
        h.record(&dir, &outcome);
    }
    let outcome = kill_after(kind, &dir, elapsed / 2);
    h.record(&dir, &outcome);
    h.finish(&dir);
    eprintln!(
        "kill harness (short, {}): {} kills survived, {} inside a save, {} left a partial save behind",
        kind.name(),
        h.kills,
        h.during_saves,
        h.left_partial
    );
    assert!(h.kills >= 5);
    std::fs::remove_dir_all(&h.dir).ok();
}

/// A killed two-loop run resumes bit-identically.
#[test]
fn a_killed_run_resumes_bit_identically() {
    short(Kind::TwoLoop);
}

/// A killed single-loop run resumes bit-identically: particles, rewards and tracked log-ratios too.
#[test]
fn a_killed_single_loop_run_resumes_bit_identically() {
    short(Kind::Flow);
}

/// The long version: each fault point of the first save and round in turn (every file's mid-write
/// and fsync, the rename, the manifest, the publish, the pruning, the metrics write), then random
/// points over the remaining run and random moments, in fresh episodes until at least `kills` kills
/// of which at least `random` at random moments; every episode ends bit-identical to the
/// uninterrupted run.
fn long(kind: Kind, kills: u64, random: u64) {
    let mut h = Harness::new(kind, "long");
    let (names, elapsed) = probe(kind, &h.episode(0));
    let metrics_at: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] == "metrics written")
        .collect();
    let per_round = (metrics_at[1] - metrics_at[0]) as u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut covered = std::collections::BTreeSet::new();

    // Every point of the initial save and of the first round, in turn.
    let dir = h.episode(1);
    for n in 1..=(2 * per_round + 1) {
        let outcome = kill_at_point(kind, &dir, n);
        if let Outcome::Killed(Some(p)) = &outcome {
            covered.insert(p.clone());
        }
        if h.record(&dir, &outcome) {
            break;
        }
    }
    h.finish(&dir);

    let mut episode = 2;
    while h.kills < kills || h.at_random_times < random {
        let dir = h.episode(episode);
        let random_time = episode % 2 == 1 || h.kills >= kills;
        loop {
            let round = check_published(&dir, &h.reference).unwrap_or(0);
            let outcome = if random_time {
                kill_after(kind, &dir, elapsed.mul_f64(rng.gen_range(0.0..1.0)))
            } else {
                let left = per_round * (ROUNDS - round + 1);
                kill_at_point(kind, &dir, rng.gen_range(1..=left.max(1)))
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
        "kill harness (long, {}): {} kills survived over {} episodes: {} at a fault point inside a \
         save ({} distinct points), {} at random moments; {} left a partial save behind ({} of the \
         random ones)",
        kind.name(),
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

/// `SEPO_KILL_HARNESS=1`: 150 kills of the two-loop trainer, 60 of them at random moments.
#[test]
fn many_kills_at_every_point_and_random_moments() {
    if std::env::var_os("SEPO_KILL_HARNESS").is_none() {
        return;
    }
    long(Kind::TwoLoop, 150, 60);
}

/// `SEPO_KILL_HARNESS=1`: 60 kills of the single loop, 20 of them at random moments.
#[test]
fn many_kills_of_the_single_loop() {
    if std::env::var_os("SEPO_KILL_HARNESS").is_none() {
        return;
    }
    long(Kind::Flow, 60, 20);
}
