//! Single-loop gradient-flow SEPO on a real score network (issue "Gradient-flow SEPO", must-show 7).
//!
//! A tiny diffusion transformer (dim 32, 2 heads, 2 layers, ≈ 40k parameters) is pretrained with DWDSE
//! on the DNA-like corpus (`DnaLike::new(1)`, `TATA` planted), length 32, then fine-tuned by
//! `SingleLoop`: 64 persistent particles from the pretrained first-hitting sampler, one heat-bath
//! (Gibbs) step per update under the model's masked conditionals, `Conditional` ĥ read at 4 random
//! masked positions per particle, `RatioMode::Tracked` (the transformer has no energy head), β > 0.
//! Training reward: the number of `TATA` occurrences. Held-out evaluation reward, never trained on and
//! a different function of the sequence: a CNN scoring the TATA-box consensus `TATAWAW` with one
//! mismatch tolerated (see `tata_box_scorer`). Both are measured on fresh first-hitting samples of the
//! model before and after, with independent seeds.

use std::time::Instant;

use rand::SeedableRng;
use sepo::data::DnaLike;
use sepo::flow::LocallyBalanced;
use sepo::graph::Absorbing;
use sepo::policy::{Ift, StateGradient};
use sepo::prelude::*;
use sepo::reward::{evaluate, CnnClassifier, MotifCount};
use sepo::score::{Counting, Transformer, TransformerConfig};
use sepo::train::{LrSchedule, RatioMode, SingleLoop, SingleLoopConfig};

const LEN: usize = 32;
const TATA: [usize; 4] = [3, 0, 3, 0];
/// Fresh samples per assessment. 1,024 rather than 512: the run's rise is a property of one seeded
/// trajectory, and the float rounding of the CPU kernels (`nn::kernels`, ≤ 1e-6 relative in f32) moved it
/// from one trajectory to another where one of the two rises (0.098) sat inside 512 samples' 4σ margin
/// (0.110); twice the samples shrink the margin by √2 and leave the claim and its 4σ level as they were.
const FRESH: usize = 1024;
/// DWDSE pretraining steps (batch 64).
const PRETRAIN_STEPS: u64 = 150;
/// Single-loop updates.
const UPDATES: usize = 110;
/// KL coefficient. The tracked log-ratios spread fast on a transformer (sd ≈ 6 nats after 20 updates
/// and ≈ 12 after 100 at lr 5e-4; ≈ 26 after 20 at lr 1e-3): with β·sd far above the reward's spread the
/// centred weights follow the noisy KL term and the reward falls (β = 0.05 at lr 1e-3, and β = 0.01 at
/// lr 1e-3, both measured). β = 0.01 at lr 5e-4 keeps the KL term active but below the reward.
const BETA: f64 = 0.01;

fn pretrained() -> Transformer<f32, Cpu> {
    let graph = Absorbing::with_tokens(4).unwrap();
    let config = TransformerConfig {
        dim: 32,
        heads: 2,
        layers: 2,
        cond_dim: 32,
        freq_dim: 32,
        ..TransformerConfig::tiny(5, LEN, ScoreHead::Absorbing)
    };
    let model = Transformer::new(config, &Cpu::default(), 0).unwrap();
    let data = Corpus::new(&DnaLike::new(1).corpus(2_000, LEN, 2), 4).unwrap();
    let config = PretrainConfig {
        batch_size: 64,
        optimizer: AdamW::with_lr(2e-3),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 20,
            total: PRETRAIN_STEPS,
            min_ratio: 0.1,
        },
        ..PretrainConfig::default()
    };
    let mut trainer = Pretrainer::new(model, graph, LogLinear::default(), config).unwrap();
    trainer.fit(&data, PRETRAIN_STEPS, false, None).unwrap();
    trainer.model
}

/// Mean and standard error `sd/√n`.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// The held-out evaluation reward: a TATA-*box* consensus scorer, a different function from the
/// training reward's exact `TATA` count. One CNN channel over 7-mers with weight 1 where a token fits
/// the consensus `TATAWAW` (W = A or T) and 0 elsewhere, bias −5, ReLU and max-pooling: the best
/// window scores `max(0, fits − 5)` ∈ {0, 1, 2}, read out as `σ(best − 1)`. An exact `TATA` in random
/// context fits 6 or 7 positions half the time, a near miss (`TATT`, `AATAAAA`, …) can fire too, and a
/// `TATA` count says nothing of the flanks.
fn tata_box_scorer() -> CnnClassifier {
    let consensus: [&[usize]; 7] = [&[3], &[0], &[3], &[0], &[0, 3], &[0], &[0, 3]];
    let (alphabet, width) = (4, consensus.len());
    let mut conv_weight = vec![0.0; alphabet * width];
    for (k, fits) in consensus.iter().enumerate() {
        for &a in *fits {
            conv_weight[a * width + k] = 1.0;
        }
    }
    CnnClassifier {
        alphabet,
        conv_weight,
        conv_bias: vec![-5.0],
        out_weight: vec![1.0],
        out_bias: -1.0,
        width,
        probability: true,
        name: "tata_box".into(),
    }
}

/// (training reward, eval reward) means and standard errors over `FRESH` first-hitting samples.
fn assess<M: ScoreModel<Elem = f32, Device = Cpu>>(
    model: &M,
    seed: u64,
) -> ((f64, f64), (f64, f64)) {
    let graph = Absorbing::with_tokens(4).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = first_hitting(
        &Policy::current(model),
        &Diffusion::new(graph, LogLinear::default()),
        &SamplerConfig::default(),
        (FRESH, LEN),
        None,
        &mut rng,
    )
    .unwrap();
    let seqs: Vec<&[usize]> = s.sequences().collect();
    let reward = MotifCount::new(TATA.to_vec());
    let eval = tata_box_scorer();
    (
        mean_se(&evaluate(&reward, &seqs).unwrap()),
        mean_se(&evaluate(&eval, &seqs).unwrap()),
    )
}

/// Must-show 7: on the tiny transformer, the single loop with `Conditional` ĥ and tracked ρ̂ raises both
/// the training reward and the held-out evaluation reward of fresh samples.
///
/// Sizes: L = 32, B = 64 particles, 110 updates of k = 1 heat-bath step, AdamW lr 5e-4 (constant),
/// β = 0.01, 1,024 fresh samples per assessment; about 80 s at the test profile on the 2-core dev VM. Margin: each mean must rise by more than 4 standard errors
/// of the difference, `4·√(se_before² + se_after²)` (independent sample sets), so a chance rise has
/// probability < 1e-4 under a normal approximation.
#[test]
fn single_loop_raises_training_and_held_out_reward_on_a_transformer() {
    let clock = Instant::now();
    let model = pretrained();
    eprintln!("pretraining: {:.1} s", clock.elapsed().as_secs_f64());
    let (reward0, eval0) = assess(&model, 100);
    let graph = Absorbing::with_tokens(4).unwrap();
    let batch = 64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let start = first_hitting(
        &Policy::current(&model),
        &Diffusion::new(graph, LogLinear::default()),
        &SamplerConfig::default(),
        (batch, LEN),
        None,
        &mut rng,
    )
    .unwrap();
    let config = SingleLoopConfig {
        rates: LocallyBalanced::HeatBath,
        steps_per_update: 1,
        estimator: Ift {
            state_gradient: StateGradient::Conditional,
            clean: CleanScores::MaskedSubset { positions: 4 },
            ..Ift::default()
        },
        ratio: RatioMode::Tracked,
        kl: BETA,
        optimizer: AdamW::with_lr(5e-4),
        lr_schedule: LrSchedule::Constant,
        grad_clip: Some(1.0),
        max_batch: 4096,
        seed: 1,
    };
    let mut sl = SingleLoop::new(
        Counting::new(model),
        graph,
        MotifCount::new(TATA.to_vec()),
        config,
        start.tokens,
        batch,
    )
    .unwrap();
    let clock = Instant::now();
    let first = sl.mean_reward();
    for i in 0..UPDATES {
        sl.step().unwrap();
        if i % 20 == 19 {
            let sd = mean_se(sl.log_ratios()).1 * (batch as f64).sqrt();
            eprintln!(
                "update {i}: particles' reward {:.3}, spread of the tracked log-ratios sd {sd:.2}",
                sl.mean_reward()
            );
        }
    }
    eprintln!(
        "{UPDATES} updates: {:.1} s, {} evaluations ({} back-propagated); particles' reward {first:.3} → {:.3}",
        clock.elapsed().as_secs_f64(),
        sl.model.evaluations(),
        sl.model.taped(),
        sl.mean_reward()
    );
    let (reward1, eval1) = assess(&sl.model.inner, 200);
    for (name, before, after) in [("reward", reward0, reward1), ("eval_reward", eval0, eval1)] {
        let margin = 4.0 * (before.1.powi(2) + after.1.powi(2)).sqrt();
        eprintln!(
            "{name}: {:.4} ± {:.4} → {:.4} ± {:.4} (rise {:.4}, margin {margin:.4})",
            before.0,
            before.1,
            after.0,
            after.1,
            after.0 - before.0
        );
        assert!(
            after.0 - before.0 > margin,
            "{name}: {before:?} → {after:?}"
        );
    }
}
