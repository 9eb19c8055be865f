//! Bad input found by trying sepo as a new user would (issue #17): each case used to panic, abort the
//! process or go silently wrong, and now gets a typed error naming the culprit. One test per case;
//! the numeric cases near f64's limits (SNIS, control variates, IFT weights) are unit-tested beside
//! their code, the macro literals by the ui suite (`tests/ui/*/fail`).

use rand::{rngs::StdRng, SeedableRng};
use sepo::dfdx::prelude::{HasShape, TensorFromVec};
use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::reward::{GcContent, KmerLogLikelihood};

noise_schedule! {
    /// σ̄(t) = t − 1/2: negative on [0, 1/2).
    NegativeStart = t - 0.5;

    /// σ̄ decreasing: σ(t) = −1.
    Decreasing = 2.0 - t;
}

fn mlp(len: usize) -> Mlp<f32, Cpu> {
    Mlp::new(
        MlpConfig::tiny(5, len, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap()
}

fn graph() -> Absorbing {
    Absorbing::with_tokens(4).unwrap()
}

fn invalid_name(result: Result<impl std::fmt::Debug>) -> &'static str {
    match result {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

/// `kl_last_steps: Some(0)` passed `check` and the round panicked slicing an empty trajectory.
#[test]
fn kl_over_zero_last_steps_is_refused() {
    let config = FinetuneConfig {
        kl: 0.1,
        kl_last_steps: Some(0),
        ..FinetuneConfig::new(3)
    };
    assert_eq!(invalid_name(config.check()), "kl_last_steps");
    let reward = sepo::reward::BoxedReward(Box::new(GcContent::default()));
    let built = Finetuner::new(mlp(3), graph(), LogLinear::default(), reward, config);
    assert_eq!(invalid_name(built.map(|_| ())), "kl_last_steps");
}

/// A schedule whose σ̄ goes negative trained on a negative DWDSE loss with no error.
#[test]
fn negative_or_decreasing_schedules_are_refused() {
    assert_eq!(invalid_name(NegativeStart.check()), "schedule");
    assert_eq!(invalid_name(Decreasing.check()), "schedule");
    // A built-in schedule with its public field set out of range.
    assert_eq!(invalid_name(LogLinear { eps: 2.0 }.check()), "schedule");
    assert!(LogLinear::default().check().is_ok());

    let trainer = Pretrainer::new(mlp(3), graph(), NegativeStart, PretrainConfig::default());
    assert_eq!(invalid_name(trainer.map(|_| ())), "schedule");
    // The loss's own entry: the σ̄ it draws are checked whatever the caller checked.
    let mut rng = StdRng::seed_from_u64(0);
    // Stratified times over 4 sequences: one of them falls in [0, 1/2), where σ̄ < 0.
    let corrupted = Dwdse::default().corrupt(&graph(), &NegativeStart, &[0; 12], 4, 3, &mut rng);
    assert_eq!(invalid_name(corrupted.map(|_| ())), "σ̄");
    // The sampler refuses the schedule up front.
    let model = mlp(3);
    let drawn = sample(
        &Policy::current(&model),
        &Diffusion::new(graph(), NegativeStart),
        &SamplerConfig::default(),
        (2, 3),
        None,
        &mut rng,
    );
    assert_eq!(invalid_name(drawn.map(|_| ())), "schedule");
}

/// The sampler's step check called a finite negative σ̄ "non-finite".
#[test]
fn a_negative_noise_level_is_not_called_non_finite() {
    let model = mlp(3);
    assert_eq!(
        invalid_name(model.log_scores_host(&[0, 1, 2], 1, 3, &[-0.5])),
        "σ̄"
    );
    assert!(matches!(
        model.log_scores_host(&[0, 1, 2], 1, 3, &[f64::NAN]),
        Err(Error::NonFinite { .. })
    ));
}

/// `Pretrainer::step` on sequences longer than the model's panicked on a slice index.
#[test]
fn a_corpus_longer_than_the_model_is_refused() {
    let seqs: Vec<Vec<usize>> = (0..8).map(|i| vec![i % 4; 6]).collect();
    let corpus = Corpus::new(&seqs, 4).unwrap();
    let config = PretrainConfig {
        batch_size: 4,
        ..PretrainConfig::default()
    };
    let mut trainer = Pretrainer::new(mlp(3), graph(), LogLinear::default(), config).unwrap();
    let before = trainer.model.params().to_host();
    assert!(matches!(
        trainer.step(&corpus),
        Err(Error::ShapeMismatch { expected, got, .. }) if expected == [3] && got == [6]
    ));
    // Nothing was lost: the step left the model and the optimiser as they were.
    assert_eq!(trainer.model.params().to_host(), before);
    assert_eq!(trainer.step_count(), 0);
}

/// `ScoreModel::forward` with a token ≥ vocabulary panicked; `try_forward` is the checked form.
#[test]
fn try_forward_refuses_what_forward_would_panic_on() {
    let model = mlp(3);
    let dev = Cpu::default();
    let ids = dev.tensor_from_vec(vec![0usize, 1, 9], (1, 3));
    assert!(matches!(
        model.try_forward(&ids, &[0.5], NoneTape),
        Err(Error::TokenOutOfVocab {
            token: 9,
            position: 2,
            ..
        })
    ));
    let long = dev.tensor_from_vec(vec![0usize; 4], (1, 4));
    assert!(matches!(
        model.try_forward(&long, &[0.5], NoneTape),
        Err(Error::ShapeMismatch { .. })
    ));
    let ok = dev.tensor_from_vec(vec![0usize, 1, 4], (1, 3));
    let scores = model.try_forward(&ok, &[0.5], NoneTape).unwrap();
    assert_eq!(scores.shape(), &(1, 3, 5));
}

/// `Tabular` accepted sequences shorter than its length, then asserted in its forward.
#[test]
fn tabular_refuses_other_lengths() {
    let dev = Cpu::default();
    let g = graph();
    let model = Tabular::<f64, Cpu>::new(&g, 3, vec![0.0; 64], &dev).unwrap();
    let short = dev.tensor_from_vec(vec![0usize, 1], (1, 2));
    assert!(matches!(
        model.try_forward(&short, &[0.5], NoneTape),
        Err(Error::ShapeMismatch { expected, got, .. }) if expected == [3] && got == [2]
    ));
    let mut rng = StdRng::seed_from_u64(0);
    let drawn = sample(
        &Policy::current(&model),
        &Diffusion::new(g, LogLinear::default()),
        &SamplerConfig::default(),
        (2, 2),
        None,
        &mut rng,
    );
    assert!(matches!(drawn, Err(Error::ShapeMismatch { .. })));
}

/// `KmerLogLikelihood::fit` with a large alphabet aborted the process on a 4 TB allocation.
#[test]
fn huge_kmer_tables_are_refused_before_allocating() {
    let corpus = vec![vec![0, 1, 2]];
    assert_eq!(
        invalid_name(KmerLogLikelihood::fit(&corpus, 2, 10_000, 1.0).map(|_| ())),
        "order + 1"
    );
    // The same alphabet with a count that overflows usize.
    assert_eq!(
        invalid_name(KmerLogLikelihood::fit(&corpus, 8, usize::MAX, 1.0).map(|_| ())),
        "order + 1"
    );
    assert_eq!(
        invalid_name(sepo::data::kmer_frequencies(&[vec![0, 1]], 40, 4)),
        "k"
    );
    assert!(KmerLogLikelihood::fit(&corpus, 2, 4, 1.0).is_ok());
}

/// A `config.json` with `hidden: 200000000` aborted the process; a huge `len` panicked with
/// "capacity overflow". Both are refused before anything is allocated.
#[test]
fn oversized_model_configs_are_refused_before_allocating() {
    let dir = std::env::temp_dir().join(format!("sepo_bad_input_{}", std::process::id()));
    let checkpoint = Checkpoint::new(&dir);
    checkpoint
        .save_model(&mlp(3), serde_json::Value::Null)
        .unwrap();
    let committed = checkpoint.open().unwrap();
    let weights = committed.read("model.safetensors").unwrap();
    let original = committed.read("config.json").unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&original).unwrap();
    // Committed with the checkpoint (an edited file would fail its checksum before being parsed).
    let commit_config = |json: &serde_json::Value| {
        let config = serde_json::to_vec(json).unwrap();
        checkpoint
            .commit(
                &[("model.safetensors", &weights), ("config.json", &config)],
                1,
            )
            .unwrap();
    };
    for (key, value) in [("hidden", 200_000_000u64), ("len", u64::MAX / 2)] {
        let mut edited = json.clone();
        edited["model"][key] = value.into();
        commit_config(&edited);
        let loaded = checkpoint.load_model::<Mlp<f32, Cpu>>(&Cpu::default());
        assert_eq!(invalid_name(loaded.map(|_| ())), "MlpConfig", "{key}");
    }
    json["model"]["hidden"] = 128.into();
    commit_config(&json);
    assert!(checkpoint
        .load_model::<Mlp<f32, Cpu>>(&Cpu::default())
        .is_ok());
    std::fs::remove_dir_all(&dir).ok();

    let wide = TransformerConfig {
        dim: 1 << 20,
        heads: 1 << 10,
        ..TransformerConfig::tiny(5, 16, ScoreHead::Absorbing)
    };
    assert_eq!(invalid_name(wide.check()), "TransformerConfig");
    let long = TransformerConfig {
        max_len: usize::MAX,
        learned_positions: true,
        ..TransformerConfig::tiny(5, 16, ScoreHead::Absorbing)
    };
    assert_eq!(invalid_name(long.check()), "TransformerConfig");
}

/// Sizes whose product overflows `usize` (a round's samples, a sampler batch) are typed errors, not
/// overflow panics or allocator aborts.
#[test]
fn overflowing_batch_sizes_are_refused() {
    let config = FinetuneConfig {
        groups: usize::MAX / 2,
        group_size: 4,
        ..FinetuneConfig::new(3)
    };
    assert_eq!(invalid_name(config.check()), "groups");
    let model = Transformer::<f32, Cpu>::new(
        TransformerConfig::tiny(5, usize::MAX, ScoreHead::Absorbing),
        &Cpu::default(),
        0,
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let drawn = sample(
        &Policy::current(&model),
        &Diffusion::new(graph(), LogLinear::default()),
        &SamplerConfig::default(),
        (1 << 20, 1 << 20),
        None,
        &mut rng,
    );
    assert!(matches!(drawn, Err(Error::InvalidParameter { .. })));
}
