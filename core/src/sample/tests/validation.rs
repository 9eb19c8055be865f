//! Typed errors at the samplers' entry, and NaN scores reported with the step that produced them.

use crate::Diffusion;
use crate::Policy;
use dfdx::prelude::*;

use super::*;
use crate::graph::{Absorbing, Uniform};
use crate::nn::ParamStore;
use crate::schedule::LogLinear;
use crate::score::{LogScores, Tokens};
use crate::Error;

fn run<G: Graph>(
    graph: &G,
    cfg: SamplerConfig,
    batch: usize,
    seq_len: usize,
    condition: Option<&Condition>,
) -> crate::Result<Samples> {
    let model = oracle(graph);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    sample(
        &Policy::current(&model),
        &Diffusion::new(graph.clone(), LogLinear::default()),
        &cfg,
        (batch, seq_len),
        condition,
        &mut rng,
    )
}

#[test]
fn config_values_out_of_range_are_refused() {
    let base = SamplerConfig::default();
    for (cfg, name) in [
        (SamplerConfig { steps: 0, ..base }, "steps"),
        (
            SamplerConfig {
                max_batch: 0,
                ..base
            },
            "max_batch",
        ),
        (SamplerConfig { eps: 0.0, ..base }, "eps"),
        (SamplerConfig { eps: 1.0, ..base }, "eps"),
        (
            SamplerConfig {
                eps: f64::NAN,
                ..base
            },
            "eps",
        ),
    ] {
        match cfg.check() {
            Err(Error::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{cfg:?}: {other:?}"),
        }
    }
    assert!(base.check().is_ok());
    let grid = SamplerConfig {
        steps: 4,
        eps: 0.2,
        ..base
    }
    .grid();
    assert_eq!(grid.len(), 5);
    assert!((grid[0] - 1.0).abs() < 1e-15 && grid[4] == 0.2);
}

#[test]
fn empty_batches_and_sequences_are_refused() {
    let graph = Absorbing::with_tokens(TOKENS).unwrap();
    let cfg = SamplerConfig {
        steps: 2,
        ..SamplerConfig::default()
    };
    assert!(matches!(
        run(&graph, cfg, 0, LEN, None),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        run(&graph, cfg, 3, 0, None),
        Err(Error::Empty { .. })
    ));
    // Longer than the model accepts.
    assert!(matches!(
        run(&graph, cfg, 3, LEN + 1, None),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn conditions_that_do_not_fit_are_refused() {
    let graph = Absorbing::with_tokens(TOKENS).unwrap();
    let cfg = SamplerConfig {
        steps: 2,
        ..SamplerConfig::default()
    };
    let wrong_len = Condition::shared(vec![Some(1); LEN - 1]);
    assert!(matches!(
        run(&graph, cfg, 2, LEN, Some(&wrong_len)),
        Err(Error::ShapeMismatch { .. })
    ));
    let per_seq_wrong = Condition::per_sequence(vec![None; LEN]);
    assert!(matches!(
        run(&graph, cfg, 2, LEN, Some(&per_seq_wrong)),
        Err(Error::ShapeMismatch { .. })
    ));
    // The mask (id 4) is not a clean token.
    let mut fixed = vec![None; 2 * LEN];
    fixed[LEN + 2] = Some(TOKENS);
    match run(&graph, cfg, 2, LEN, Some(&Condition::per_sequence(fixed))) {
        Err(Error::TokenOutOfVocab {
            sequence,
            position,
            token,
            vocab,
        }) => {
            assert_eq!((sequence, position, token, vocab), (1, 2, TOKENS, TOKENS))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn first_hitting_needs_an_absorbing_graph() {
    let graph = Uniform::new(TOKENS).unwrap();
    let model = oracle(&graph);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let err = first_hitting(
        &Policy::current(&model),
        &Diffusion::new(graph, LogLinear::default()),
        &SamplerConfig::default(),
        (2, LEN),
        None,
        &mut rng,
    );
    assert!(matches!(
        err,
        Err(Error::InvalidParameter { name: "graph", .. })
    ));
}

#[test]
fn a_model_over_another_number_of_states_is_refused() {
    let wide = Uniform::new(TOKENS + 1).unwrap();
    let model = Tabular::<f64, Cpu>::new(
        &wide,
        LEN,
        vec![0.0; (TOKENS + 1).pow(LEN as u32)],
        &Cpu::default(),
    )
    .unwrap();
    let graph = Uniform::new(TOKENS).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let err = sample(
        &Policy::current(&model),
        &Diffusion::new(graph, LogLinear::default()),
        &SamplerConfig::default(),
        (2, LEN),
        None,
        &mut rng,
    );
    assert!(matches!(err, Err(Error::ShapeMismatch { .. })));
}

/// Returns NaN scores once `σ̄` drops below a threshold.
struct NanBelow {
    inner: Dedup<Tabular<f64, Cpu>>,
    threshold: f64,
}

impl ScoreModel for NanBelow {
    type Elem = f64;
    type Device = Cpu;

    fn num_states(&self) -> usize {
        self.inner.num_states()
    }
    fn max_len(&self) -> Option<usize> {
        self.inner.max_len()
    }
    fn params(&self) -> &ParamStore<f64, Cpu> {
        self.inner.params()
    }
    fn params_mut(&mut self) -> &mut ParamStore<f64, Cpu> {
        self.inner.params_mut()
    }
    fn forward_with<T: Tape<f64, Cpu>>(
        &self,
        params: &ParamStore<f64, Cpu>,
        tokens: &Tokens<Cpu>,
        sigma_bar: &[f64],
        tape: T,
    ) -> crate::Result<LogScores<f64, Cpu, T>> {
        let out = self.inner.forward_with(params, tokens, sigma_bar, tape)?;
        Ok(if sigma_bar.iter().any(|&s| s < self.threshold) {
            out * f64::NAN
        } else {
            out
        })
    }
}

#[test]
fn nan_scores_are_reported_with_the_step_index() {
    let graph = Absorbing::with_tokens(TOKENS).unwrap();
    let schedule = LogLinear::default();
    // Grid of 10 steps: t_k = 1 − k(1 − 1e-5)/10; the first t below 0.45 is t_6 ≈ 0.4.
    let model = NanBelow {
        inner: oracle(&graph),
        threshold: schedule.total(0.45),
    };
    let cfg = SamplerConfig {
        steps: 10,
        ..SamplerConfig::default()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let err = sample(
        &Policy::current(&model),
        &Diffusion::new(graph, schedule),
        &cfg,
        (3, LEN),
        None,
        &mut rng,
    );
    match err {
        Err(Error::NonFinite { index, value, .. }) => {
            assert_eq!(index, 6);
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
}
