//! Seeded outputs pinned bit for bit across refactors (issue 15: "seeded outputs, checkpoints and test
//! figures must not change"). The fingerprints were printed by the same computations on the tree before
//! the redesign (main at 4b73575): the grid sampler (Tweedie and Euler, chunked, with a prompt), the
//! first-hitting sampler, and two fine-tuning rounds with each of two estimators. A change here is a
//! change of behaviour, not of shape.

use rand::SeedableRng;
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::sample::Samples;

/// FNV-1a over 64-bit words.
fn fnv(xs: impl IntoIterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in xs {
        h ^= x;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn model() -> Mlp<f32, Cpu> {
    let config = MlpConfig {
        hidden: 32,
        ..MlpConfig::tiny(5, 6, ScoreHead::Absorbing)
    };
    Mlp::new(config, &Cpu::default(), 3).unwrap()
}

/// `(tokens, recorded log-probabilities)` fingerprints.
fn fingerprint(s: &Samples) -> (u64, u64) {
    let log_probs = s
        .trajectory
        .as_ref()
        .unwrap()
        .steps
        .iter()
        .flat_map(|st| st.log_prob.iter().map(|x| x.to_bits()));
    (fnv(s.tokens.iter().map(|&t| t as u64)), fnv(log_probs))
}

#[test]
fn samplers_draw_the_pinned_sequences() {
    let m = model();
    let policy = Policy::current(&m);
    let diffusion = Diffusion::new(Absorbing::with_tokens(4).unwrap(), LogLinear::default());
    let cond = Condition::prefix(&[2, 1], 6);
    let pinned = [
        (
            Predictor::Tweedie,
            0xcbdc_ccb6_2b0b_ea23,
            0x1796_f32d_842b_8c75,
        ),
        (
            Predictor::Euler,
            0xcbdc_ccb6_2b0b_ea23,
            0x85c2_6bdd_a42b_8c75,
        ),
    ];
    for (predictor, tokens, log_probs) in pinned {
        let cfg = SamplerConfig {
            steps: 20,
            predictor,
            max_batch: 7,
            record_trajectory: true,
            ..SamplerConfig::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let s = sample(&policy, &diffusion, &cfg, (20, 6), Some(&cond), &mut rng).unwrap();
        assert_eq!(fingerprint(&s), (tokens, log_probs), "{predictor:?}");
    }
    let cfg = SamplerConfig {
        max_batch: 7,
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let s = first_hitting(&policy, &diffusion, &cfg, (20, 6), Some(&cond), &mut rng).unwrap();
    assert_eq!(
        fingerprint(&s),
        (0x0d1c_1d4c_506d_4b47, 0x8b4c_026b_290b_8965)
    );
}

#[test]
fn finetuning_rounds_reach_the_pinned_parameters() {
    let pinned = [
        (LogProb::Trajectory, 0xdcb9_c39a_a988_7f9d),
        (
            LogProb::ConcreteScore(ConcreteScore::default()),
            0x1064_7f66_e988_7f9d,
        ),
    ];
    for (log_prob, params) in pinned {
        let config = FinetuneConfig {
            groups: 2,
            group_size: 4,
            epochs: 2,
            minibatch: 4,
            sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
            log_prob,
            ..FinetuneConfig::new(6)
        };
        let reward = FnReward::new("twos", |x: &[usize]| {
            x.iter().filter(|&&t| t == 2).count() as f64
        });
        let graph = Absorbing::with_tokens(4).unwrap();
        let mut ft = Finetuner::new(model(), graph, LogLinear::default(), reward, config).unwrap();
        let first = ft.round().unwrap();
        let second = ft.round().unwrap();
        let got = fnv(ft.model().params().flat_f64().iter().map(|x| x.to_bits()));
        assert_eq!(got, params, "{log_prob:?}");
        assert_eq!((first.reward, second.reward), (1.375, 1.0), "{log_prob:?}");
    }
}
