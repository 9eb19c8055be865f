//! Rewards by name: what a configuration file's `reward` and `eval_reward` keys refer to. A file cannot
//! hold Rust code, so the program that reads it fills a [`RewardRegistry`] with its reward values
//! (`register("tata", MotifCount::new(vec![3, 0, 3, 0]))`) and the file names them, alone or in a
//! weighted sum written as in `policy!`: `reward = "0.5 * gc_content + tata"`.
//!
//! The built-in rewards (`sepo::reward`'s) are there from the start, with their fields as options:
//!
//! | name | reward | options |
//! |---|---|---|
//! | `gc_content` | [`GcContent`] | `tokens = [1, 2]` |
//! | `motif_count` | [`MotifCount`] | `motif = [..]` (required), `per = 1.0` |
//! | `motif_presence` | [`MotifPresence`] | `motif = [..]` (required) |

use std::collections::BTreeMap;
use std::sync::Arc;

use sepo_core::reward::{BoxedReward, GcContent, MotifCount, MotifPresence, Reward, Scaled, Sum};
use sepo_core::Result;

use super::suggest;
use super::syntax::{Call, Value};
use super::values::{error, integer, Options};

type Factory = Arc<dyn Fn(&Options) -> Result<Box<dyn Reward>> + Send + Sync>;

struct Entry {
    options: Vec<&'static str>,
    factory: Factory,
}

/// Rewards a configuration file may name; [`RewardRegistry::default`] holds the built-ins.
#[derive(Clone)]
pub struct RewardRegistry {
    entries: BTreeMap<String, Arc<Entry>>,
}

impl Default for RewardRegistry {
    /// The built-in rewards: `gc_content`, `motif_count`, `motif_presence`.
    fn default() -> Self {
        let mut r = Self::empty();
        r.register_with("gc_content", &["tokens"], |o| {
            let mut g = GcContent::default();
            if let Some(t) = o.get("tokens") {
                g.tokens = tokens(&o.at("tokens"), t)?;
            }
            Ok(Box::new(g))
        });
        r.register_with("motif_count", &["motif", "per"], |o| {
            let motif = o.required("motif", "`motif_count(motif = [3, 0, 3, 0])`")?;
            let mut m = MotifCount::new(tokens(&o.at("motif"), motif)?);
            if let Some(per) = o.float("per")? {
                if per <= 0.0 {
                    return Err(error(&o.at("per"), format!("must be > 0, found {per}")));
                }
                m.per = per;
            }
            Ok(Box::new(m))
        });
        r.register_with("motif_presence", &["motif"], |o| {
            let motif = o.required("motif", "`motif_presence(motif = [3, 0, 3, 0])`")?;
            Ok(Box::new(MotifPresence {
                motif: tokens(&o.at("motif"), motif)?,
            }))
        });
        r
    }
}

fn tokens(key: &str, value: &Value) -> Result<Vec<usize>> {
    match value {
        Value::List(items) if !items.is_empty() => items
            .iter()
            .map(|t| integer(key, t, 0).map(|t| t as usize))
            .collect(),
        other => Err(error(
            key,
            format!(
                "expected a non-empty list of token ids, found {}",
                other.describe()
            ),
        )),
    }
}

impl RewardRegistry {
    /// A registry without the built-ins.
    pub fn empty() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Registers `reward` under `name` (replacing an earlier one of that name); the file names it
    /// without options. Each use builds a clone.
    pub fn register<R: Reward + Clone + 'static>(&mut self, name: &str, reward: R) -> &mut Self {
        self.register_with(name, &[], move |_| Ok(Box::new(reward.clone())))
    }

    /// Registers a reward that takes options: `factory` reads them (only those in `options` reach
    /// it; others are refused with "did you mean") and builds the reward.
    pub fn register_with<F>(
        &mut self,
        name: &str,
        options: &[&'static str],
        factory: F,
    ) -> &mut Self
    where
        F: Fn(&Options) -> Result<Box<dyn Reward>> + Send + Sync + 'static,
    {
        let entry = Entry {
            options: options.to_vec(),
            factory: Arc::new(factory),
        };
        self.entries.insert(name.to_string(), Arc::new(entry));
        self
    }

    /// The names registered, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.entries.keys().map(String::as_str).collect()
    }

    /// The reward `value` describes, for `key`: one name (its reward as registered, unwrapped), or a
    /// sum `w₁ · a + b + ..` (as `policy!`'s `0.5 * A + B`: [`Scaled`] terms folded left into [`Sum`]s).
    pub fn build(&self, key: &str, value: &Value) -> Result<BoxedReward> {
        let mut total: Option<Box<dyn Reward>> = None;
        for (weight, term) in value.terms() {
            let reward = self.one(key, term)?;
            let reward: Box<dyn Reward> = match weight {
                Some(w) => Box::new(Scaled {
                    weight: w,
                    inner: BoxedReward(reward),
                }),
                None => reward,
            };
            total = Some(match total {
                None => reward,
                Some(a) => Box::new(Sum {
                    a: BoxedReward(a),
                    b: BoxedReward(reward),
                }),
            });
        }
        Ok(BoxedReward(
            total.ok_or_else(|| error(key, "no reward given"))?,
        ))
    }

    fn one(&self, key: &str, value: &Value) -> Result<Box<dyn Reward>> {
        let call: &Call = match value {
            Value::Call(c) => c,
            other => {
                return Err(error(
                    key,
                    format!("expected a reward name, found {}", other.describe()),
                ))
            }
        };
        let names = self.names();
        let entry = self.entries.get(&call.name).ok_or_else(|| {
            error(
                key,
                format!(
                    "no reward named `{}`{} (register it with `RewardRegistry::register`)",
                    call.name,
                    suggest::hint_or_list(&call.name, &names)
                ),
            )
        })?;
        let options = Options::new(&format!("{key}.{}", call.name), call, &entry.options)?;
        (entry.factory)(&options)
    }
}
