//! `schedule = "LogLinear(eps = 1e-3)"`: a schedule type with fields set by name over its `Default`,
//! as `policy!` writes `LogLinear { eps: 1e-3, ..LogLinear::default() }`.

use serde::{de::DeserializeOwned, Serialize};

use sepo_core::schedule::{Geometric, LogLinear, NoiseSchedule};
use sepo_core::Result;

use super::keys;
use super::suggest;
use super::syntax::{Call, Value};
use super::values::error;

/// `S::default()` with the fields of `call` set (through serde: the default is written as a JSON
/// object, the fields replaced, the object read back). `call` must name `S` (the last segment of its
/// type name); a field `S` does not have gets "did you mean".
pub fn by_fields<S>(call: &Call) -> Result<S>
where
    S: NoiseSchedule + Default + Serialize + DeserializeOwned,
{
    let key = "schedule";
    let type_name = std::any::type_name::<S>().rsplit("::").next().unwrap_or("");
    if call.name != type_name {
        return Err(error(
            key,
            format!(
                "the file names `{}` but the run is built with `{type_name}`",
                call.name
            ),
        ));
    }
    let mut object = match serde_json::to_value(S::default()) {
        Ok(serde_json::Value::Object(o)) => o,
        _ => {
            return Err(error(
                key,
                format!("`{type_name}` does not serialise as a struct of fields"),
            ))
        }
    };
    let fields: Vec<String> = object.keys().cloned().collect();
    let names: Vec<&str> = fields.iter().map(String::as_str).collect();
    for (field, value) in &call.options {
        let at = format!("{key}.{field}");
        if !object.contains_key(field) {
            return Err(error(
                &at,
                format!(
                    "`{type_name}` has no such field{}",
                    suggest::hint_or_list(field, &names)
                ),
            ));
        }
        let json = match value {
            Value::Number(v, true) if v.abs() < 9e15 => serde_json::Value::from(*v as i64),
            Value::Number(v, _) => serde_json::Value::from(*v),
            other => {
                return Err(error(
                    &at,
                    format!("expected a number, found {}", other.describe()),
                ))
            }
        };
        object.insert(field.clone(), json);
    }
    let schedule: S = serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| error(key, e.to_string()))?;
    schedule.check()?;
    Ok(schedule)
}

/// One of the built-in schedules, chosen at run time (what the `sepo` command line runs with):
/// every method forwards to the schedule it holds, so a run with `AnySchedule::LogLinear(s)` computes
/// exactly what one with `s` does.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AnySchedule {
    /// [`LogLinear`].
    LogLinear(LogLinear),
    /// [`Geometric`].
    Geometric(Geometric),
}

impl AnySchedule {
    /// The schedule `call` names, fields set over its default.
    pub fn from_call(call: &Call) -> Result<Self> {
        match call.name.as_str() {
            "LogLinear" => by_fields(call).map(AnySchedule::LogLinear),
            "Geometric" => by_fields(call).map(AnySchedule::Geometric),
            other => Err(error(
                "schedule",
                format!(
                    "`{other}` is not a built-in schedule{} (a `noise_schedule!` type is read by \
                     `RunConfig::schedule::<YourType>()`)",
                    suggest::hint_or_list(other, keys::SCHEDULES)
                ),
            )),
        }
    }
}

impl NoiseSchedule for AnySchedule {
    fn total(&self, t: f64) -> f64 {
        match self {
            AnySchedule::LogLinear(s) => s.total(t),
            AnySchedule::Geometric(s) => s.total(t),
        }
    }
    fn rate(&self, t: f64) -> f64 {
        match self {
            AnySchedule::LogLinear(s) => s.rate(t),
            AnySchedule::Geometric(s) => s.rate(t),
        }
    }
    fn inverse(&self, sigma_bar: f64) -> f64 {
        match self {
            AnySchedule::LogLinear(s) => s.inverse(sigma_bar),
            AnySchedule::Geometric(s) => s.inverse(sigma_bar),
        }
    }
    fn check(&self) -> Result<()> {
        match self {
            AnySchedule::LogLinear(s) => s.check(),
            AnySchedule::Geometric(s) => s.check(),
        }
    }
}
