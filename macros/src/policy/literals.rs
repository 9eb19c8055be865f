//! Number literals inside a `policy!`'s values, checked at compile time against the ranges the core
//! types check at run time (`AdamW::check`, `LogLinear::new`, `Geometric::new`,
//! `SamplerConfig::check`, `ConcreteScore::check`, `FinetuneConfig::check`), each error at the literal.
//!
//! The values were read (and their shape checked) in `parse.rs`; this pass only looks at literals, and
//! only at integers where a count is expected, so a literal of the wrong kind is reported once, there.
//! Expressions that are not literals are checked at run time by the same rules.

use syn::Expr;

use super::ir::{EstimatorValue, Policy};
use super::parse::Item;
use crate::call;
use crate::ctxt::Ctxt;
use crate::estimator::parse::Baseline;

/// The range a literal must lie in, with the wording of the core's error.
#[derive(Clone, Copy)]
enum Range {
    /// An integer `≥ 1`.
    Count,
    /// Finite and `> 0`.
    Positive,
    /// Finite and `≥ 0`.
    NonNegative,
    /// In `(0, 1)`.
    Open,
    /// In `[0, 1)`.
    HalfOpen,
    /// In `[0, 1]`.
    Closed,
}

impl Range {
    fn holds(self, v: f64) -> bool {
        match self {
            Range::Count => v >= 1.0,
            Range::Positive => v > 0.0 && v.is_finite(),
            Range::NonNegative => v >= 0.0 && v.is_finite(),
            Range::Open => v > 0.0 && v < 1.0,
            Range::HalfOpen => (0.0..1.0).contains(&v),
            Range::Closed => (0.0..=1.0).contains(&v),
        }
    }

    fn wording(self) -> &'static str {
        match self {
            Range::Count => "must be ≥ 1",
            Range::Positive => "must be finite and > 0",
            Range::NonNegative => "must be finite and ≥ 0",
            Range::Open => "must be in (0, 1)",
            Range::HalfOpen => "must be in [0, 1)",
            Range::Closed => "must be in [0, 1]",
        }
    }
}

/// One option's rule: its name, range, and why (appended to the message).
type Rule = (&'static str, Range, &'static str);

const ADAM: &[Rule] = &[
    ("lr", Range::NonNegative, "the peak learning rate"),
    (
        "weight_decay",
        Range::NonNegative,
        "the decoupled weight decay",
    ),
    ("beta1", Range::HalfOpen, "the first moment's decay rate"),
    ("beta2", Range::HalfOpen, "the second moment's decay rate"),
    ("eps", Range::Positive, "added to the update's denominator"),
];
const LOG_LINEAR: &[Rule] = &[(
    "eps",
    Range::Open,
    "σ̄(t) = −ln(1 − (1 − ε)t) is finite and ≥ 0 on [0, 1] only then",
)];
const GEOMETRIC: &[Rule] = &[
    ("sigma_min", Range::Positive, "σ̄(t) = σ_min^(1−t)·σ_max^t"),
    ("sigma_max", Range::Positive, "σ̄(t) = σ_min^(1−t)·σ_max^t"),
];
const GRID_SAMPLER: &[Rule] = &[
    ("steps", Range::Count, "the sampler's time steps"),
    ("eps", Range::Open, "the sampler stops at t = eps"),
    ("max_batch", Range::Count, "sequences per forward"),
];
const FIRST_HITTING: &[Rule] = &[("max_batch", Range::Count, "sequences per forward")];
const CONCRETE_SCORE: &[Rule] = &[("t0", Range::Closed, "a time of the forward process")];
const SNIS: &[Rule] = &[("draws", Range::Count, "SNIS needs at least one draw")];
const MASKED_SUBSET: &[Rule] = &[("positions", Range::Count, "masked positions per sequence")];

/// Records every literal of `item` outside its range.
pub fn check(cx: &Ctxt, item: &Item, policy: &Policy) {
    for (key, value) in &item.entries {
        match key.to_string().as_str() {
            "optimizer" => options(cx, value, &[("Adam", ADAM), ("AdamW", ADAM)]),
            "schedule" => schedule(cx, value),
            "sampler" => {
                sampler(cx, value);
                if let Some(init) = option_of(value, "Flow", "init") {
                    sampler(cx, init);
                }
            }
            "log_prob" => log_prob(cx, value),
            "kl" => kl(cx, value),
            _ => {}
        }
    }
    leave_one_out_groups(cx, policy);
}

/// `Tweedie(..)`, `Euler(..)`, `FirstHitting(..)`.
fn sampler(cx: &Ctxt, value: &Expr) {
    options(
        cx,
        value,
        &[
            ("Tweedie", GRID_SAMPLER),
            ("Euler", GRID_SAMPLER),
            ("FirstHitting", FIRST_HITTING),
        ],
    );
}

/// `LogLinear(eps = ..)`, `Geometric(sigma_min = .., sigma_max = ..)` (with `σ_max > σ_min`, either
/// side defaulting to `Geometric::default()`'s 1e-4 and 20). Other schedule types have their own rules.
fn schedule(cx: &Ctxt, value: &Expr) {
    options(
        cx,
        value,
        &[("LogLinear", LOG_LINEAR), ("Geometric", GEOMETRIC)],
    );
    let literal = |key| option_of(value, "Geometric", key).map(|e| (call::number(e), e));
    let (min, max) = (literal("sigma_min"), literal("sigma_max"));
    if min.is_none() && max.is_none() {
        return;
    }
    let min_value = min.as_ref().map_or(Some(1e-4), |(v, _)| v.map(|(v, _)| v));
    let max_value = max.as_ref().map_or(Some(20.0), |(v, _)| v.map(|(v, _)| v));
    if let (Some(lo), Some(hi)) = (min_value, max_value) {
        let both_positive = Range::Positive.holds(lo) && Range::Positive.holds(hi);
        if both_positive && hi <= lo {
            let at = max.or(min).map(|(_, e)| e).expect("one is given");
            cx.error_spanned_by(
                at,
                format!(
                    "`sigma_max` of `Geometric` must be > `sigma_min`, found {hi} ≤ {lo}: σ̄ must \
                     increase with t"
                ),
            );
        }
    }
}

/// `ConcreteScore(t0 = .., weights = Snis(draws = ..), clean = MaskedSubset(positions = ..))` and
/// `Ift(h = Neighbour(weights = Snis(..)), clean = MaskedSubset(..))` (`Ift`'s `t0` is checked where
/// it is read).
fn log_prob(cx: &Ctxt, value: &Expr) {
    options(cx, value, &[("ConcreteScore", CONCRETE_SCORE)]);
    let weights = option_of(value, "ConcreteScore", "weights").or_else(|| {
        option_of(value, "Ift", "h").and_then(|h| option_of(h, "Neighbour", "weights"))
    });
    if let Some(w) = weights {
        options(cx, w, &[("Snis", SNIS)]);
    }
    let clean =
        option_of(value, "ConcreteScore", "clean").or_else(|| option_of(value, "Ift", "clean"));
    if let Some(c) = clean {
        options(cx, c, &[("MaskedSubset", MASKED_SUBSET)]);
    }
}

/// `kl` must be finite (a negative literal is reported where it is read).
fn kl(cx: &Ctxt, value: &Expr) {
    if let Some((v, _)) = call::number(value) {
        if v == f64::INFINITY {
            cx.error_spanned_by(
                value,
                "`kl` must be finite and ≥ 0, found inf: the literal overflows f64",
            );
        }
    }
}

/// Leave-one-out needs groups of at least 2: a component with `baseline = leave_one_out` and no
/// `group` of its own takes `group_size` (literal, or `batch / groups` from literals).
fn leave_one_out_groups(cx: &Ctxt, policy: &Policy) {
    let Some(EstimatorValue::Inline(mixture)) = &policy.estimator else {
        return;
    };
    if policy.single_loop() {
        return; // the single loop has no estimator: reported in `validate.rs`
    }
    let uses_the_group_size = mixture
        .terms
        .iter()
        .any(|t| t.group.is_none() && matches!(t.baseline, Some((Baseline::LeaveOneOut, _))));
    if !uses_the_group_size {
        return;
    }
    let literal = |key: &str| {
        policy
            .plain(key)
            .and_then(|e| call::number(e).filter(|(_, int)| *int).map(|(v, _)| (v, e)))
    };
    let size = match (literal("group_size"), literal("batch"), literal("groups")) {
        (Some((size, at)), _, _) => Some((size, at)),
        (None, Some((batch, at)), Some((groups, _))) if groups > 0.0 => Some((batch / groups, at)),
        _ => None,
    };
    if let Some((size, at)) = size {
        if size == 1.0 {
            cx.error_spanned_by(
                at,
                "leave-one-out needs groups of at least 2: this makes groups of 1 \
                 (the baseline of a lone draw is the mean of no other draw)",
            );
        }
    }
}

/// Checks the literal options of `value` when it is `Name(..)` with `Name` among `rules`' names.
fn options(cx: &Ctxt, value: &Expr, rules: &[(&str, &[Rule])]) {
    let Some((name, args)) = name_and_args(value) else {
        return;
    };
    let Some((_, rules)) = rules.iter().find(|(n, _)| *n == name) else {
        return;
    };
    for (key, v) in args {
        let Some((key, range, why)) = rules.iter().find(|(k, _, _)| *k == key) else {
            continue;
        };
        let Some((number, integer)) = call::number(v) else {
            continue;
        };
        if matches!(range, Range::Count) && !integer {
            continue; // reported where it is read: a count expects an integer
        }
        if !range.holds(number) {
            let found = if number.is_infinite() {
                format!("{number} (the literal overflows f64)")
            } else {
                number.to_string()
            };
            cx.error_spanned_by(
                v,
                format!(
                    "`{key}` of `{name}` {}, found {found}: {why}",
                    range.wording()
                ),
            );
        }
    }
}

/// The value of option `key` of `value` when it is `name(.., key = v, ..)`.
fn option_of<'a>(value: &'a Expr, name: &str, key: &str) -> Option<&'a Expr> {
    let (found, args) = name_and_args(value)?;
    (found == name)
        .then(|| args.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
        .flatten()
}

/// `Name` or `Name(k = v, ..)` read without reporting anything (`parse.rs` reports mistakes):
/// the name and the `k = v` pairs.
fn name_and_args(value: &Expr) -> Option<(String, Vec<(String, &Expr)>)> {
    let (func, args) = match value {
        Expr::Call(c) => (&*c.func, Some(&c.args)),
        Expr::Path(_) => (value, None),
        _ => return None,
    };
    let Expr::Path(path) = func else { return None };
    let name = path.path.get_ident()?.to_string();
    let pairs = args
        .into_iter()
        .flatten()
        .filter_map(|arg| match arg {
            Expr::Assign(a) => match &*a.left {
                Expr::Path(k) => k.path.get_ident().map(|k| (k.to_string(), &*a.right)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some((name, pairs))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::super::policy;

    /// The expansion of `policy!` on `tokens`, which must report `messages` and nothing may panic.
    fn reports(tokens: proc_macro2::TokenStream, messages: &[&str]) {
        let got = policy(tokens).to_string();
        for message in messages {
            assert!(got.contains(message), "missing {message:?} in {got}");
        }
    }

    #[test]
    fn out_of_range_literals_are_reported_at_compile_time() {
        reports(
            quote! {
                A {
                    reward: GcContent::default(),
                    optimizer: Adam(lr = -1e-3, beta1 = 1.0, eps = 0.0, weight_decay = 1e400),
                    schedule: LogLinear(eps = 2.0),
                    sampler: Tweedie(steps = 0, eps = 1.5, max_batch = 0),
                    log_prob: ConcreteScore(t0 = 2.0, weights = Snis(draws = 0), clean = MaskedSubset(positions = 0)),
                    kl: 1e400,
                }
                B {
                    reward: GcContent::default(),
                    schedule: Geometric(sigma_min = 2.0, sigma_max = 1.0),
                    sampler: Euler(eps = 1.5),
                }
            },
            &[
                "`lr` of `Adam` must be finite and ≥ 0, found -0.001",
                "`beta1` of `Adam` must be in [0, 1), found 1",
                "`eps` of `Adam` must be finite and > 0, found 0",
                "`weight_decay` of `Adam` must be finite and ≥ 0, found inf (the literal overflows f64)",
                "`eps` of `LogLinear` must be in (0, 1), found 2",
                "`steps` of `Tweedie` must be ≥ 1, found 0",
                "`eps` of `Tweedie` must be in (0, 1), found 1.5",
                "`max_batch` of `Tweedie` must be ≥ 1, found 0",
                "`t0` of `ConcreteScore` must be in [0, 1], found 2",
                "`draws` of `Snis` must be ≥ 1, found 0",
                "`positions` of `MaskedSubset` must be ≥ 1, found 0",
                "`kl` must be finite and ≥ 0, found inf",
                "`sigma_max` of `Geometric` must be > `sigma_min`, found 1 ≤ 2",
                "`eps` of `Euler` must be in (0, 1), found 1.5",
            ],
        );
    }

    #[test]
    fn flow_init_and_ift_options_are_checked() {
        reports(
            quote! {
                A {
                    mode: SingleLoop,
                    reward: GcContent::default(),
                    sampler: Flow(init = Tweedie(steps = 0)),
                    log_prob: Ift(h = Neighbour(weights = Snis(draws = 0)), clean = MaskedSubset(positions = 0)),
                }
            },
            &[
                "`steps` of `Tweedie` must be ≥ 1, found 0",
                "`draws` of `Snis` must be ≥ 1, found 0",
                "`positions` of `MaskedSubset` must be ≥ 1, found 0",
            ],
        );
    }

    #[test]
    fn leave_one_out_needs_groups_of_two() {
        let message = "leave-one-out needs groups of at least 2";
        reports(
            quote!(A {
                reward: R,
                estimator: reinforce(baseline = leave_one_out),
                group_size: 1
            }),
            &[message],
        );
        reports(
            quote!(A {
                reward: R,
                estimator: reinforce(baseline = leave_one_out),
                batch: 4,
                groups: 4
            }),
            &[message],
        );
        reports(
            quote!(A {
                reward: R,
                estimator: ppo(baseline = leave_one_out, group = 1)
            }),
            &[message],
        );
        // Groups of 2 and a component with its own group are fine.
        let ok = policy(quote! {
            A {
                reward: R,
                estimator: 0.5 * reinforce(baseline = leave_one_out) + 0.5 * ppo(baseline = mean, group = 1),
                group_size: 2,
            }
        })
        .to_string();
        assert!(!ok.contains("compile_error"), "{ok}");
    }

    #[test]
    fn literals_in_range_and_expressions_pass() {
        let ok = policy(quote! {
            A {
                reward: R,
                optimizer: Adam(lr = 0.0, beta1 = 0.0, eps = 1e-8, weight_decay = rate()),
                schedule: Geometric(sigma_max = 30),
                sampler: Euler(steps = 1, eps = 0.5),
                log_prob: ConcreteScore(t0 = 1.0, weights = Snis(draws = 1)),
                kl: 0.0,
            }
        })
        .to_string();
        assert!(!ok.contains("compile_error"), "{ok}");
    }
}
