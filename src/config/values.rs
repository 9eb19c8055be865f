//! Constructor values (`Tweedie(steps = 64)`, `grpo(clip = 0.2)`, ..) → the core's types, with the
//! defaults `policy!` expands to: every value starts from the core's (`FinetuneConfig::new`'s sampler,
//! `ConcreteScore::default()`, `Adaptive::new(budget)`, ..) and sets only the options written; the few
//! options the core has no default for take the macro's constants (`Snis(draws = 2)`,
//! `MaskedSubset(positions = 4)`, `Events(positions = 4)`, `WarmupCosine(warmup = 0, min_ratio =
//! 0.0)`, `InvSqrt(scale = 100)`, `Sequential(chunk = 4, cap = 16)`, `grpo`/`ppo` `clip = 0.2`,
//! `grpo` `delta = 1e-8`, `snis` `temperature = 1.0`).

use sepo_core::nn::AdamW;
use sepo_core::policy::{
    CleanScores, Component, ConcreteScore, Mixture, NeighbourWeights, Reweight,
};
use sepo_core::sample::{Predictor, SamplerConfig};
use sepo_core::train::{
    Adaptive, Allocation, LogProb, LrSchedule, Neyman, SamplerKind, Sequential,
};
use sepo_core::weight::Baseline;
use sepo_core::{Error, Result};

use super::keys;
use super::suggest;
use super::syntax::{Call, Value};

/// [`Error::Config`] for `key`.
pub fn error(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `value` as a call to one of `names` (a misspelt name gets "did you mean").
pub fn named<'a>(key: &str, value: &'a Value, names: &[&str]) -> Result<&'a Call> {
    match value {
        Value::Call(call) if names.contains(&call.name.as_str()) => Ok(call),
        Value::Call(call) => Err(error(
            key,
            format!(
                "unknown `{}`{}",
                call.name,
                suggest::hint_or_list(&call.name, names)
            ),
        )),
        other => Err(error(
            key,
            format!(
                "expected {}, found {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                other.describe()
            ),
        )),
    }
}

/// The options of one call, checked against the ones it accepts.
pub struct Options<'a> {
    key: String,
    call: &'a Call,
}

impl<'a> Options<'a> {
    /// Reads `call`'s options for `key`: an option not in `allowed`, or given twice, is an error
    /// naming `key.option`.
    pub fn new(key: &str, call: &'a Call, allowed: &[&str]) -> Result<Self> {
        for (i, (option, _)) in call.options.iter().enumerate() {
            let at = format!("{key}.{option}");
            if !allowed.contains(&option.as_str()) {
                let hint = if allowed.is_empty() {
                    format!("; `{}` takes no options", call.name)
                } else {
                    suggest::hint_or_list(option, allowed)
                };
                return Err(error(
                    &at,
                    format!("unknown option of `{}`{hint}", call.name),
                ));
            }
            if call.options[..i].iter().any(|(o, _)| o == option) {
                return Err(error(&at, "given twice"));
            }
        }
        Ok(Self {
            key: key.to_string(),
            call,
        })
    }

    /// The key an option is reported under: `sampler.steps`.
    pub fn at(&self, option: &str) -> String {
        format!("{}.{option}", self.key)
    }

    /// The value of `option`, if given.
    pub fn get(&self, option: &str) -> Option<&'a Value> {
        self.call
            .options
            .iter()
            .find(|(o, _)| o == option)
            .map(|(_, v)| v)
    }

    /// A number (integers too, as the macro reads `kl: 1` as `1.0`).
    pub fn float(&self, option: &str) -> Result<Option<f64>> {
        self.get(option)
            .map(|v| number(&self.at(option), v))
            .transpose()
    }

    /// An integer `≥ min`.
    pub fn int(&self, option: &str, min: u64) -> Result<Option<u64>> {
        self.get(option)
            .map(|v| integer(&self.at(option), v, min))
            .transpose()
    }

    /// A count `≥ 1`.
    pub fn count(&self, option: &str) -> Result<Option<usize>> {
        Ok(self.int(option, 1)?.map(|v| v as usize))
    }

    /// A required option.
    pub fn required(&self, option: &str, example: &str) -> Result<&'a Value> {
        self.get(option).ok_or_else(|| {
            error(
                &self.key,
                format!("`{}` needs `{option}`: {example}", self.call.name),
            )
        })
    }
}

/// A finite number.
pub fn number(key: &str, value: &Value) -> Result<f64> {
    match value {
        Value::Number(v, _) => Ok(*v),
        other => Err(error(
            key,
            format!("expected a number, found {}", other.describe()),
        )),
    }
}

/// An integer `≥ min` (at most 2^53, where `f64` stops counting exactly).
pub fn integer(key: &str, value: &Value, min: u64) -> Result<u64> {
    match value {
        Value::Number(v, true) if *v >= min as f64 && *v <= 9_007_199_254_740_992.0 => {
            Ok(*v as u64)
        }
        Value::Number(v, _) => Err(error(
            key,
            format!("expected an integer ≥ {min}, found {v}"),
        )),
        other => Err(error(
            key,
            format!("expected an integer ≥ {min}, found {}", other.describe()),
        )),
    }
}

/// `Tweedie(steps, eps, max_batch)`, `Euler(..)` (over `FinetuneConfig::new`'s sampler settings) or
/// `FirstHitting(max_batch)` (over `SamplerConfig::default()`).
pub fn sampler(key: &str, value: &Value, default: SamplerKind) -> Result<SamplerKind> {
    let call = named(key, value, keys::SAMPLERS)?;
    if call.name == "FirstHitting" {
        let o = Options::new(key, call, &["max_batch"])?;
        let mut settings = SamplerConfig::default();
        if let Some(m) = o.count("max_batch")? {
            settings.max_batch = m;
        }
        return Ok(SamplerKind::FirstHitting(settings));
    }
    let o = Options::new(key, call, &["steps", "eps", "max_batch"])?;
    let mut settings = match default {
        SamplerKind::Grid(s) | SamplerKind::FirstHitting(s) => s,
    };
    settings.predictor = if call.name == "Euler" {
        Predictor::Euler
    } else {
        Predictor::Tweedie
    };
    if let Some(s) = o.count("steps")? {
        settings.steps = s;
    }
    if let Some(e) = o.float("eps")? {
        if !(e > 0.0 && e < 1.0) {
            return Err(error(&o.at("eps"), format!("must be in (0, 1), found {e}")));
        }
        settings.eps = e;
    }
    if let Some(m) = o.count("max_batch")? {
        settings.max_batch = m;
    }
    Ok(SamplerKind::Grid(settings))
}

/// `Trajectory`, `Events(positions = 4)` or `ConcreteScore(weights, clean, t0)` over
/// `ConcreteScore::default()`.
pub fn log_prob(value: &Value) -> Result<LogProb> {
    let key = "log_prob";
    let call = named(key, value, keys::LOG_PROBS)?;
    match call.name.as_str() {
        "Trajectory" => {
            Options::new(key, call, &[])?;
            Ok(LogProb::Trajectory)
        }
        "Events" => {
            let o = Options::new(key, call, &["positions"])?;
            Ok(LogProb::Events {
                positions: o.count("positions")?.unwrap_or(SUBSET_POSITIONS),
            })
        }
        _ => {
            let o = Options::new(key, call, &["weights", "clean", "t0"])?;
            let mut score = ConcreteScore::default();
            if let Some(w) = o.get("weights") {
                score.weights = weights(&o.at("weights"), w)?;
            }
            if let Some(c) = o.get("clean") {
                score.clean = clean(&o.at("clean"), c)?;
            }
            if let Some(t0) = o.float("t0")? {
                if !(0.0..=1.0).contains(&t0) {
                    return Err(error(&o.at("t0"), format!("must be in [0, 1], found {t0}")));
                }
                score.t0 = t0;
            }
            Ok(LogProb::ConcreteScore(score))
        }
    }
}

/// `Snis(draws = 2)`: `NeighbourWeights::Snis` has no default draw count.
const SNIS_DRAWS: usize = 2;
/// `MaskedSubset(positions = 4)`, `Events(positions = 4)`.
const SUBSET_POSITIONS: usize = 4;

/// `Conditional`, `Enumerate` or `Snis(draws = 2)`.
pub fn weights(key: &str, value: &Value) -> Result<NeighbourWeights> {
    let call = named(key, value, keys::WEIGHTS)?;
    match call.name.as_str() {
        "Conditional" => Options::new(key, call, &[]).map(|_| NeighbourWeights::Conditional),
        "Enumerate" => Options::new(key, call, &[]).map(|_| NeighbourWeights::Enumerate),
        _ => {
            let o = Options::new(key, call, &["draws"])?;
            Ok(NeighbourWeights::Snis {
                draws: o.count("draws")?.unwrap_or(SNIS_DRAWS),
            })
        }
    }
}

/// `Masked`, `Unmasked` or `MaskedSubset(positions = 4)`.
pub fn clean(key: &str, value: &Value) -> Result<CleanScores> {
    let call = named(key, value, keys::CLEANS)?;
    match call.name.as_str() {
        "Masked" => Options::new(key, call, &[]).map(|_| CleanScores::Masked),
        "Unmasked" => Options::new(key, call, &[]).map(|_| CleanScores::Unmasked),
        _ => {
            let o = Options::new(key, call, &["positions"])?;
            Ok(CleanScores::MaskedSubset {
                positions: o.count("positions")?.unwrap_or(SUBSET_POSITIONS),
            })
        }
    }
}

/// `estimator!`'s defaults: `clip = 0.2` (`ppo`, `grpo`), `delta = 1e-8`, `temperature = 1.0`.
const DEFAULT_CLIP: f64 = 0.2;
const DEFAULT_DELTA: f64 = 1e-8;
const DEFAULT_TEMPERATURE: f64 = 1.0;

/// A mixture written as in `estimator!`: `grpo(clip = 0.2)`, `0.8 * grpo + 0.2 * reinforce(baseline =
/// leave_one_out)`. Weights are `≥ 0` and sum to 1 (within 1e-9); a lone component has weight 1;
/// every term of a sum has a weight.
pub fn estimator(value: &Value) -> Result<Mixture> {
    let key = "estimator";
    let terms = value.terms();
    let mut components = Vec::with_capacity(terms.len());
    for (weight, term) in &terms {
        let weight = match (weight, terms.len()) {
            (Some(w), _) => *w,
            (None, 1) => 1.0,
            (None, _) => {
                return Err(error(
                    key,
                    "every term of a mixture needs a weight: `0.5 * grpo`",
                ))
            }
        };
        if weight < 0.0 {
            return Err(error(key, format!("weights are ≥ 0, found {weight}")));
        }
        components.push(component(key, weight, term)?);
    }
    let total: f64 = components.iter().map(|c| c.weight).sum();
    if (total - 1.0).abs() > 1e-9 {
        return Err(error(key, format!("the weights sum to {total}, not 1")));
    }
    Ok(Mixture { components })
}

fn component(key: &str, weight: f64, value: &Value) -> Result<Component> {
    let call = named(key, value, keys::COMPONENTS)?;
    let name = call.name.as_str();
    let allowed: &[&str] = match name {
        "reinforce" => &["baseline", "group"],
        "ppo" => &["baseline", "clip", "group"],
        "grpo" => &["group", "clip", "delta"],
        "snis" => &["temperature", "clip", "group"],
        _ => &["baseline", "clip", "group"],
    };
    let key = format!("{key}.{name}");
    let o = Options::new(&key, call, allowed)?;
    let clip = o.float("clip")?;
    if let Some(c) = clip {
        if !(c > 0.0 && c < 1.0) {
            return Err(error(
                &o.at("clip"),
                format!("must be in (0, 1), found {c}"),
            ));
        }
    }
    let delta = o.float("delta")?.unwrap_or(DEFAULT_DELTA);
    if delta <= 0.0 {
        return Err(error(&o.at("delta"), format!("must be > 0, found {delta}")));
    }
    let baseline = match (name, o.get("baseline")) {
        ("snis", _) => Baseline::None,
        ("grpo", _) => Baseline::Grpo { delta },
        (_, None) => Baseline::Mean,
        (_, Some(b)) => {
            let at = o.at("baseline");
            match named(&at, b, keys::BASELINES)?.name.as_str() {
                "none" => Baseline::None,
                "mean" => Baseline::Mean,
                "leave_one_out" => Baseline::LeaveOneOut,
                _ => Baseline::GRPO,
            }
        }
    };
    let clip = match (name, clip) {
        ("reinforce", _) | ("snis" | "control_variate", None) => None,
        (_, clip) => Some(clip.unwrap_or(DEFAULT_CLIP)),
    };
    let reweight = match name {
        "snis" => {
            let t = o.float("temperature")?.unwrap_or(DEFAULT_TEMPERATURE);
            if t <= 0.0 {
                return Err(error(
                    &o.at("temperature"),
                    format!("must be > 0, found {t}"),
                ));
            }
            Reweight::Snis { temperature: t }
        }
        "control_variate" => Reweight::ControlVariate,
        _ => Reweight::None,
    };
    Ok(Component {
        name: name.to_string(),
        weight,
        baseline,
        group: o.count("group")?,
        clip,
        reweight,
    })
}

/// `Adam(lr, weight_decay, beta1, beta2, eps)` (or `AdamW(..)`): the fields given, over `base`.
pub fn optimizer(value: &Value, mut base: AdamW) -> Result<AdamW> {
    let key = "optimizer";
    let call = named(key, value, keys::OPTIMIZERS)?;
    let o = Options::new(key, call, &["lr", "weight_decay", "beta1", "beta2", "eps"])?;
    let set = |field: &str, slot: &mut f64| -> Result<()> {
        if let Some(v) = o.float(field)? {
            *slot = v;
        }
        Ok(())
    };
    set("lr", &mut base.lr)?;
    set("weight_decay", &mut base.weight_decay)?;
    set("beta1", &mut base.beta1)?;
    set("beta2", &mut base.beta2)?;
    set("eps", &mut base.eps)?;
    base.check()
        .map_err(|e| error(key, e.to_string()))
        .map(|()| base)
}

/// `InvSqrt(scale = 100)`: `LrSchedule::InvSqrt` has no default scale.
const INV_SQRT_SCALE: f64 = 100.0;

/// `Constant`, `Warmup(warmup)`, `WarmupCosine(warmup = 0, total, min_ratio = 0.0)`, `Linear` (to 0
/// at `iterations`) or `InvSqrt(scale = 100)`.
pub fn lr_schedule(value: &Value, iterations: u64) -> Result<LrSchedule> {
    let key = "lr_schedule";
    let call = named(key, value, keys::LR_SCHEDULES)?;
    let schedule = match call.name.as_str() {
        "Constant" => Options::new(key, call, &[]).map(|_| LrSchedule::Constant)?,
        "Linear" => {
            Options::new(key, call, &[]).map(|_| LrSchedule::Linear { total: iterations })?
        }
        "InvSqrt" => {
            let o = Options::new(key, call, &["scale"])?;
            LrSchedule::InvSqrt {
                scale: o.float("scale")?.unwrap_or(INV_SQRT_SCALE),
            }
        }
        "Warmup" => {
            let o = Options::new(key, call, &["warmup"])?;
            let w = o.required("warmup", "`Warmup(warmup = 100)`")?;
            LrSchedule::Warmup {
                warmup: integer(&o.at("warmup"), w, 0)?,
            }
        }
        _ => {
            let o = Options::new(key, call, &["warmup", "total", "min_ratio"])?;
            let total = o.required("total", "`WarmupCosine(warmup = 100, total = 1000)`")?;
            LrSchedule::WarmupCosine {
                warmup: o.int("warmup", 0)?.unwrap_or(0),
                total: integer(&o.at("total"), total, 1)?,
                min_ratio: o.float("min_ratio")?.unwrap_or(0.0),
            }
        }
    };
    schedule
        .check()
        .map_err(|e| error(key, e.to_string()))
        .map(|()| schedule)
}

/// `Sequential(chunk = 4, ..)`, `Sequential(.., cap = 16)`.
const SEQUENTIAL_CHUNK: usize = 4;
const SEQUENTIAL_CAP: usize = 16;

/// `Uniform`, `Adaptive(budget, chunk, cap, smoothing)` over `Adaptive::new(budget)`,
/// `Neyman(budget, floor, smoothing)` over `Neyman::new(budget)`, or `Sequential(chunk = 4, cap = 16)`.
pub fn allocation(value: &Value) -> Result<Allocation> {
    let key = "allocation";
    let call = named(key, value, keys::ALLOCATIONS)?;
    Ok(match call.name.as_str() {
        "Uniform" => Options::new(key, call, &[]).map(|_| Allocation::Uniform)?,
        "Adaptive" => {
            let o = Options::new(key, call, &["budget", "chunk", "cap", "smoothing"])?;
            let budget = o.required("budget", "`Adaptive(budget = 256)`")?;
            let mut a = Adaptive::new(integer(&o.at("budget"), budget, 1)? as usize);
            if let Some(c) = o.count("chunk")? {
                a.chunk = c;
            }
            if let Some(c) = o.count("cap")? {
                a.cap = c;
            }
            if let Some(s) = o.float("smoothing")? {
                a.smoothing = s;
            }
            Allocation::Adaptive(a)
        }
        "Neyman" => {
            let o = Options::new(key, call, &["budget", "floor", "smoothing"])?;
            let budget = o.required("budget", "`Neyman(budget = 256)`")?;
            let mut n = Neyman::new(integer(&o.at("budget"), budget, 1)? as usize);
            if let Some(f) = o.count("floor")? {
                n.floor = f;
            }
            if let Some(s) = o.float("smoothing")? {
                n.smoothing = s;
            }
            Allocation::Neyman(n)
        }
        _ => {
            let o = Options::new(key, call, &["chunk", "cap"])?;
            Allocation::Sequential(Sequential::new(
                o.count("chunk")?.unwrap_or(SEQUENTIAL_CHUNK),
                o.count("cap")?.unwrap_or(SEQUENTIAL_CAP),
            ))
        }
    })
}
