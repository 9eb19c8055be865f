//! Values both modes read: a sampler of the pretrained model (the two-loop `sampler:`, the single
//! loop's `Flow(init = ..)`), neighbour weights (`ConcreteScore(weights = ..)`,
//! `Ift(h = Neighbour(weights = ..))`) and clean scores (`clean = ..` of both log-probabilities).
//! Each is read into its IR value, mistakes recorded at the user's span.

use syn::Expr;

use super::ir::{Clean, Sampler, SamplerKind, Weights};
use super::read::{float, int, named, optional};
use crate::ctxt::Ctxt;
use crate::keys;

/// `Tweedie(..) | Euler(..) | FirstHitting(..)`. `key` is `sampler` or the single loop's `init`,
/// which names no `Flow`.
pub fn sampler(cx: &Ctxt, value: &Expr, key: &str) -> Option<Sampler> {
    let syntax = "`Tweedie(steps = 32)`, `Euler(steps = 32)` or `FirstHitting`";
    let syntax = if key == "sampler" {
        format!("{syntax} (or `Flow(..)` with `mode: SingleLoop`)")
    } else {
        syntax.to_string()
    };
    let call = named(cx, value, key, keys::SAMPLERS, &syntax)?;
    if call.name == "FirstHitting" {
        call.check_options(cx, &["max_batch"], "`max_batch = n`");
        let max_batch = optional(call.option("max_batch"), |v| int(cx, v, "max_batch"))?;
        return Some(Sampler {
            name: call.name,
            kind: SamplerKind::FirstHitting,
            steps: None,
            eps: None,
            max_batch,
        });
    }
    call.check_options(
        cx,
        &["steps", "eps", "max_batch"],
        "`steps = n`, `eps = t_min`, `max_batch = n`",
    );
    let steps = optional(call.option("steps"), |v| int(cx, v, "steps"))?;
    let eps = optional(call.option("eps"), |v| float(cx, v, "eps"))?;
    let max_batch = optional(call.option("max_batch"), |v| int(cx, v, "max_batch"))?;
    Some(Sampler {
        name: call.name,
        kind: SamplerKind::Grid,
        steps,
        eps,
        max_batch,
    })
}

/// `Conditional | Enumerate | Snis(draws = n)` for `key`.
pub fn weights(cx: &Ctxt, value: &Expr, key: &str) -> Option<Weights> {
    let w = named(
        cx,
        value,
        key,
        keys::WEIGHTS,
        "`Conditional`, `Enumerate` or `Snis(draws = 2)`",
    )?;
    if w.name == "Snis" {
        w.check_options(cx, &["draws"], "`draws = n`");
        let draws = optional(w.option("draws"), |d| int(cx, d, "draws"))?;
        return Some(Weights::Snis { draws });
    }
    w.check_options(cx, &[], "");
    Some(Weights::Unit(w.name))
}

/// `clean = Masked | Unmasked | MaskedSubset(positions = n)`.
pub fn clean(cx: &Ctxt, value: &Expr) -> Option<Clean> {
    let c = named(
        cx,
        value,
        "clean",
        keys::CLEANS,
        "`Masked`, `Unmasked` or `MaskedSubset(positions = 4)`",
    )?;
    if c.name == "MaskedSubset" {
        c.check_options(cx, &["positions"], "`positions = n`");
        let positions = optional(c.option("positions"), |p| int(cx, p, "positions"))?;
        return Some(Clean::MaskedSubset { positions });
    }
    c.check_options(cx, &[], "");
    Some(Clean::Unit(c.name))
}
