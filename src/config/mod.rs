//! Run configuration files: a `policy!` written as TOML, read at run time into the same core
//! configuration (`FinetuneConfig`, `SamplerKind`, `LrSchedule`, `Mixture`, `RunOptions`, ..).
//!
//! The keys and their defaults are exactly `policy!`'s (the table in its docs): a key left out keeps
//! the core's default, as in the macro. Numbers, booleans, paths and the prompts are TOML values;
//! constructor values are strings written as in the macro:
//!
//! ```toml
//! model = 'Transformer(checkpoint = "runs/pretrain")'
//! sampler = "Tweedie(steps = 128)"
//! reward = "gc_content"                    # a name in the RewardRegistry, or a weighted sum
//! log_prob = "ConcreteScore(weights = Conditional)"
//! estimator = "0.8 * grpo(clip = 0.2) + 0.2 * reinforce(baseline = leave_one_out)"
//! kl = 0.05
//! optimizer = "Adam(lr = 1e-4)"
//! grad_clip = 1.0                          # or "None"
//! batch = 64
//! iterations = 1_000
//! metrics = "runs/policy/metrics.jsonl"
//! ```
//!
//! [`RunConfig::build_with`] then builds the same [`Run`] the macro's `build_with` does, step for
//! step, so a file and the equivalent `policy!` give bit-identical runs (`tests/config_policy.rs`).
//! Rewards are named: fill a [`RewardRegistry`] with yours (the built-ins are there already).
//!
//! Unknown keys and options, values of the wrong form and out-of-range literals are
//! [`Error::Config`] naming the key (`sampler.steps`), with "did you mean"
//! when a known name is close. `mode = "SingleLoop"` declares the gradient-flow single loop as in
//! the macro (`sampler = "Flow(..)"`, `log_prob = "Ift(..)"`), built by [`RunConfig::build_flow_with`].
//!
//! This lives in the facade, beside `policy!`, rather than in `sepo-core`: it is the macro's
//! run-time twin and calls the same `__private` helpers the macro's expansion calls (`split_batch`,
//! `default_sampler`), so the two cannot drift apart; and the core stays free of the TOML parser.

mod keys;
mod registry;
mod schedule;
mod single;
use sepo_dsl::suggest;
mod syntax;
mod values;

use std::path::{Path, PathBuf};

use sepo_core::graph::Graph;
use sepo_core::policy::Mixture;
use sepo_core::schedule::NoiseSchedule;
use sepo_core::score::{EnergyModel, ScoreModel};
use sepo_core::train::{
    seq_len_of, Allocation, FinetuneConfig, Finetuner, FlowRun, FromStates, InitialParticles,
    KlMode, LogProb, LrSchedule, Run, RunOptions, SamplerKind, SingleLoopConfig,
};
use sepo_core::Diffusion;
use sepo_core::{Error, Result};

pub use keys::KEYS;
pub use registry::RewardRegistry;
pub use schedule::AnySchedule;
pub use syntax::{parse as parse_value, Call, Value};
pub use values::Options;

use values::error;

/// A run configuration read from a file: every `policy!` key, each value checked and read into its
/// core type.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The keys as written (recorded in the metrics header).
    pub source: toml::Table,
    /// `model`: the architecture (`Transformer` or `Mlp`) and its checkpoint directory.
    pub model: Option<(String, PathBuf)>,
    /// `graph`: `Absorbing` (default) or `Uniform`.
    pub graph: String,
    /// `schedule`: a schedule's name and fields (`LogLinear` by default).
    pub schedule: Call,
    /// `mode = "SingleLoop"`: the single loop's `Flow(..)` and `Ift(..)` values; `None` for two loops.
    single_loop: Option<single::Flow>,
    reward: Value,
    eval_reward: Option<Value>,
    /// `prompts`: token ids, one sequence per group.
    pub prompts: Option<Vec<Vec<usize>>>,
    sampler: Option<SamplerKind>,
    log_prob: Option<LogProb>,
    estimator: Option<Mixture>,
    kl: Option<f64>,
    kl_mode: Option<KlMode>,
    kl_last_steps: Option<usize>,
    optimizer: Option<Value>,
    lr_schedule: Option<LrSchedule>,
    grad_clip: Option<Option<f64>>,
    batch: Option<usize>,
    groups: Option<usize>,
    group_size: Option<usize>,
    allocation: Option<Allocation>,
    iterations: Option<u64>,
    epochs: Option<usize>,
    minibatch: Option<usize>,
    /// `seq_len`: the sequence length (the model's by default).
    pub seq_len: Option<usize>,
    seed: Option<u64>,
    metrics: Option<PathBuf>,
    checkpoint_dir: Option<PathBuf>,
    progress: Option<bool>,
}

impl RunConfig {
    /// Reads the TOML file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Reads a configuration from TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Config {
            key: e
                .span()
                .and_then(|s| text.get(s))
                .unwrap_or("(file)")
                .trim()
                .to_string(),
            reason: format!("not valid TOML: {}", e.message()),
        })?;
        Self::from_table(table)
    }

    /// Reads a configuration from a parsed TOML table.
    pub fn from_table(table: toml::Table) -> Result<Self> {
        for key in table.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(error(
                    key,
                    format!("unknown key{}", suggest::hint_or_list(key, KEYS)),
                ));
            }
        }
        let get = |k: &str| table.get(k);
        let text = |k: &str| -> Result<Option<Value>> {
            match get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) => syntax::parse(k, s).map(Some),
                Some(other) => Err(error(
                    k,
                    format!(
                        "expected a string written as in `policy!`, found {}",
                        other.type_str()
                    ),
                )),
            }
        };
        let mut single_loop = false;
        if let Some(mode) = text("mode")? {
            let call = values::named("mode", &mode, keys::MODES)?;
            values::Options::new("mode", call, &[])?;
            single_loop = call.name == "SingleLoop";
        }
        let (sampler_value, log_prob_value) = (text("sampler")?, text("log_prob")?);
        let values_of = [
            ("sampler", &sampler_value, "Flow"),
            ("log_prob", &log_prob_value, "Ift"),
        ];
        let flow = match single_loop {
            true => {
                if let Some((key, why)) = table
                    .keys()
                    .find_map(|k| single::two_loop_only(k).map(|why| (k, why)))
                {
                    return Err(error(
                        key,
                        format!("not a key of `mode = \"SingleLoop\"`: {why}"),
                    ));
                }
                for (key, value, name) in values_of {
                    if value.as_ref().is_some_and(|v| !single::is_call(v, name)) {
                        return Err(error(
                            key,
                            format!("a single loop takes `{name}(..)` (two-loop values need `mode = \"TwoLoop\"`)"),
                        ));
                    }
                }
                Some(single::Flow::read(
                    sampler_value.as_ref(),
                    log_prob_value.as_ref(),
                )?)
            }
            false => {
                for (key, value, name) in values_of {
                    if value.as_ref().is_some_and(|v| single::is_call(v, name)) {
                        return Err(error(
                            key,
                            format!("`{name}(..)` is the single loop's: it needs `mode = \"SingleLoop\"`"),
                        ));
                    }
                }
                None
            }
        };
        let model = match text("model")? {
            None => None,
            Some(v) => {
                let call = values::named("model", &v, keys::MODELS)?;
                let o = values::Options::new("model", call, &["checkpoint"])?;
                match o.required("checkpoint", "`Transformer(checkpoint = \"dir\")`")? {
                    Value::Str(dir) => Some((call.name.clone(), PathBuf::from(dir))),
                    other => {
                        return Err(error(
                            "model.checkpoint",
                            format!("expected a quoted path, found {}", other.describe()),
                        ))
                    }
                }
            }
        };
        let graph = match text("graph")? {
            None => "Absorbing".to_string(),
            Some(v) => {
                let call = values::named("graph", &v, keys::GRAPHS)?;
                values::Options::new("graph", call, &[])?;
                call.name.clone()
            }
        };
        let schedule = match text("schedule")? {
            None => Call {
                name: "LogLinear".into(),
                options: Vec::new(),
            },
            Some(Value::Call(c)) => c,
            Some(other) => {
                return Err(error(
                    "schedule",
                    format!(
                        "expected a schedule such as `LogLinear(eps = 1e-3)`, found {}",
                        other.describe()
                    ),
                ))
            }
        };
        let reward =
            text("reward")?.ok_or_else(|| error("reward", "missing: `reward` is required"))?;
        let iterations = uint(&table, "iterations", 1)?;
        let default = FinetuneConfig::new(1);
        let kl = match get("kl") {
            None => None,
            Some(v) => {
                let kl = float(v, "kl")?;
                if kl < 0.0 {
                    return Err(error("kl", format!("must be ≥ 0, found {kl}")));
                }
                Some(kl)
            }
        };
        let grad_clip = match get("grad_clip") {
            None => None,
            Some(toml::Value::String(s)) if s == "None" => Some(None),
            Some(v) => {
                let c = float(v, "grad_clip")?;
                if c <= 0.0 {
                    return Err(error(
                        "grad_clip",
                        format!("bounds the gradient norm: must be > 0, found {c} (\"None\" for no clipping)"),
                    ));
                }
                Some(Some(c))
            }
        };
        let kl_mode = match text("kl_mode")? {
            None => None,
            Some(v) => {
                let call = values::named("kl_mode", &v, keys::KL_MODES)?;
                values::Options::new("kl_mode", call, &[])?;
                Some(if call.name == "Path" {
                    KlMode::Path
                } else {
                    KlMode::InReward
                })
            }
        };
        let rounds = iterations.unwrap_or(RunOptions::default().rounds);
        let config = Self {
            model,
            graph,
            schedule,
            reward,
            eval_reward: text("eval_reward")?,
            prompts: prompts(get("prompts"))?,
            sampler: match &flow {
                Some(_) => None,
                None => sampler_value
                    .map(|v| values::sampler("sampler", &v, default.sampler))
                    .transpose()?,
            },
            log_prob: match &flow {
                Some(_) => None,
                None => log_prob_value.map(|v| values::log_prob(&v)).transpose()?,
            },
            single_loop: flow,
            estimator: text("estimator")?
                .map(|v| values::estimator(&v))
                .transpose()?,
            kl,
            kl_mode,
            kl_last_steps: uint(&table, "kl_last_steps", 1)?.map(|v| v as usize),
            optimizer: text("optimizer")?,
            lr_schedule: text("lr_schedule")?
                .map(|v| values::lr_schedule(&v, rounds))
                .transpose()?,
            grad_clip,
            batch: uint(&table, "batch", 1)?.map(|v| v as usize),
            groups: uint(&table, "groups", 1)?.map(|v| v as usize),
            group_size: uint(&table, "group_size", 1)?.map(|v| v as usize),
            allocation: text("allocation")?
                .map(|v| values::allocation(&v))
                .transpose()?,
            iterations,
            epochs: uint(&table, "epochs", 1)?.map(|v| v as usize),
            minibatch: uint(&table, "minibatch", 1)?.map(|v| v as usize),
            seq_len: uint(&table, "seq_len", 1)?.map(|v| v as usize),
            seed: uint(&table, "seed", 0)?,
            metrics: path(get("metrics"), "metrics")?,
            checkpoint_dir: path(get("checkpoint_dir"), "checkpoint_dir")?,
            progress: match get("progress") {
                None => None,
                Some(toml::Value::Boolean(b)) => Some(*b),
                Some(other) => {
                    return Err(error(
                        "progress",
                        format!("expected true or false, found {}", other.type_str()),
                    ))
                }
            },
            source: table,
        };
        config.cross_checks()?;
        // Every value that does not need the model is checked now, not at the first round.
        match &config.single_loop {
            None => config
                .finetune_config(config.seq_len.unwrap_or(1))?
                .check()?,
            Some(_) => {
                if let Ok(schedule) = config.any_schedule() {
                    config.single_loop_config(&schedule)?;
                }
                if config.batch.is_some_and(|b| b < 2) {
                    return Err(error("batch", "a single loop needs at least 2 particles"));
                }
            }
        }
        Ok(config)
    }

    /// The rules across keys `policy!` checks at compile time.
    fn cross_checks(&self) -> Result<()> {
        if self.graph == "Uniform" && matches!(self.sampler, Some(SamplerKind::FirstHitting(_))) {
            return Err(error(
                "sampler",
                "`FirstHitting` needs an absorbing graph (`graph = \"Absorbing\"`)",
            ));
        }
        if self.prompts.is_some() {
            for key in ["groups", "batch"] {
                if self.source.contains_key(key) {
                    return Err(error(
                        key,
                        "with `prompts`, the groups are the prompts: set `group_size` instead",
                    ));
                }
            }
        } else if matches!(self.allocation, Some(a) if a != Allocation::Uniform) {
            return Err(error(
                "allocation",
                "splits a round's draws across prompts: it needs `prompts`",
            ));
        }
        Ok(())
    }

    /// The fine-tuning configuration for sequences of length `seq_len`: `FinetuneConfig::new(seq_len)`
    /// with the keys given set, in `policy!`'s order (its `config(seq_len)`).
    pub fn finetune_config(&self, seq_len: usize) -> Result<FinetuneConfig> {
        let mut config = FinetuneConfig::new(seq_len);
        if let Some(s) = self.sampler {
            config.sampler = s;
        }
        if let Some(l) = self.log_prob {
            config.log_prob = l;
        }
        if let Some(e) = &self.estimator {
            config.estimator = e.clone();
        }
        if let Some(kl) = self.kl {
            config.kl = kl;
        }
        if let Some(n) = self.kl_last_steps {
            config.kl_last_steps = Some(n);
        }
        if let Some(m) = self.kl_mode {
            config.kl_mode = m;
        }
        if let Some(o) = &self.optimizer {
            config.optimizer = values::optimizer(o, config.optimizer)?;
        }
        if let Some(l) = self.lr_schedule {
            config.lr_schedule = l;
        }
        if let Some(c) = self.grad_clip {
            config.grad_clip = c;
        }
        match self.batch {
            Some(batch) => {
                (config.groups, config.group_size) = crate::__private::split_batch(
                    batch,
                    self.groups,
                    self.group_size,
                    config.group_size,
                )?;
            }
            None => {
                if let Some(g) = self.groups {
                    config.groups = g;
                }
                if let Some(g) = self.group_size {
                    config.group_size = g;
                }
            }
        }
        if let Some(a) = self.allocation {
            config.allocation = a;
        }
        if let Some(e) = self.epochs {
            config.epochs = e;
        }
        if let Some(m) = self.minibatch {
            config.minibatch = m;
        }
        if let Some(s) = self.seed {
            config.seed = s;
        }
        Ok(config)
    }

    /// Whether the file declares the gradient-flow single loop (`mode = "SingleLoop"`).
    pub fn is_single_loop(&self) -> bool {
        self.single_loop.is_some()
    }

    /// The single loop's configuration, `SingleLoopConfig::default()` with the keys given set in
    /// `policy!`'s order (its single-loop `config`), `t0` read as `σ̄(t0)` under `schedule`. A
    /// two-loop file is [`Error::Config`] naming `mode`.
    pub fn single_loop_config<S: NoiseSchedule>(&self, schedule: &S) -> Result<SingleLoopConfig> {
        let flow = self
            .single_loop
            .as_ref()
            .ok_or_else(|| error("mode", "a two-loop file: use `finetune_config`"))?;
        let mut config = SingleLoopConfig::default();
        flow.apply(&mut config, schedule)?;
        if let Some(kl) = self.kl {
            config.kl = kl;
        }
        if let Some(o) = &self.optimizer {
            config.optimizer = values::optimizer(o, config.optimizer)?;
        }
        if let Some(l) = self.lr_schedule {
            config.lr_schedule = l;
        }
        if let Some(c) = self.grad_clip {
            config.grad_clip = c;
        }
        if let Some(s) = self.seed {
            config.seed = s;
        }
        Ok(config)
    }

    /// Builds the single loop from `model` and `schedule`, as `policy!`'s single-loop `build_with`:
    /// draws `batch` (default 32) initial particles with `Flow(init = ..)`'s sampler and starts the
    /// run. A two-loop file is [`Error::Config`] naming `mode`.
    pub fn build_flow_with<M, G, S>(
        &self,
        model: M,
        schedule: S,
        rewards: &RewardRegistry,
    ) -> Result<FlowRun<M, G>>
    where
        M: EnergyModel<Elem = f32>,
        G: Graph + FromStates,
        S: NoiseSchedule,
    {
        self.check_graph::<G>()?;
        let flow = self
            .single_loop
            .as_ref()
            .ok_or_else(|| error("mode", "a two-loop file: use `build_with`"))?;
        let graph = G::from_states(model.num_states())?;
        let seq_len = seq_len_of(&model, self.seq_len)?;
        let config = self.single_loop_config(&schedule)?;
        let reward = self.reward(rewards, "reward")?.expect("required");
        let init = InitialParticles {
            sampler: flow.init.unwrap_or_else(crate::__private::default_sampler),
            count: self.batch.unwrap_or(single::PARTICLES),
            seq_len,
        };
        let diffusion = Diffusion::new(graph, schedule);
        FlowRun::start(model, diffusion, reward, config, init, self.run_options())
    }

    /// `G` is the graph the file names.
    fn check_graph<G>(&self) -> Result<()> {
        let named = std::any::type_name::<G>().rsplit("::").next().unwrap_or("");
        if named != self.graph {
            return Err(error(
                "graph",
                format!(
                    "the file names `{}` but the run is built over `{named}`",
                    self.graph
                ),
            ));
        }
        Ok(())
    }

    /// `RunOptions::default()` with `iterations`, `progress`, `metrics` and `checkpoint_dir` set where
    /// given.
    pub fn run_options(&self) -> RunOptions {
        let mut options = RunOptions::default();
        if let Some(r) = self.iterations {
            options.rounds = r;
        }
        if let Some(p) = self.progress {
            options.progress = p;
        }
        options.metrics.clone_from(&self.metrics);
        options.checkpoint.clone_from(&self.checkpoint_dir);
        options
    }

    /// The schedule as the type `S`: `S::default()` with the fields given set by name (through
    /// serde, so any `noise_schedule!` type works). `S` must be the schedule the file names (the
    /// last segment of its type name), or [`Error::Config`].
    pub fn schedule<S>(&self) -> Result<S>
    where
        S: NoiseSchedule + Default + serde::Serialize + serde::de::DeserializeOwned,
    {
        schedule::by_fields(&self.schedule)
    }

    /// The schedule as one of the built-ins, chosen at run time ([`AnySchedule`]).
    pub fn any_schedule(&self) -> Result<AnySchedule> {
        AnySchedule::from_call(&self.schedule)
    }

    /// The reward (`key` = `"reward"`) or evaluation reward (`"eval_reward"`) from `rewards`.
    pub fn reward(
        &self,
        rewards: &RewardRegistry,
        key: &str,
    ) -> Result<Option<sepo_core::reward::BoxedReward>> {
        let value = match key {
            "reward" => Some(&self.reward),
            _ => self.eval_reward.as_ref(),
        };
        value.map(|v| rewards.build(key, v)).transpose()
    }

    /// Builds the run from `model` and `schedule`, as `policy!`'s `build_with`: the graph `G` over the
    /// model's states (it must be the one the file names), the sequence length, the configuration,
    /// the rewards from `rewards`, the prompts and the run options; the file's keys go into the
    /// metrics header ([`Run::source`]).
    pub fn build_with<M, G, S>(
        &self,
        model: M,
        schedule: S,
        rewards: &RewardRegistry,
    ) -> Result<Run<M, G, S>>
    where
        M: ScoreModel<Elem = f32>,
        G: Graph + FromStates,
        S: NoiseSchedule,
    {
        self.check_graph::<G>()?;
        if self.single_loop.is_some() {
            return Err(error("mode", "a single-loop file: use `build_flow_with`"));
        }
        let states = model.num_states();
        let graph = G::from_states(states)?;
        let seq_len = seq_len_of(&model, self.seq_len)?;
        let config = self.finetune_config(seq_len)?;
        let reward = self.reward(rewards, "reward")?.expect("required");
        let mut finetuner = Finetuner::new(model, graph, schedule, reward, config)?;
        if let Some(eval) = self.reward(rewards, "eval_reward")? {
            finetuner = finetuner.with_eval_reward(Box::new(eval));
        }
        if let Some(prompts) = &self.prompts {
            finetuner = finetuner.with_prompts(prompts)?;
        }
        let mut run = Run::new(finetuner, self.run_options());
        run.source = serde_json::to_value(&self.source).unwrap_or_default();
        Ok(run)
    }
}

/// An unsigned integer key `≥ min`.
fn uint(table: &toml::Table, key: &str, min: u64) -> Result<Option<u64>> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) if *i >= min as i64 => Ok(Some(*i as u64)),
        Some(other) => Err(error(
            key,
            format!("expected an integer ≥ {min}, found {other}"),
        )),
    }
}

/// A number key (an integer reads as the float it denotes, as in `policy!`).
fn float(value: &toml::Value, key: &str) -> Result<f64> {
    let v = match value {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        other => return Err(error(key, format!("expected a number, found {other}"))),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(error(key, format!("must be finite, found {v}")))
    }
}

fn path(value: Option<&toml::Value>, key: &str) -> Result<Option<PathBuf>> {
    match value {
        None => Ok(None),
        Some(toml::Value::String(s)) if !s.is_empty() => Ok(Some(PathBuf::from(s))),
        Some(other) => Err(error(key, format!("expected a path, found {other}"))),
    }
}

/// `prompts = [[0, 1], [2]]`: token ids, one sequence per group.
fn prompts(value: Option<&toml::Value>) -> Result<Option<Vec<Vec<usize>>>> {
    let key = "prompts";
    let Some(value) = value else { return Ok(None) };
    let bad = || error(key, "expected token sequences: `prompts = [[0, 1], [2]]`");
    let rows = value.as_array().ok_or_else(bad)?;
    if rows.is_empty() {
        return Err(error(key, "no prompt given"));
    }
    rows.iter()
        .map(|row| {
            row.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|t| match t.as_integer() {
                    Some(t) if t >= 0 => Ok(t as usize),
                    _ => Err(error(
                        key,
                        format!("a token id is an integer ≥ 0, found {t}"),
                    )),
                })
                .collect()
        })
        .collect::<Result<_>>()
        .map(Some)
}
