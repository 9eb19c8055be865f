//! MDLM checkpoints in (issue 18, "Models in"): the tiny MDLM-DiT checkpoint that `tools/export_mdlm.py`
//! wrote in `kuleshov-group/mdlm-owt`'s layout loads into sepo and reproduces the absorbing concrete
//! score implied by MDLM's "subs" parameterisation, with and without time conditioning; the map's
//! closed-form properties hold on sepo's own outputs; export → import is bit-identical.

use std::path::PathBuf;

use sepo::dfdx::prelude::Cpu;
use sepo::score::head::log_expm1;
use sepo::score::import::config::NEG_INFINITY;
use sepo::score::import::{export_dir, import_dir, ImportedDit, Output};
use sepo::score::ScoreModel;

#[path = "support/import_fixture.rs"]
mod import_fixture;
use import_fixture::{expected, fixture, max_rel_err, scores, tmp};

/// The fixture folder with `time_conditioning` set to `on` in its config.json.
fn with_time_conditioning(on: bool) -> PathBuf {
    let dir = tmp(&format!("time-{on}"));
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("mdlm-tiny/config.json")).unwrap()).unwrap();
    config["time_conditioning"] = on.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixture("mdlm-tiny/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    dir
}

#[test]
fn mdlm_tiny_reproduces_the_subs_concrete_scores() {
    let dev = Cpu::default();
    for (dir, file, time_conditioning) in [
        (fixture("mdlm-tiny"), "mdlm-tiny/expected.json", false),
        (
            with_time_conditioning(true),
            "mdlm-tiny/expected_time.json",
            true,
        ),
    ] {
        let model = import_dir::<f32, Cpu>(&dir, &dev).unwrap();
        assert_eq!(model.output(), Output::MdlmSubs { time_conditioning });
        let e = expected(file);
        assert!(e.batch >= 8);
        let mask = model.num_states() - 1;
        let masked = e.tokens.iter().filter(|&&t| t == mask).count();
        assert!(masked > 0 && masked < e.tokens.len());
        let err = max_rel_err(&scores(&model, &e), &e.outputs);
        eprintln!(
            "mdlm-tiny (time_conditioning {time_conditioning}): max relative error {err:.3e}"
        );
        assert!(
            err < 1e-5,
            "time_conditioning {time_conditioning}: {err:.3e}"
        );
    }
}

/// The map's closed forms on sepo's own outputs, independent of the reference: at a masked position
/// `Σ_{v ≠ m} s_v · (e^{σ̄} − 1) = 1` (a normalised `p_θ(x₀ | x_t)`) and `s_m = 1`; at a clean
/// position `s = 1` at the own token and the mask, `log s = NEG_INFINITY` elsewhere; and without time
/// conditioning σ̄ enters only through `−log(e^{σ̄} − 1)`.
#[test]
fn subs_map_is_a_scaled_normalised_conditional() {
    let model = import_dir::<f32, Cpu>(&fixture("mdlm-tiny"), &Cpu::default()).unwrap();
    let e = expected("mdlm-tiny/expected.json");
    let (n, l) = (model.num_states(), e.length);
    let mask = n - 1;
    let out = scores(&model, &e);
    for (i, &x) in e.tokens.iter().enumerate() {
        let row = &out[i * n..(i + 1) * n];
        let sigma = e.sigma_bar[i / l];
        assert_eq!(row[mask], 0.0);
        if x == mask {
            let total: f64 = row[..mask]
                .iter()
                .map(|s| (s + log_expm1(sigma)).exp())
                .sum();
            assert!((total - 1.0).abs() < 1e-5, "position {i}: Σ p = {total}");
        } else {
            for (v, &s) in row[..mask].iter().enumerate() {
                assert_eq!(
                    s,
                    if v == x { 0.0 } else { NEG_INFINITY },
                    "position {i}, v {v}"
                );
            }
        }
    }
    // Same tokens at another σ̄: masked entries shift by log(e^{σ̄} − 1) − log(e^{σ̄'} − 1).
    let other: Vec<f64> = e.sigma_bar.iter().map(|s| s * 2.5 + 0.1).collect();
    let moved = model
        .log_scores_host(&e.tokens, e.batch, l, &other)
        .unwrap();
    for (i, &x) in e.tokens.iter().enumerate().filter(|(_, &x)| x == mask) {
        let _ = x;
        let b = i / l;
        let shift = log_expm1(e.sigma_bar[b]) - log_expm1(other[b]);
        for v in 0..mask {
            let (a, c) = (out[i * n + v], moved[i * n + v]);
            assert!(
                (c - a - shift).abs() < 1e-5 * a.abs().max(1.0),
                "{a} {c} {shift}"
            );
        }
    }
}

#[test]
fn export_import_round_trip_is_bit_identical() {
    let dev = Cpu::default();
    let model = import_dir::<f32, Cpu>(&fixture("mdlm-tiny"), &dev).unwrap();
    let dir = tmp("export");
    export_dir(&model, &dir).unwrap();
    let back = import_dir::<f32, Cpu>(&dir, &dev).unwrap();
    assert_eq!(back.config(), model.config());
    let bits = |m: &ImportedDit<f32, Cpu>| -> Vec<u32> {
        m.params()
            .to_host()
            .into_iter()
            .flat_map(|(_, _, v)| v)
            .map(f32::to_bits)
            .collect()
    };
    assert_eq!(bits(&back), bits(&model));
    let e = expected("mdlm-tiny/expected.json");
    assert_eq!(scores(&back, &e), scores(&model, &e));
}
