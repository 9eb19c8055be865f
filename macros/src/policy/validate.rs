//! Rules across the keys of a `policy!`, one small fn per rule, each error at the user's tokens.

use super::parse::{EstimatorValue, Item, Policy};
use crate::call;
use crate::ctxt::Ctxt;

/// Records every rule the policy breaks.
pub fn check(cx: &Ctxt, item: &Item, policy: &Policy) {
    has_reward(cx, item, policy);
    batch_splits_into_groups(cx, policy);
    first_hitting_needs_absorbing(cx, policy);
    allocation_needs_prompts(cx, policy);
    prompts_set_the_groups(cx, policy);
    if let Some(EstimatorValue::Inline(mixture)) = &policy.estimator {
        crate::estimator::validate::check(cx, mixture);
    }
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

/// The first-hitting sampler unmasks one position per event: it needs the absorbing graph.
fn first_hitting_needs_absorbing(cx: &Ctxt, policy: &Policy) {
    if let (Some((_, Some(name))), Some(graph)) = (&policy.sampler, &policy.graph) {
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
    if let (Some((_, name)), None) = (&policy.allocation, &policy.prompts) {
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
