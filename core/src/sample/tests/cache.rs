//! MDLM's cache (`cache.rs`): on a model that is not time-conditioned, the samplers call the network
//! only for the sequences that changed, and draw the same samples bit for bit.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::graph::Absorbing;
use crate::nn::ParamStore;
use crate::schedule::LogLinear;
use crate::score::{LogScores, Tokens};
use crate::Diffusion;
use crate::Policy;

/// The oracle's scores at one fixed `σ̄ = 0.7` whatever `σ̄` it is asked at (so not time-conditioned),
/// declaring `time_conditioned = conditioned`, counting the sequences it forwards.
struct Frozen {
    inner: Dedup<Tabular<f64, Cpu>>,
    conditioned: bool,
    forwarded: AtomicU64,
}

impl ScoreModel for Frozen {
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
    fn time_conditioned(&self) -> bool {
        self.conditioned
    }
    fn forward_with<T: Tape<f64, Cpu>>(
        &self,
        params: &ParamStore<f64, Cpu>,
        tokens: &Tokens<Cpu>,
        sigma_bar: &[f64],
        tape: T,
    ) -> crate::Result<LogScores<f64, Cpu, T>> {
        self.forwarded
            .fetch_add(sigma_bar.len() as u64, Ordering::Relaxed);
        self.inner
            .forward_with(params, tokens, &vec![0.7; sigma_bar.len()], tape)
    }
}

/// Grid (Tweedie and Euler, 64 steps, chunks of 16) and first-hitting, with a prompt: the cached
/// sampler returns the uncached sampler's tokens and recorded log-probabilities bit for bit; on the grid
/// with at most `B·L` forwards instead of `B·(steps + 1)`.
#[test]
fn the_cached_sampler_draws_the_same_samples_with_fewer_forwards() {
    let graph = Absorbing::with_tokens(TOKENS).unwrap();
    let diffusion = Diffusion::new(graph, LogLinear::default());
    let cond = Condition::prefix(&[1], LEN);
    let grid = |predictor| SamplerConfig {
        steps: 64,
        predictor,
        max_batch: 16,
        ..SamplerConfig::default()
    };
    let kinds = [
        SamplerKind::Grid(grid(Predictor::Tweedie)),
        SamplerKind::Grid(grid(Predictor::Euler)),
        SamplerKind::FirstHitting(grid(Predictor::Tweedie)),
    ];
    let batch = 40;
    for kind in kinds {
        let draw = |conditioned: bool| {
            let model = Frozen {
                inner: oracle(&graph),
                conditioned,
                forwarded: AtomicU64::new(0),
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(4);
            let s = kind
                .draw(
                    &Policy::current(&model),
                    &diffusion,
                    (batch, LEN),
                    Some(&cond),
                    true,
                    &mut rng,
                )
                .unwrap();
            let log_probs: Vec<Vec<u64>> = s
                .trajectory
                .unwrap()
                .steps
                .iter()
                .map(|st| st.log_prob.iter().map(|x| x.to_bits()).collect())
                .collect();
            (s.tokens, log_probs, model.forwarded.load(Ordering::Relaxed))
        };
        let (tokens, log_probs, uncached) = draw(true);
        let (cached_tokens, cached_log_probs, cached) = draw(false);
        assert_eq!(cached_tokens, tokens, "{kind:?}");
        assert_eq!(cached_log_probs, log_probs, "{kind:?}");
        match kind {
            SamplerKind::Grid(cfg) => {
                assert_eq!(uncached, (batch * (cfg.steps + 1)) as u64);
                // One forward at the start and one after each change: at most 3 free positions.
                assert!(cached <= (batch * LEN) as u64, "{kind:?}: {cached}");
            }
            // Every first-hitting step changes every sequence that has a masked position left: the
            // cache can only spare the idle ones, and here none idles.
            SamplerKind::FirstHitting(_) => assert_eq!(cached, uncached),
        }
    }
}
