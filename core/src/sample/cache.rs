//! MDLM's cache, per sequence: a model that is not time-conditioned
//! ([`ScoreModel::time_conditioned`] `== false`) returns the same log-scores for a sequence whatever
//! `σ̄`, so a sequence whose tokens did not change since its last forward keeps its scores, and only the
//! sequences that changed go through the network.
//!
//! On a fine grid most steps unmask nothing in most sequences (a masked position unmasks with
//! probability `≈ Δt·σ/(e^{σ̄} − 1)` per step, docs/sampling.md), so the forwards fall from
//! `B·(steps + 1)` to about `B·min(steps + 1, L + 1)`. The cached scores are the network's own outputs
//! for those tokens, gathered: samples are bit for bit those of the uncached sampler (tested), provided
//! a sequence's output does not depend on the other sequences of its batch.

use dfdx::prelude::*;

use super::trajectory::Step;
use crate::error::{Error, Result};
use crate::nn::ParamStore;
use crate::score::{LogScores, ScoreModel};

/// The last log-scores `[B, L, N]` of a population and the tokens they were computed at.
#[derive(Debug)]
pub(crate) struct ScoreCache<E: Dtype, D: Device<E>> {
    tokens: Vec<usize>,
    scores: Option<LogScores<E, D, NoneTape>>,
}

impl<E: Dtype, D: Device<E>> ScoreCache<E, D> {
    /// An empty cache (the first step forwards every sequence).
    pub(crate) fn new() -> Self {
        Self {
            tokens: Vec::new(),
            scores: None,
        }
    }

    /// The log-scores of `step.before` (inputs already checked): the cached rows of the sequences whose
    /// tokens did not change, one forward of the others.
    pub(crate) fn log_scores<M>(
        &mut self,
        model: &M,
        params: &ParamStore<E, D>,
        step: &Step,
    ) -> Result<LogScores<E, D, NoneTape>>
    where
        M: ScoreModel<Elem = E, Device = D>,
    {
        let (b, l) = (step.batch, step.seq_len);
        let before = &step.before;
        let changed: Vec<usize> = match &self.scores {
            Some(s) if self.tokens.len() == b * l && s.shape().0 == b => (0..b)
                .filter(|&s| self.tokens[s * l..(s + 1) * l] != before[s * l..(s + 1) * l])
                .collect(),
            _ => (0..b).collect(),
        };
        let cached = match (&self.scores, changed.len()) {
            (Some(scores), 0) => return Ok(scores.clone()),
            (Some(scores), k) if k < b => Some(scores.clone()),
            _ => None,
        };
        let dev = params.device().clone();
        let tokens: Vec<usize> = changed
            .iter()
            .flat_map(|&s| before[s * l..(s + 1) * l].iter().copied())
            .collect();
        let sigma: Vec<f64> = changed.iter().map(|&s| step.model_sigma_bar()[s]).collect();
        let ids = dev
            .try_tensor_from_vec(tokens, (changed.len(), l))
            .map_err(Error::device("score cache (tokens)"))?;
        let fresh = model.forward_with(params, &ids, &sigma, NoneTape)?;
        let scores = match cached {
            None => fresh,
            Some(cached) => {
                // Rows 0..b are the cache, b.. the fresh forwards; sequence s reads its own.
                let mut next = 0;
                let index: Vec<usize> = (0..b)
                    .map(|s| {
                        if changed.get(next) == Some(&s) {
                            next += 1;
                            b + next - 1
                        } else {
                            s
                        }
                    })
                    .collect();
                let index = dev
                    .try_tensor_from_vec(index, (b,))
                    .map_err(Error::device("score cache (rows)"))?;
                (cached, fresh).concat_along(Axis::<0>).gather(index)
            }
        };
        self.tokens.clone_from(before);
        self.scores = Some(scores.clone());
        Ok(scores)
    }
}
