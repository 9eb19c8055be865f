//! A test wrapper that evaluates its inner model once per *distinct* (sequence, σ̄) row of a batch.
//!
//! On the 4^4 space a grid step has at most 5^4 = 625 distinct states however large the batch, so
//! wrapping the exact (but per-row costly, differentiable) `Tabular` oracle this way makes 50,000-sample
//! tests cheap without changing a single score: every row is `Tabular`'s own output, gathered.

use std::collections::HashMap;

use dfdx::prelude::*;

use crate::nn::ParamStore;
use crate::score::{LogScores, ScoreModel, Tokens};

pub(crate) struct Dedup<M>(pub(crate) M);

impl<E: Dtype, D: Device<E>, M: ScoreModel<Elem = E, Device = D>> ScoreModel for Dedup<M> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.0.num_states()
    }

    fn max_len(&self) -> Option<usize> {
        self.0.max_len()
    }

    fn params(&self) -> &ParamStore<E, D> {
        self.0.params()
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        self.0.params_mut()
    }

    fn time_conditioned(&self) -> bool {
        self.0.time_conditioned()
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> crate::Result<LogScores<E, D, T>> {
        let (b, l) = *tokens.shape();
        let ids = tokens.as_vec();
        let mut rows: HashMap<(&[usize], u64), usize> = HashMap::new();
        let mut unique_tokens = Vec::new();
        let mut unique_sigma = Vec::new();
        let index: Vec<usize> = (0..b)
            .map(|i| {
                let key = (&ids[i * l..(i + 1) * l], sigma_bar[i].to_bits());
                *rows.entry(key).or_insert_with(|| {
                    unique_tokens.extend_from_slice(key.0);
                    unique_sigma.push(sigma_bar[i]);
                    unique_sigma.len() - 1
                })
            })
            .collect();
        let dev = tokens.device().clone();
        let unique = dev.tensor_from_vec(unique_tokens, (unique_sigma.len(), l));
        let scores = self.0.forward_with(params, &unique, &unique_sigma, tape)?;
        Ok(scores.gather(dev.tensor_from_vec(index, (b,))))
    }
}
