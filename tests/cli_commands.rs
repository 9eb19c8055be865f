//! The `sepo` binary end to end on a tiny MLP: every command's `--help`; pretrain → finetune (run
//! file, metrics with one header line, plot) → resume (no duplicated line) → sample (infilling) →
//! eval; and a mistake in a run file is a non-zero exit naming the key.
#![cfg(feature = "cli")]

use std::path::Path;
use std::process::{Command, Output};

fn sepo(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sepo"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the sepo binary runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = sepo(dir, args);
    assert!(
        out.status.success(),
        "sepo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_command_has_help() {
    let dir = std::env::temp_dir();
    let top = ok(&dir, &["--help"]);
    for command in ["pretrain", "finetune", "sample", "eval", "plot"] {
        assert!(top.contains(command), "{top}");
        let help = ok(&dir, &[command, "--help"]);
        assert!(help.contains("Usage: sepo"), "{help}");
    }
    assert!(ok(&dir, &["finetune", "--help"]).contains("--config"));
    assert!(ok(&dir, &["sample", "--help"]).contains("--suffix"));
}

const RUN: &str = r#"
model = 'Mlp(checkpoint = "pre")'
sampler = "FirstHitting"
reward = "gc_content"
eval_reward = "motif_count(motif = [3, 0, 3, 0])"
kl = 0.1
batch = 8
group_size = 4
epochs = 1
iterations = 2
metrics = "tune/metrics.jsonl"
checkpoint_dir = "tune"
progress = false
"#;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pretrain_finetune_resume_sample_eval_plot() {
    let dir = std::env::temp_dir().join(format!("sepo-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    ok(
        &dir,
        &[
            "pretrain",
            "--demo",
            "--arch",
            "mlp",
            "--steps",
            "20",
            "--out",
            "pre",
            "--no-progress",
        ],
    );
    assert!(sepo::train::Checkpoint::new(dir.join("pre")).exists());

    std::fs::write(dir.join("run.toml"), RUN).unwrap();
    let out = ok(
        &dir,
        &[
            "finetune",
            "--config",
            "run.toml",
            "--plot",
            "tune/metrics.svg",
            "--log-completions",
            "2",
        ],
    );
    assert!(out.contains("round 1"), "{out}");
    let metrics = lines(&dir.join("tune/metrics.jsonl"));
    assert_eq!(metrics.len(), 3, "a header and two rounds");
    let id = metrics[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(metrics[0]["header"]["config"]["kl"], 0.1);
    assert_eq!(metrics[0]["header"]["source"]["reward"], "gc_content");
    for (i, m) in metrics[1..].iter().enumerate() {
        assert_eq!(m["round"], i as u64);
        assert_eq!(m["run_id"], id.as_str());
        for key in [
            "reward",
            "reward_std",
            "frac_reward_zero_std",
            "kl",
            "entropy",
            "clip_ratio/region_mean",
            "grad_norm",
            "learning_rate",
            "rewards/gc_content/mean",
            "eval_reward",
            "samples_per_s",
        ] {
            assert!(m.get(key).is_some(), "round {i} lacks {key}: {m}");
        }
    }
    assert_eq!(metrics[1]["completions"].as_array().unwrap().len(), 2);
    assert!(metrics[2].get("completions").is_none(), "every 2 rounds");
    let svg = std::fs::read_to_string(dir.join("tune/metrics.svg")).unwrap();
    assert!(svg.starts_with("<svg"));

    // Starting over in a directory that holds a run is refused; --resume continues it.
    let out = sepo(&dir, &["finetune", "--config", "run.toml", "--rounds", "4"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
    // Two more rounds from the committed run: the header stays the only one, each round once.
    let out = ok(
        &dir,
        &[
            "finetune", "--config", "run.toml", "--rounds", "4", "--resume",
        ],
    );
    assert!(out.contains("resumed at round 2"), "{out}");
    let metrics = lines(&dir.join("tune/metrics.jsonl"));
    assert_eq!(
        metrics.iter().filter(|m| m.get("header").is_some()).count(),
        1
    );
    let rounds: Vec<u64> = metrics[1..]
        .iter()
        .map(|m| m["round"].as_u64().unwrap())
        .collect();
    assert_eq!(rounds, vec![0, 1, 2, 3]);
    assert!(metrics.iter().all(|m| m["run_id"] == id.as_str()));

    // Infilling from the fine-tuned checkpoint: prefix and suffix held, the middle sampled.
    let samples = ok(
        &dir,
        &[
            "sample", "--model", "tune", "--num", "5", "--prefix", "ACGT", "--suffix", "GG",
        ],
    );
    let samples: Vec<&str> = samples.lines().collect();
    assert_eq!(samples.len(), 5);
    for s in &samples {
        assert_eq!(s.len(), 32);
        assert!(s.starts_with("ACGT") && s.ends_with("GG"), "{s}");
        assert!(s.chars().all(|c| "ACGT".contains(c)), "{s}");
    }
    std::fs::write(dir.join("s.txt"), samples.join("\n")).unwrap();

    let report = ok(
        &dir,
        &[
            "eval",
            "--samples",
            "s.txt",
            "--reward",
            "gc_content",
            "--model",
            "tune",
            "--reference-model",
            "pre",
            "--num",
            "16",
            "--elbo",
            "s.txt",
            "--elbo-draws",
            "4",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    // The fine-tuned model's perplexity bound on the samples: 5 sequences of 32 tokens, a positive
    // bound, and no finite prior term for the absorbing graph (JSON null).
    assert_eq!(report["elbo"]["tokens"], 160);
    let nats = report["elbo"]["nats_per_token"].as_f64().unwrap();
    assert!(nats > 0.0 && nats.is_finite(), "{nats}");
    assert!(report["elbo"]["prior_per_token"].is_null());
    assert_eq!(report["samples"], 5);
    // The reward of the file, recomputed here: the fraction of G and C.
    let gc: f64 = samples
        .iter()
        .map(|s| s.chars().filter(|c| *c == 'G' || *c == 'C').count() as f64 / 32.0)
        .sum::<f64>()
        / 5.0;
    assert!((report["reward"]["mean"].as_f64().unwrap() - gc).abs() < 1e-12);
    assert!(report["path_kl"].as_f64().unwrap() >= 0.0);

    ok(
        &dir,
        &[
            "plot",
            "--metrics",
            "tune/metrics.jsonl",
            "--out",
            "again.svg",
        ],
    );
    assert!(dir.join("again.svg").exists());

    // The single loop from a file: three updates, their metrics after the same header line as the
    // two-loop file's (resolved config, run id), a plot of the particles' reward.
    std::fs::write(
        dir.join("flow.toml"),
        "mode = \"SingleLoop\"\nmodel = 'Mlp(checkpoint = \"pre\")'\nreward = \"gc_content\"\n\
         sampler = \"Flow(init = FirstHitting)\"\nkl = 0.01\nbatch = 8\niterations = 3\n\
         metrics = \"flow.jsonl\"\nprogress = false\n",
    )
    .unwrap();
    let out = ok(
        &dir,
        &["finetune", "--config", "flow.toml", "--plot", "flow.svg"],
    );
    assert!(out.contains("update 2"), "{out}");
    let updates = lines(&dir.join("flow.jsonl"));
    assert_eq!(updates.len(), 4, "a header and three updates");
    assert_eq!(updates[0]["header"]["config"]["kl"], 0.01);
    assert!(updates[1..].iter().all(|u| u.get("header").is_none()));
    assert!(dir.join("flow.svg").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_mistake_in_a_run_file_names_the_key() {
    let dir = std::env::temp_dir().join(format!("sepo-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "reward = \"gc_content\"\niteartions = 3\n",
    )
    .unwrap();
    let out = sepo(
        &dir,
        &["finetune", "--config", "bad.toml", "--model", "nowhere"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`iteartions`") && err.contains("did you mean `iterations`"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
