//! The keys of a `policy!` that shape the optimisation loop rather than the model: `lr_schedule`,
//! `grad_clip`, `prompts` and `allocation`. Each reads its value into its IR value, recording mistakes
//! at the user's span.

use syn::spanned::Spanned;
use syn::{Expr, Ident};

use super::ir::{Allocation, AllocationKind, Fields, Float, GradClip, LrSchedule, WarmupCosine};
use super::read::{count, float, int, named, optional, required};
use crate::call::{self, Call};
use crate::ctxt::Ctxt;
use crate::keys;

/// `lr_schedule: Constant | Warmup(warmup = n) | WarmupCosine(warmup = n, total = n, min_ratio = r)
/// | Linear | InvSqrt(scale = s)`, in either mode.
pub fn lr_schedule(cx: &Ctxt, value: &Expr) -> Option<LrSchedule> {
    let call = named(
        cx,
        value,
        "lr_schedule",
        keys::LR_SCHEDULES,
        "`Constant`, `Warmup(warmup = 100)`, `WarmupCosine(warmup = 100, total = 1000, min_ratio = 0.1)`, \
         `Linear` (to 0 at `iterations`) or `InvSqrt(scale = 100)`",
    )?;
    match call.name.to_string().as_str() {
        "Constant" => {
            call.check_options(cx, &[], "");
            Some(LrSchedule::Constant)
        }
        "Linear" => {
            call.check_options(cx, &[], "");
            Some(LrSchedule::Linear)
        }
        "InvSqrt" => {
            call.check_options(cx, &["scale"], "`scale = s` (steps per unit of decay)");
            let scale = optional(call.option("scale"), |s| {
                if call::number(s).is_some_and(|(v, _)| v <= 0.0) {
                    cx.error_spanned_by(s, "`scale` must be > 0");
                    return None;
                }
                float(cx, s, "scale")
            })?;
            Some(LrSchedule::InvSqrt { scale })
        }
        "Warmup" => {
            call.check_options(cx, &["warmup"], "`warmup = n` (optimiser steps)");
            let warmup = required(cx, &call, "warmup", "Warmup(warmup = 100)")?;
            let warmup = int(cx, warmup, "warmup")?;
            Some(LrSchedule::Warmup { warmup })
        }
        _ => {
            call.check_options(
                cx,
                &["warmup", "total", "min_ratio"],
                "`warmup = n`, `total = n` (optimiser steps), `min_ratio = r`",
            );
            let example = "WarmupCosine(warmup = 100, total = 1000)";
            let total_expr = required(cx, &call, "total", example)?;
            let total = int(cx, total_expr, "total")?;
            // Literal `total` and `warmup` (absent: 0): the decay must end after the warm-up.
            let warmup_value = match call.option("warmup") {
                Some(w) => call::number(w).filter(|(_, int)| *int).map(|(v, _)| v),
                None => Some(0.0),
            };
            if let (Some((t, true)), Some(v)) = (call::number(total_expr), warmup_value) {
                if t <= v {
                    cx.error_spanned_by(
                        total_expr,
                        format!(
                            "the cosine decay must end after the warm-up: `total` ({t}) must \
                             exceed `warmup` ({v})"
                        ),
                    );
                    return None;
                }
            }
            let warmup = optional(call.option("warmup"), |w| int(cx, w, "warmup"))?;
            let min_ratio = optional(call.option("min_ratio"), |r| ratio(cx, r))?;
            Some(LrSchedule::WarmupCosine(Box::new(WarmupCosine {
                warmup,
                total,
                min_ratio,
            })))
        }
    }
}

/// `min_ratio ∈ [0, 1]` when a literal.
fn ratio(cx: &Ctxt, value: &Expr) -> Option<Float> {
    if let Some((v, _)) = call::number(value) {
        if !(0.0..=1.0).contains(&v) {
            cx.error_spanned_by(
                value,
                format!("`min_ratio` is a fraction of the peak rate: in [0, 1], found {v}"),
            );
            return None;
        }
    }
    float(cx, value, "min_ratio")
}

/// `grad_clip: 1.0` (a positive number: the global-norm bound), `None` (no clipping), or an expression
/// of type `f64` or `Option<f64>`, typed by the compiler at its span.
pub fn grad_clip(cx: &Ctxt, value: &Expr) -> Option<GradClip> {
    if let Expr::Path(p) = value {
        if p.path.is_ident("None") {
            return Some(GradClip::Off);
        }
    }
    if call::non_numeric_literal(value) {
        cx.error_spanned_by(
            value,
            "`grad_clip` expects a positive number, such as `1.0`, or `None`",
        );
        return None;
    }
    if let Some((v, _)) = call::number(value) {
        if !(v > 0.0 && v.is_finite()) {
            cx.error_spanned_by(
                value,
                format!(
                    "`grad_clip` bounds the gradient norm: it must be > 0, found {v} (write `None` for no clipping)"
                ),
            );
            return None;
        }
        return float(cx, value, "grad_clip").map(GradClip::Bound);
    }
    Some(GradClip::Expr(value.clone()))
}

/// `prompts: expr`: any expression whose value is `AsRef<[Vec<usize>]>` (a `Vec<Vec<usize>>`, an
/// array of them, a slice), typed by the compiler at its span. Literals are refused here.
pub fn prompts(cx: &Ctxt, value: &Expr) -> Option<Expr> {
    if matches!(value, Expr::Lit(_)) {
        cx.error_spanned_by(
            value,
            "`prompts` expects the prompts, one token sequence each: `vec![vec![0, 1], vec![2]]`",
        );
        return None;
    }
    Some(value.clone())
}

/// `allocation: Uniform | Adaptive(budget = n, chunk, cap, smoothing) | Neyman(budget = n, floor,
/// smoothing) | Sequential(chunk, cap)`.
pub fn allocation(cx: &Ctxt, value: &Expr) -> Option<Allocation> {
    let call = named(
        cx,
        value,
        "allocation",
        keys::ALLOCATIONS,
        "`Uniform`, `Adaptive(budget = 256)`, `Neyman(budget = 256)` or `Sequential(chunk = 4, cap = 16)`",
    )?;
    let kind = match call.name.to_string().as_str() {
        "Uniform" => {
            call.check_options(cx, &[], "");
            AllocationKind::Uniform
        }
        "Adaptive" => {
            call.check_options(
                cx,
                &["budget", "chunk", "cap", "smoothing"],
                "`budget = n` (draws per round), `chunk = n`, `cap = n`, `smoothing = s`",
            );
            let budget = required(cx, &call, "budget", "Adaptive(budget = 256)")?;
            let budget = count(cx, budget, "budget")?;
            let fields = fields(cx, &call, &["chunk", "cap"], &["smoothing"])?;
            AllocationKind::Adaptive { budget, fields }
        }
        "Neyman" => {
            call.check_options(
                cx,
                &["budget", "floor", "smoothing"],
                "`budget = n` (draws per round), `floor = n`, `smoothing = s`",
            );
            let budget = required(cx, &call, "budget", "Neyman(budget = 256)")?;
            let budget = count(cx, budget, "budget")?;
            let fields = fields(cx, &call, &["floor"], &["smoothing"])?;
            AllocationKind::Neyman { budget, fields }
        }
        _ => {
            call.check_options(cx, &["chunk", "cap"], "`chunk = n`, `cap = n`");
            let chunk = optional(call.option("chunk"), |c| count(cx, c, "chunk"))?;
            let cap = optional(call.option("cap"), |c| count(cx, c, "cap"))?;
            AllocationKind::Sequential { chunk, cap }
        }
    };
    Some(Allocation {
        name: call.name,
        kind,
    })
}

/// The count options `counts` and the number options `floats` given in `call`, each with its field
/// name at the value's span.
fn fields(cx: &Ctxt, call: &Call, counts: &[&str], floats: &[&str]) -> Option<Fields> {
    let mut fields = Fields {
        counts: Vec::new(),
        floats: Vec::new(),
    };
    for &key in counts {
        if let Some(v) = call.option(key) {
            let value = count(cx, v, key)?;
            fields.counts.push((Ident::new(key, v.span()), value));
        }
    }
    for &key in floats {
        if let Some(v) = call.option(key) {
            let value = float(cx, v, key)?;
            fields.floats.push((Ident::new(key, v.span()), value));
        }
    }
    Some(fields)
}
