//! Ctrl-C saves (issue 17, item 1): a real fine-tuning child process (this test binary re-invoked
//! with `SEPO_INT_CHILD_DIR` set, running [`child_process_entry`]) gets SIGINT (two-loop `Run`) or
//! SIGTERM (single-loop `FlowRun`) in the middle of round 4 of 8, with checkpoints due only every 3
//! rounds. It must finish that round, commit it, and return `Error::Interrupted { completed: 4 }`;
//! a second child resumes and finishes, and the end state and the metrics file equal the
//! uninterrupted run's bit for bit. A second signal while the first is pending exits at once with
//! status 130.

#[path = "support/tiny_run.rs"]
mod tiny_run;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sepo::prelude::*;
use sepo::train::{commit, interrupt, MetricsWriter, Periodic};
use tiny_run::*;

const ROUNDS: u64 = 8;
const CHILD_DIR: &str = "SEPO_INT_CHILD_DIR";
const CHILD_KIND: &str = "SEPO_INT_CHILD_KIND";
const CHILD_WAIT: &str = "SEPO_INT_CHILD_WAIT";

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        rounds: ROUNDS,
        progress: false,
        metrics: Some(dir.join("metrics.jsonl")),
        checkpoint: Some(dir.join("ckpt")),
    }
}

/// The child: a run of [`ROUNDS`] rounds checkpointing every 3, resumed from what is committed. With
/// `SEPO_INT_CHILD_WAIT=n` it prints `ROUND n` after round `n`'s metrics line and waits (up to a
/// minute) for a signal to arrive before going on. Prints how `fit` ended.
#[test]
fn child_process_entry() {
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else {
        return;
    };
    let wait: Option<u64> = std::env::var(CHILD_WAIT).ok().map(|s| s.parse().unwrap());
    let rounds = Arc::new(AtomicU64::new(0));
    commit::set_fault_hook(
        &dir.join("ckpt"),
        Some(Arc::new(move |point: &str| {
            if point == "metrics written" {
                let n = rounds.fetch_add(1, Ordering::SeqCst) + 1;
                if Some(n) == wait {
                    println!("ROUND {n}");
                    let start = Instant::now();
                    while !interrupt::requested() && start.elapsed() < Duration::from_secs(60) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    // Time for a second signal, if the parent sends one.
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
            Ok(())
        })),
    );
    let periodic = Periodic {
        every: 3,
        keep_last: 2,
    };
    let result = if std::env::var(CHILD_KIND).as_deref() == Ok("flow") {
        let mut run = tiny_flow(1, options(&dir));
        run.periodic = periodic;
        run.resume().unwrap();
        run.fit().map(|_| ())
    } else {
        let mut run = Run::new(tiny(1), options(&dir));
        run.periodic = periodic;
        run.resume().unwrap();
        run.fit().map(|_| ())
    };
    match result {
        Ok(()) => println!("FINISHED"),
        Err(Error::Interrupted {
            completed,
            checkpoint,
        }) => {
            assert_eq!(checkpoint, Some(dir.join("ckpt")));
            println!("INTERRUPTED {completed}");
        }
        Err(e) => panic!("{e}"),
    }
}

fn spawn(kind: &str, dir: &Path, wait: Option<u64>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .env(CHILD_KIND, kind)
    .env_remove(CHILD_WAIT)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(n) = wait {
        cmd.env(CHILD_WAIT, n.to_string());
    }
    cmd.spawn().expect("the test binary re-runs itself")
}

/// Sends `signal` (`INT`, `TERM`) to `child` with the system's `kill`.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success());
}

/// Runs a child, signals it (`signals` times) after round `at`'s metrics line, and returns its
/// exit code and the lines it printed after.
fn interrupted_child(
    kind: &str,
    dir: &Path,
    at: u64,
    sig: &str,
    signals: usize,
) -> (i32, Vec<String>) {
    let mut child = spawn(kind, dir, Some(at));
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for line in out.lines() {
        let line = line.unwrap();
        if line.contains(&format!("ROUND {at}")) {
            for _ in 0..signals {
                signal(&child, sig);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        lines.push(line);
    }
    (child.wait().unwrap().code().unwrap_or(-1), lines)
}

fn interrupt_then_resume(kind: &str, sig: &str) {
    let dir = fresh_dir(&format!("interrupt-{kind}"));
    // The uninterrupted run: its end state (as bits) and metrics lines.
    let log = dir.join("reference.jsonl");
    let mut w = MetricsWriter::append(&log).unwrap();
    let expected = if kind == "flow" {
        let mut run = tiny_flow(1, RunOptions::default());
        for _ in 0..ROUNDS {
            let m = run.single_loop.step().unwrap();
            w.write(&m).unwrap();
        }
        flow_bits(&run)
    } else {
        let mut ft = tiny(1);
        ft.fit(ROUNDS, false, Some(&mut w)).unwrap();
        let (a, b, c, step, round) = state_bits(&ft);
        let mut v: Vec<u64> = [a, b, c].into_iter().flatten().map(u64::from).collect();
        v.extend([step, round]);
        v
    };
    let end_state = || {
        if kind == "flow" {
            let mut run = tiny_flow(7, options(&dir));
            assert!(run.resume().unwrap());
            (flow_bits(&run), run.single_loop.updates())
        } else {
            let mut ft = tiny(7);
            let round = ft.resume(&Checkpoint::new(dir.join("ckpt"))).unwrap().round;
            let (a, b, c, step, r) = state_bits(&ft);
            let mut v: Vec<u64> = [a, b, c].into_iter().flatten().map(u64::from).collect();
            v.extend([step, r]);
            (v, round)
        }
    };

    let (code, lines) = interrupted_child(kind, &dir, 4, sig, 1);
    assert_eq!(code, 0, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("INTERRUPTED 4")),
        "{lines:?}"
    );
    assert_eq!(end_state().1, 4, "round 4 was committed at the stop");

    let mut child = spawn(kind, &dir, None);
    // Read to the end: a reader that stopped early would break the child's later writes.
    let out: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(child.wait().unwrap().success(), "{out:?}");
    assert!(out.iter().any(|l| l.contains("FINISHED")), "{out:?}");
    let (state, round) = end_state();
    assert_eq!(round, ROUNDS);
    assert!(
        state == expected,
        "the resumed run differs from the uninterrupted one"
    );
    assert_eq!(
        metric_lines(&dir.join("metrics.jsonl")),
        metric_lines(&log),
        "every round logged once"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// SIGINT during round 4 of a two-loop run: saved at 4, resumed, bit-identical.
#[test]
fn ctrl_c_saves_and_the_resumed_run_is_bit_identical() {
    interrupt_then_resume("two_loop", "INT");
}

/// SIGTERM during update 4 of a single-loop run: saved at 4, resumed, bit-identical.
#[test]
fn sigterm_saves_a_single_loop_run() {
    interrupt_then_resume("flow", "TERM");
}

/// A second Ctrl-C while the first is pending exits at once with status 130, leaving the last
/// periodic checkpoint (round 3) published.
#[test]
fn a_second_ctrl_c_exits_at_once() {
    let dir = fresh_dir("interrupt-twice");
    let (code, lines) = interrupted_child("two_loop", &dir, 4, "INT", 2);
    assert_eq!(code, interrupt::EXIT_STATUS, "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("INTERRUPTED")),
        "{lines:?}"
    );
    let mut ft = tiny(7);
    assert_eq!(
        ft.resume(&Checkpoint::new(dir.join("ckpt"))).unwrap().round,
        3
    );
    std::fs::remove_dir_all(&dir).ok();
}
