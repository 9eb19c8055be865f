//! Rules across the keys of a `policy!`, one small fn per rule, each error at the user's tokens.

use super::ir::{EstimatorValue, Policy};
use super::parse::Item;
use crate::call;
use crate::ctxt::Ctxt;
use crate::keys;

/// Records every rule the policy breaks.
pub fn check(cx: &Ctxt, item: &Item, policy: &Policy) {
    has_reward(cx, item, policy);
    // A misspelt `mode` is reported where it was read; rules that depend on the mode stay silent.
    let mode_known = policy.mode.is_some() || !item.entries.iter().any(|(k, _)| k == "mode");
    if mode_known {
        keys_fit_the_mode(cx, item, policy);
        values_fit_the_mode(cx, item, policy);
    }
    if policy.single_loop() {
        particles_are_at_least_two(cx, policy);
    } else if mode_known {
        batch_splits_into_groups(cx, policy);
        allocation_needs_prompts(cx, policy);
        prompts_set_the_groups(cx, policy);
    }
    first_hitting_needs_absorbing(cx, policy);
    if let Some(EstimatorValue::Inline(mixture)) = &policy.estimator {
        crate::estimator::validate::check(cx, mixture);
    }
    super::literals::check(cx, item, policy);
}

/// Without a reward there is nothing to fine-tune on; every other key has a default.
fn has_reward(cx: &Ctxt, item: &Item, policy: &Policy) {
    if policy.reward.is_none() {
        cx.error_spanned_by(
            &item.name,
            format!(
                "missing key `reward` in `{}`: the reward to fine-tune on, e.g. `reward: GcContent`",
                item.name
            ),
        );
    }
}

/// `batch = groups × group_size`, checked when the numbers are literals (else at run time).
fn batch_splits_into_groups(cx: &Ctxt, policy: &Policy) {
    let literal = |key: &str| {
        policy
            .plain(key)
            .and_then(|e| call::number(e).map(|(v, _)| (v as u64, e)))
    };
    let Some((batch, original)) = literal("batch") else {
        return;
    };
    match (literal("groups"), literal("group_size")) {
        (Some((groups, _)), Some((size, _))) if groups * size != batch => cx.error_spanned_by(
            original,
            format!("`batch` ({batch}) must equal `groups` × `group_size` ({groups} × {size})"),
        ),
        (None, Some((size, _))) if size > 0 && batch % size != 0 => cx.error_spanned_by(
            original,
            format!("`batch` ({batch}) must be a multiple of `group_size` ({size})"),
        ),
        (Some((groups, _)), None) if groups > 0 && batch % groups != 0 => cx.error_spanned_by(
            original,
            format!("`batch` ({batch}) must be a multiple of `groups` ({groups})"),
        ),
        _ => {}
    }
}

/// Two-loop keys mean nothing in a single loop (each error says why).
fn keys_fit_the_mode(cx: &Ctxt, item: &Item, policy: &Policy) {
    for (key, _) in &item.entries {
        let word = key.to_string();
        if policy.single_loop() {
            if let Some((_, reason)) = keys::TWO_LOOP_ONLY.iter().find(|(k, _)| *k == word) {
                cx.error_spanned_by(
                    key,
                    format!("`{word}` means nothing in `mode: SingleLoop` ({reason})"),
                );
            }
        }
    }
}

/// `sampler: Flow(..)` and `log_prob: Ift(..)` are the single loop's; the others the two loops'.
fn values_fit_the_mode(cx: &Ctxt, item: &Item, policy: &Policy) {
    let value = |key: &str| item.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let name = |key: &str| value(key).map(call_name).unwrap_or_default();
    if policy.single_loop() {
        if let (Some(_), Some(v)) = (&policy.sampler, value("sampler")) {
            let name = name("sampler");
            cx.error_spanned_by(
                v,
                format!(
                    "`{name}` is a two-loop sampler: in `mode: SingleLoop` write \
                     `sampler: Flow(init = {name}(..))`: the chain moves the particles, `init` draws \
                     the initial ones"
                ),
            );
        }
        if let (Some(_), Some(v)) = (&policy.log_prob, value("log_prob")) {
            cx.error_spanned_by(
                v,
                format!(
                    "`{}` is a two-loop log-probability: `mode: SingleLoop` uses \
                     `log_prob: Ift(h = Conditional, ..)`",
                    name("log_prob")
                ),
            );
        }
    } else {
        if let (Some(_), Some(v)) = (&policy.flow, value("sampler")) {
            cx.error_spanned_by(
                v,
                "`sampler: Flow(..)` is the single loop's chain: it needs `mode: SingleLoop`",
            );
        }
        if let (Some(_), Some(v)) = (&policy.ift, value("log_prob")) {
            cx.error_spanned_by(
                v,
                "`log_prob: Ift(..)` is the single loop's estimator: it needs `mode: SingleLoop`",
            );
        }
    }
}

/// The name of `Name` or `Name(..)`, as written (empty for other values).
fn call_name(value: &syn::Expr) -> String {
    let func = match value {
        syn::Expr::Call(c) => &*c.func,
        e => e,
    };
    match func {
        syn::Expr::Path(p) => p
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The IFT estimator centres `ρ̂` over the particles: it needs at least two.
fn particles_are_at_least_two(cx: &Ctxt, policy: &Policy) {
    if let Some(batch) = policy.plain("batch") {
        if call::number(batch) == Some((1.0, true)) {
            cx.error_spanned_by(
                batch,
                "`batch` is the number of particles in `mode: SingleLoop`: the IFT estimator \
                 centres over them and needs at least 2",
            );
        }
    }
}

/// The first-hitting sampler unmasks one position per event: it needs the absorbing graph (also as
/// the single loop's `init`).
fn first_hitting_needs_absorbing(cx: &Ctxt, policy: &Policy) {
    let init = policy.flow.as_ref().and_then(|f| f.init.as_ref());
    let first_hitting = policy
        .sampler
        .as_ref()
        .or(init)
        .and_then(|s| s.first_hitting());
    if let (Some(name), Some(graph)) = (first_hitting, &policy.graph) {
        if graph == "Uniform" {
            cx.error_spanned_by(
                name,
                "`FirstHitting` samples absorbing graphs only: use `Tweedie` or `Euler` with `graph: Uniform`",
            );
        }
    }
}

/// An allocation splits a round's draws across prompts: without prompts there is nothing to split.
fn allocation_needs_prompts(cx: &Ctxt, policy: &Policy) {
    if let (Some(allocation), None) = (&policy.allocation, &policy.prompts) {
        let name = &allocation.name;
        if name != "Uniform" {
            cx.error_spanned_by(
                name,
                format!(
                    "`{name}` allocation splits each round's draws across prompts: add `prompts: ..` \
                     (e.g. `prompts: vec![vec![0], vec![1]]`)"
                ),
            );
        }
    }
}

/// With prompts, there is one group per prompt: `groups` (and so `batch`) follow from them.
fn prompts_set_the_groups(cx: &Ctxt, policy: &Policy) {
    if policy.prompts.is_none() {
        return;
    }
    for key in ["groups", "batch"] {
        if let Some(value) = policy.plain(key) {
            cx.error_spanned_by(
                value,
                format!(
                    "`{key}` follows from `prompts` (one group per prompt): leave it out and set \
                     `group_size`, the completions per prompt"
                ),
            );
        }
    }
}
