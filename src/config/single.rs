//! `mode = "SingleLoop"`: the gradient-flow single loop's values, `sampler = "Flow(rates, steps, init,
//! max_batch)"` and `log_prob = "Ift(h, clean, t0, ratio)"`, read as `policy!`'s single-loop
//! expansion reads them (over `SingleLoopConfig::default()`; `t0` read as `σ̄(t0)` under the schedule,
//! defaulting to `ConcreteScore::default()`'s).

use sepo_core::flow::LocallyBalanced;
use sepo_core::policy::{ConcreteScore, NeighbourWeights, StateGradient};
use sepo_core::schedule::NoiseSchedule;
use sepo_core::train::{RatioMode, SamplerKind, SingleLoopConfig};
use sepo_core::Result;

use super::syntax::Value;
use super::values::{self, error, named, Options};

/// The single loop's particles when `batch` is not given (`InitialParticles` has no default).
pub const PARTICLES: usize = 32;
/// `PathSubset(positions = 4)`.
const SUBSET_POSITIONS: usize = 4;

/// Rates the chain can be uniformised with; `Sqrt` and `Corrector` are named to be refused.
const RATES: &[&str] = &["HeatBath", "Barker", "Metropolis", "Sqrt", "Corrector"];
/// `Ift(h = ..)`.
const STATE_GRADIENTS: &[&str] = &["Conditional", "Energy", "Neighbour"];
/// `Ift(ratio = ..)`.
const RATIOS: &[&str] = &["Tracked", "Exact", "Path", "PathSubset"];

/// The keys that mean nothing in a single loop, and why: `policy!`'s own list (`sepo_dsl`), with its
/// code spans in a file's syntax ([`file_syntax`]).
pub fn two_loop_only(key: &str) -> Option<String> {
    sepo_dsl::keys::TWO_LOOP_ONLY
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, why)| file_syntax(why))
}

/// A reason written for `policy!` in a run file's syntax: every code span `` `key: Value` `` naming a key
/// becomes `` `key = "Value"` `` (the file writes values as strings); other text is kept.
fn file_syntax(reason: &str) -> String {
    reason
        .split('`')
        .enumerate()
        .map(|(i, part)| match part.split_once(": ") {
            Some((key, value)) if i % 2 == 1 && super::KEYS.contains(&key) => {
                format!("{key} = \"{value}\"")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// The single-loop values of a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flow {
    rates: Option<LocallyBalanced>,
    steps: Option<usize>,
    /// The sampler of the initial particles (`FinetuneConfig::new`'s when not given).
    pub init: Option<SamplerKind>,
    max_batch: Option<usize>,
    h: Option<StateGradient>,
    clean: Option<sepo_core::policy::CleanScores>,
    t0: Option<f64>,
    ratio: Option<RatioMode>,
}

/// Whether `value` is a call named `name` (`Flow(..)`, `Ift(..)`).
pub fn is_call(value: &Value, name: &str) -> bool {
    matches!(value, Value::Call(c) if c.name == name)
}

impl Flow {
    /// Reads `sampler = "Flow(..)"` and `log_prob = "Ift(..)"` (either may be absent).
    pub fn read(sampler: Option<&Value>, log_prob: Option<&Value>) -> Result<Self> {
        let mut flow = Flow::default();
        if let Some(v) = sampler {
            let key = "sampler";
            let call = named(key, v, &["Flow"])?;
            let o = Options::new(key, call, &["rates", "steps", "init", "max_batch"])?;
            if let Some(r) = o.get("rates") {
                let at = o.at("rates");
                flow.rates = Some(match named(&at, r, RATES)?.name.as_str() {
                    "HeatBath" => LocallyBalanced::HeatBath,
                    "Barker" => LocallyBalanced::Barker,
                    "Metropolis" => LocallyBalanced::Metropolis,
                    other => {
                        return Err(error(
                            &at,
                            format!(
                                "`{other}` rates are unbounded: the chain cannot be uniformised"
                            ),
                        ))
                    }
                });
            }
            flow.steps = o.count("steps")?;
            flow.max_batch = o.count("max_batch")?;
            if let Some(init) = o.get("init") {
                let default = sepo_core::train::FinetuneConfig::new(1).sampler;
                flow.init = Some(values::sampler(&o.at("init"), init, default)?);
            }
        }
        if let Some(v) = log_prob {
            let key = "log_prob";
            let call = named(key, v, &["Ift"])?;
            let o = Options::new(key, call, &["h", "clean", "t0", "ratio"])?;
            if let Some(h) = o.get("h") {
                let at = o.at("h");
                let c = named(&at, h, STATE_GRADIENTS)?;
                flow.h = Some(match c.name.as_str() {
                    "Conditional" => {
                        Options::new(&at, c, &[]).map(|_| StateGradient::Conditional)?
                    }
                    "Energy" => Options::new(&at, c, &[]).map(|_| StateGradient::Energy)?,
                    _ => {
                        let n = Options::new(&at, c, &["weights"])?;
                        let weights = match n.get("weights") {
                            Some(w) => values::weights(&n.at("weights"), w)?,
                            None => NeighbourWeights::default(),
                        };
                        StateGradient::Neighbour(weights)
                    }
                });
            }
            if let Some(c) = o.get("clean") {
                flow.clean = Some(values::clean(&o.at("clean"), c)?);
            }
            if let Some(t0) = o.float("t0")? {
                if !(0.0..=1.0).contains(&t0) {
                    return Err(error(&o.at("t0"), format!("must be in [0, 1], found {t0}")));
                }
                flow.t0 = Some(t0);
            }
            if let Some(r) = o.get("ratio") {
                let at = o.at("ratio");
                let c = named(&at, r, RATIOS)?;
                flow.ratio = Some(match c.name.as_str() {
                    "Tracked" => Options::new(&at, c, &[]).map(|_| RatioMode::Tracked)?,
                    "Exact" => Options::new(&at, c, &[]).map(|_| RatioMode::Exact)?,
                    "Path" => Options::new(&at, c, &[]).map(|_| RatioMode::Path)?,
                    _ => {
                        let p = Options::new(&at, c, &["positions"])?;
                        RatioMode::PathSubset {
                            positions: p.count("positions")?.unwrap_or(SUBSET_POSITIONS),
                        }
                    }
                });
            }
        }
        Ok(flow)
    }

    /// The flow's fields over `config` (`SingleLoopConfig::default()`), `sigma0 = σ̄(t0)` under
    /// `schedule` always.
    pub fn apply<S: NoiseSchedule>(
        &self,
        config: &mut SingleLoopConfig,
        schedule: &S,
    ) -> Result<()> {
        if let Some(r) = self.rates {
            config.rates = r;
        }
        if let Some(s) = self.steps {
            config.steps_per_update = s;
        }
        if let Some(m) = self.max_batch {
            config.max_batch = m;
        }
        if let Some(h) = self.h {
            config.estimator.state_gradient = h;
        }
        if let Some(c) = self.clean {
            config.estimator.clean = c;
        }
        let t0 = self.t0.unwrap_or(ConcreteScore::default().t0);
        config.estimator.sigma0 = crate::__private::sigma_at(schedule, t0)?;
        if let Some(r) = self.ratio {
            config.ratio = r;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_values_in_file_syntax() {
        assert_eq!(
            two_loop_only("estimator").unwrap(),
            "its gradient is the IFT covariance, set by `log_prob = \"Ift(..)\"`"
        );
        assert_eq!(file_syntax("set β with `kl`"), "set β with `kl`");
        assert_eq!(two_loop_only("seed"), None);
    }
}
