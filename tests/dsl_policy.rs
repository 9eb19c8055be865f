//! `estimator!` and `policy!`: the mixtures they declare, the configuration and the run they build.

use sepo::prelude::*;
use sepo::reward::GcContent;
use sepo::score::{Mlp, MlpConfig};

estimator! {
    /// GRPO over groups of 4, with some leave-one-out REINFORCE.
    pub Mixed = 0.8 * grpo(group = 4, clip = 0.2) + 0.2 * reinforce(baseline = leave_one_out);
    /// A lone component has weight 1.
    Plain = ppo(baseline = none, clip = 0.1);
}

policy! {
    /// Fine-tunes a tiny MLP on GC content.
    pub Tiny {
        graph: Absorbing,
        schedule: LogLinear(eps = 1e-3),
        sampler: FirstHitting,
        reward: GcContent::default(),
        log_prob: ConcreteScore(weights = Conditional, clean = MaskedSubset(positions = 2)),
        estimator: Mixed,
        kl: 0.01,
        optimizer: Adam(lr = 1e-3),
        batch: 16,
        group_size: 4,
        iterations: 2,
        epochs: 1,
        minibatch: 8,
        seed: 3,
        progress: false,
    }
}

policy! {
    /// Inline estimator, checkpointed model.
    Loaded {
        model: Mlp(checkpoint = "/nonexistent/sepo-dsl-policy"),
        reward: GcContent::default(),
        eval_reward: GcContent { tokens: vec![1] },
        estimator: grpo(clip = 0.3),
        sampler: Euler(steps = 8),
        log_prob: Trajectory,
        kl: 1,
        kl_mode: Path,
    }
}

policy! {
    /// The events estimator on a grid sampler.
    Evented {
        reward: GcContent::default(),
        sampler: Tweedie(steps = 8),
        log_prob: Events(positions = 2),
        batch: 8,
        group_size: 4,
        iterations: 2,
        epochs: 2,
        minibatch: 4,
        progress: false,
    }
}

fn tiny_mlp() -> Mlp<f32, Cpu> {
    Mlp::new(
        MlpConfig::tiny(5, 4, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap()
}

#[test]
fn estimators_expand_to_checked_mixtures() {
    let mixture = Mixture::of(&Mixed).unwrap();
    assert_eq!(mixture.components.len(), 2);
    assert_eq!(mixture.components[0].group, Some(4));
    assert_eq!(mixture.components[0].baseline, Baseline::GRPO);
    assert_eq!(mixture.components[1].baseline, Baseline::LeaveOneOut);
    assert_eq!(mixture.components[1].clip, None);
    assert_eq!(Mixture::from(Plain), Mixture::ppo(Baseline::None, 0.1));
    assert_eq!(Mixed.name(), "Mixed");
}

#[test]
fn the_configuration_sets_the_given_keys_over_the_defaults() {
    let config = Tiny::config(4).unwrap();
    assert_eq!((config.groups, config.group_size), (4, 4));
    assert_eq!(config.estimator, Mixture::of(&Mixed).unwrap());
    assert_eq!(config.kl, 0.01);
    assert_eq!(config.optimizer, AdamW::with_lr(1e-3));
    assert_eq!((config.epochs, config.minibatch, config.seed), (1, 8, 3));
    let defaults = FinetuneConfig::new(4);
    assert_eq!(config.kl_mode, defaults.kl_mode);
    let loaded = Loaded::config(4).unwrap();
    assert_eq!(loaded.estimator, Mixture::grpo(0.3));
    assert_eq!((loaded.kl, loaded.kl_mode), (1.0, KlMode::Path));
    assert_eq!((loaded.groups, loaded.group_size), (4, 8));
}

#[test]
fn a_run_built_in_code_fits_its_rounds() {
    let mut run = Tiny::build_with(tiny_mlp()).unwrap();
    let history = run.fit().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|m| m.reward.is_finite()));
    // `iterations` is the total: a second `fit` has nothing left to do.
    assert!(run.fit().unwrap().is_empty());
}

#[test]
fn a_missing_checkpoint_is_a_typed_error() {
    assert!(matches!(
        Loaded::build(&Cpu::default()),
        Err(sepo::Error::NoCheckpoint { .. })
    ));
}

#[test]
fn an_events_policy_configures_and_fits() {
    let config = Evented::config(4).unwrap();
    assert_eq!(config.log_prob, LogProb::Events { positions: 2 });
    let mut run = Evented::build_with(tiny_mlp()).unwrap();
    let history = run.fit().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history
        .iter()
        .all(|m| m.reward.is_finite() && m.grad_norm.is_finite()));
}
