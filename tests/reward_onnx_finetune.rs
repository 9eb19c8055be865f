//! An ONNX reward drives a fine-tuning run whose reward rises (issue 18, "Rewards that are models").
//!
//! The committed classifier (`tests/fixtures/onnx/classifier_onehot.onnx`, a 1-D CNN trained in
//! PyTorch to tell GC-rich from AT-rich DNA) scores length-8 sequences; its GC-rich logit is the
//! reward, named by path in `policy!`. A tiny MLP score model (5 states: A, C, G, T, mask) starts
//! untrained (zero output layer: uniform clean conditionals) and is fine-tuned for 40 rounds of 32
//! samples. The reward of 512 fresh first-hitting samples is measured before and after with independent
//! seeds; the mean must rise by more than 4 standard errors of the difference,
//! `4·√(se_before² + se_after²)`, so a chance rise has probability < 1e-4 under a normal approximation.

use std::path::Path;

use rand::SeedableRng;
use sepo::prelude::*;
use sepo::reward::{OnnxReward, OnnxSpec};

const LEN: usize = 8;
const FRESH: usize = 512;

fn gc_logit() -> sepo::Result<OnnxReward> {
    OnnxReward::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/classifier_onehot.onnx"),
        OnnxSpec::one_hot(4, Some(LEN), 1),
    )
}

policy! {
    /// GRPO-style fine-tuning of a tiny MLP on the ONNX classifier's GC-rich logit.
    OnnxGc {
        reward: gc_logit()?,
        sampler: FirstHitting,
        optimizer: Adam(lr = 3e-3),
        batch: 32,
        group_size: 4,
        iterations: 40,
        epochs: 2,
        minibatch: 16,
        seed: 7,
        progress: false,
    }
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

fn assess<M: ScoreModel<Elem = f32, Device = Cpu>>(model: &M, seed: u64) -> (f64, f64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = first_hitting(
        &Policy::current(model),
        &Diffusion::new(Absorbing::with_tokens(4).unwrap(), LogLinear::default()),
        &SamplerConfig::default(),
        (FRESH, LEN),
        None,
        &mut rng,
    )
    .unwrap();
    let seqs: Vec<&[usize]> = s.sequences().collect();
    mean_se(&evaluate(&gc_logit().unwrap(), &seqs).unwrap())
}

#[test]
fn an_onnx_reward_drives_a_fine_tuning_run_whose_reward_rises() {
    let model = Mlp::new(
        MlpConfig::tiny(5, LEN, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap();
    let before = assess(&model, 100);
    let mut run = OnnxGc::build_with(model).unwrap();
    let history = run.fit().unwrap();
    assert_eq!(history.len(), 40);
    let after = assess(run.finetuner.model(), 200);
    let rise = after.0 - before.0;
    let margin = 4.0 * (before.1.powi(2) + after.1.powi(2)).sqrt();
    eprintln!(
        "ONNX reward: {:.3} ± {:.3} → {:.3} ± {:.3} (rise {rise:.3}, margin {margin:.3}); rounds' mean reward {:.3} → {:.3}",
        before.0,
        before.1,
        after.0,
        after.1,
        history[0].reward,
        history[39].reward
    );
    assert!(
        rise > margin,
        "rise {rise:.3} ≤ 4 standard errors {margin:.3}"
    );
}
