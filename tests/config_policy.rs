//! A run configuration file and the equivalent `policy!` are the same run: the same
//! `FinetuneConfig` and run options, and, built over the same model, bit-identical parameters, AdamW
//! moments and metrics after three rounds. Mistakes in a file are typed errors naming the key.

use sepo::config::{RewardRegistry, RunConfig};
use sepo::prelude::*;
use sepo::Error;

/// Number of 2s in the sequence.
#[reward(range = 0.0..=4.0)]
fn twos(seq: &[usize]) -> f64 {
    seq.iter().filter(|&&t| t == 2).count() as f64
}

estimator! {
    Mixed = 0.7 * grpo(clip = 0.1) + 0.3 * reinforce(baseline = leave_one_out);
}

policy! {
    /// Many keys set, none at its default.
    Busy {
        graph: Absorbing,
        schedule: LogLinear(eps = 2e-3),
        sampler: Euler(steps = 6, eps = 1e-3),
        reward: Twos,
        eval_reward: sepo::reward::GcContent::default(),
        log_prob: ConcreteScore(weights = Snis(draws = 3), clean = MaskedSubset(positions = 2)),
        estimator: Mixed,
        kl: 0.05,
        kl_mode: InReward,
        kl_last_steps: 4,
        optimizer: Adam(lr = 3e-3, weight_decay = 0.01, beta2 = 0.99),
        lr_schedule: WarmupCosine(warmup = 2, total = 50, min_ratio = 0.1),
        grad_clip: 0.5,
        batch: 8,
        group_size: 4,
        iterations: 3,
        epochs: 2,
        minibatch: 4,
        seed: 7,
        progress: false,
    }
}

const BUSY: &str = r#"
graph = "Absorbing"
schedule = "LogLinear(eps = 2e-3)"
sampler = "Euler(steps = 6, eps = 1e-3)"
reward = "twos"
eval_reward = "gc_content"
log_prob = "ConcreteScore(weights = Snis(draws = 3), clean = MaskedSubset(positions = 2))"
estimator = "0.7 * grpo(clip = 0.1) + 0.3 * reinforce(baseline = leave_one_out)"
kl = 0.05
kl_mode = "InReward"
kl_last_steps = 4
optimizer = "Adam(lr = 3e-3, weight_decay = 0.01, beta2 = 0.99)"
lr_schedule = "WarmupCosine(warmup = 2, total = 50, min_ratio = 0.1)"
grad_clip = 0.5
batch = 8
group_size = 4
iterations = 3
epochs = 2
minibatch = 4
seed = 7
progress = false
"#;

policy! {
    /// Only the reward: every default.
    Bare { reward: Twos }
}

policy! {
    /// Prompts, an allocation, the other sampler and estimator spellings.
    Prompted {
        sampler: FirstHitting(max_batch = 64),
        reward: Twos,
        prompts: vec![vec![0], vec![1, 2]],
        log_prob: Events(positions = 2),
        estimator: snis(temperature = 0.5),
        allocation: Sequential(cap = 8),
        lr_schedule: Linear,
        grad_clip: None,
        group_size: 4,
        iterations: 40,
    }
}

const PROMPTED: &str = r#"
sampler = "FirstHitting(max_batch = 64)"
reward = "twos"
prompts = [[0], [1, 2]]
log_prob = "Events(positions = 2)"
estimator = "snis(temperature = 0.5)"
allocation = "Sequential(cap = 8)"
lr_schedule = "Linear"
grad_clip = "None"
group_size = 4
iterations = 40
"#;

fn registry() -> RewardRegistry {
    let mut r = RewardRegistry::default();
    r.register("twos", Twos);
    r
}

fn model() -> Mlp<f32, Cpu> {
    Mlp::new(
        MlpConfig::tiny(5, 4, ScoreHead::Absorbing),
        &Cpu::default(),
        3,
    )
    .unwrap()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The round lines of a metrics file, wall-clock fields, the run id and the header left out.
fn rounds(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("header").is_none())
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            for k in [
                "run_id",
                "samples_per_s",
                "time_sample",
                "time_score",
                "time_backward",
            ] {
                o.remove(k);
            }
            v
        })
        .collect()
}

#[test]
fn configs_equal_the_policies() {
    for (seq_len, policy, text) in [
        (4, Busy::config(4).unwrap(), BUSY),
        (4, Bare::config(4).unwrap(), "reward = \"twos\""),
        (3, Prompted::config(3).unwrap(), PROMPTED),
    ] {
        let file = RunConfig::from_toml(text).unwrap();
        assert_eq!(file.finetune_config(seq_len).unwrap(), policy, "{text}");
    }
    let busy = RunConfig::from_toml(BUSY).unwrap();
    assert_eq!(busy.schedule::<LogLinear>().unwrap(), Busy::schedule());
    let bare = RunConfig::from_toml("reward = \"twos\"").unwrap();
    assert_eq!(bare.schedule::<LogLinear>().unwrap(), Bare::schedule());
    assert_eq!(bare.run_options(), RunOptions::default());
}

#[test]
fn a_file_and_its_policy_run_bit_identically() {
    let dir = std::env::temp_dir().join(format!("sepo-config-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (from_policy, from_file) = (dir.join("policy.jsonl"), dir.join("file.jsonl"));

    let mut a = Busy::build_with(model()).unwrap();
    a.options.metrics = Some(from_policy.clone());
    let ha = a.fit().unwrap();

    let config = RunConfig::from_toml(BUSY).unwrap();
    let mut b = config
        .build_with::<_, Absorbing, LogLinear>(model(), config.schedule().unwrap(), &registry())
        .unwrap();
    assert_eq!(b.options.rounds, a.options.rounds);
    b.options.metrics = Some(from_file.clone());
    let hb = b.fit().unwrap();

    assert_eq!(ha.len(), 3);
    assert_eq!(
        bits(&a.model().params().flat_f64()),
        bits(&b.model().params().flat_f64())
    );
    assert_ne!(
        bits(&a.model().params().flat_f64()),
        bits(&model().params().flat_f64()),
        "the rounds moved the parameters"
    );
    assert_eq!(
        a.finetuner.optimizer_state().step,
        b.finetuner.optimizer_state().step
    );
    for (ma, mb) in a
        .finetuner
        .optimizer_state()
        .m
        .iter()
        .zip(&b.finetuner.optimizer_state().m)
    {
        assert_eq!(ma.as_vec(), mb.as_vec());
    }
    for (va, vb) in a
        .finetuner
        .optimizer_state()
        .v
        .iter()
        .zip(&b.finetuner.optimizer_state().v)
    {
        assert_eq!(va.as_vec(), vb.as_vec());
    }
    let strip = |h: &[RoundMetrics]| {
        h.iter()
            .map(|m| RoundMetrics {
                samples_per_s: 0.0,
                time_sample: 0.0,
                time_score: 0.0,
                time_backward: 0.0,
                ..m.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&ha), strip(&hb));
    assert!(ha.iter().all(|m| m.eval_reward.is_some() && m.kl.is_some()));
    assert_eq!(rounds(&from_policy), rounds(&from_file));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mistakes_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "reward = \"twos\"\niteartions = 3",
            "iteartions",
            "did you mean `iterations`",
        ),
        (
            "reward = \"twos\"\nsampler = \"Tweedie(stesp = 3)\"",
            "sampler.stesp",
            "did you mean `steps`",
        ),
        (
            "reward = \"twos\"\nsampler = \"Tweedy\"",
            "sampler",
            "did you mean `Tweedie`",
        ),
        ("reward = \"twos\"\nkl = -0.1", "kl", "≥ 0"),
        ("reward = \"twos\"\nepochs = 2.5", "epochs", "integer"),
        ("reward = \"twos\"\ngrad_clip = 0.0", "grad_clip", "> 0"),
        ("iterations = 3", "reward", "required"),
        (
            "reward = \"twos\"\nestimator = \"0.5 * grpo + 0.6 * ppo\"",
            "estimator",
            "sum to",
        ),
        (
            "reward = \"twos\"\nestimator = \"grpo(clip = 1.5)\"",
            "estimator.grpo.clip",
            "(0, 1)",
        ),
        (
            "reward = \"twos\"\nlr_schedule = \"Warmup\"",
            "lr_schedule",
            "needs `warmup`",
        ),
        (
            "reward = \"twos\"\noptimizer = \"Adam(lr = -1e-3)\"",
            "optimizer",
            "lr",
        ),
        (
            "reward = \"twos\"\ngraph = \"Uniform\"\nsampler = \"FirstHitting\"",
            "sampler",
            "absorbing",
        ),
        (
            "reward = \"twos\"\nallocation = \"Adaptive(budget = 8)\"",
            "allocation",
            "prompts",
        ),
        (
            "reward = \"twos\"\nbatch = 12\ngroup_size = 5",
            "batch",
            "multiple",
        ),
        (
            "reward = \"twos\"\nmode = \"SingelLoop\"",
            "mode",
            "did you mean `SingleLoop`",
        ),
        ("reward = \"twos\"\nsampler = 3", "sampler", "string"),
        (
            "reward = \"twos\"\nsampler = \"Tweedie(steps = )\"",
            "sampler",
            "cannot read",
        ),
    ];
    for (text, key, needle) in cases {
        let (k, reason) = match RunConfig::from_toml(text) {
            Err(Error::Config { key, reason }) => (key, reason),
            Err(Error::InvalidParameter { name, reason, .. }) => (name.to_string(), reason),
            other => panic!("{text}: expected a typed error, got {other:?}"),
        };
        assert_eq!(&k, key, "{text}: {reason}");
        assert!(reason.contains(needle), "{text}: {reason}");
    }
    // A reward the registry lacks is named when the run is built.
    let config = RunConfig::from_toml("reward = \"twoss\"").unwrap();
    match config.reward(&registry(), "reward") {
        Err(Error::Config { key, reason }) => {
            assert_eq!(key, "reward");
            assert!(reason.contains("did you mean `twos`"), "{reason}");
        }
        other => panic!("{:?}", other.map(|r| r.map(|r| r.name()))),
    }
    let config = RunConfig::from_toml("reward = \"twos\"\nschedule = \"LogLinear(esp = 0.1)\"");
    assert!(
        config.is_ok(),
        "the schedule's fields are read with its type"
    );
    match config.unwrap().schedule::<LogLinear>() {
        Err(Error::Config { key, reason }) => {
            assert_eq!(key, "schedule.esp");
            assert!(reason.contains("did you mean `eps`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

policy! {
    /// The gradient-flow single loop, every value set.
    Flowing {
        mode: SingleLoop,
        schedule: LogLinear(eps = 2e-3),
        sampler: Flow(rates = Barker, steps = 2, init = FirstHitting, max_batch = 64),
        log_prob: Ift(h = Neighbour(weights = Snis(draws = 3)), clean = MaskedSubset(positions = 2), t0 = 1e-3, ratio = PathSubset(positions = 2)),
        reward: Twos,
        kl: 0.05,
        optimizer: Adam(lr = 1e-2),
        lr_schedule: InvSqrt(scale = 50),
        grad_clip: 2.0,
        batch: 12,
        iterations: 3,
        seed: 5,
        progress: false,
    }
}

const FLOWING: &str = r#"
mode = "SingleLoop"
schedule = "LogLinear(eps = 2e-3)"
sampler = "Flow(rates = Barker, steps = 2, init = FirstHitting, max_batch = 64)"
log_prob = "Ift(h = Neighbour(weights = Snis(draws = 3)), clean = MaskedSubset(positions = 2), t0 = 1e-3, ratio = PathSubset(positions = 2))"
reward = "twos"
kl = 0.05
optimizer = "Adam(lr = 1e-2)"
lr_schedule = "InvSqrt(scale = 50)"
grad_clip = 2.0
batch = 12
iterations = 3
seed = 5
progress = false
"#;

policy! {
    /// The single loop with its defaults.
    FlowBare { mode: SingleLoop, reward: Twos }
}

#[test]
fn a_single_loop_file_and_its_policy_run_bit_identically() {
    let bare = RunConfig::from_toml("mode = \"SingleLoop\"\nreward = \"twos\"").unwrap();
    let schedule: LogLinear = bare.schedule().unwrap();
    assert_eq!(
        bare.single_loop_config(&schedule).unwrap(),
        FlowBare::config(4).unwrap()
    );
    let config = RunConfig::from_toml(FLOWING).unwrap();
    let schedule: LogLinear = config.schedule().unwrap();
    assert_eq!(
        config.single_loop_config(&schedule).unwrap(),
        Flowing::config(4).unwrap()
    );
    let mut a = Flowing::build_with(model()).unwrap();
    let ha = a.fit().unwrap();
    let mut b = config
        .build_flow_with::<_, Absorbing, LogLinear>(model(), schedule, &registry())
        .unwrap();
    let hb = b.fit().unwrap();
    assert_eq!(ha.len(), 3);
    let params = |m: &Mlp<f32, Cpu>| bits(&m.params().flat_f64());
    assert_eq!(params(&a.single_loop.model), params(&b.single_loop.model));
    assert_ne!(params(&a.single_loop.model), params(&model()));
    let strip = |h: &[sepo::train::UpdateMetrics]| {
        h.iter()
            .map(|m| sepo::train::UpdateMetrics {
                seconds: 0.0,
                ..m.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&ha), strip(&hb));
    // Two-loop keys and values are refused in a single loop, and the other way round.
    for (text, key) in [
        (
            "mode = \"SingleLoop\"\nreward = \"twos\"\nepochs = 2",
            "epochs",
        ),
        (
            "mode = \"SingleLoop\"\nreward = \"twos\"\nsampler = \"Tweedie\"",
            "sampler",
        ),
        ("reward = \"twos\"\nlog_prob = \"Ift\"", "log_prob"),
        (
            "mode = \"SingleLoop\"\nreward = \"twos\"\nsampler = \"Flow(rates = Sqrt)\"",
            "sampler.rates",
        ),
        (
            "mode = \"SingleLoop\"\nreward = \"twos\"\nbatch = 1",
            "batch",
        ),
    ] {
        match RunConfig::from_toml(text) {
            Err(Error::Config { key: k, .. }) => assert_eq!(k, key, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

/// The file's keys are `policy!`'s (one list, `sepo_dsl::keys::POLICY_KEYS`, read by both), and the file
/// reader really reads each of them: a value of the wrong kind under any key is an error naming that key
/// (a key the list gained but the reader ignored would load silently and fail here).
#[test]
fn every_key_of_the_macro_is_read_by_the_file_reader() {
    assert_eq!(sepo::config::KEYS, sepo_dsl::keys::POLICY_KEYS);
    for key in sepo::config::KEYS {
        let reward = if *key == "reward" {
            ""
        } else {
            "reward = \"twos\"\n"
        };
        let text = format!("{reward}{key} = {{ wrong = 1 }}");
        match RunConfig::from_toml(&text) {
            Err(Error::Config { key: named, .. }) => assert!(
                named == *key || named.starts_with(&format!("{key}.")),
                "{text}: the error names `{named}`"
            ),
            other => panic!("{text}: {other:?}"),
        }
    }
}

/// The single loop's KL coefficient is `kl`, as in `FinetuneConfig` and the DSL; configuration JSON
/// written when the field was called `beta` still loads, to the same value and nothing else changed.
#[test]
fn single_loop_config_reads_its_old_kl_name() {
    let config = sepo::train::SingleLoopConfig {
        kl: 0.25,
        ..Default::default()
    };
    let mut json = serde_json::to_value(&config).unwrap();
    let map = json.as_object_mut().unwrap();
    let kl = map.remove("kl").expect("written as `kl`");
    assert!(!map.contains_key("beta"));
    map.insert("beta".into(), kl);
    let back: sepo::train::SingleLoopConfig = serde_json::from_value(json).unwrap();
    assert_eq!(back, config);
}
