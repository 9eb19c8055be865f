//! A score model that counts its own evaluations, so that trainers which spend the network differently
//! (fresh diffusion sampling, persistent chains, masked clean scores) are compared on one honest unit.
//!
//! One *evaluation* is one forward on one sequence: a call of [`ScoreModel::forward_with`] on tokens
//! `[B, L]` adds `B`, whatever weights it reads (θ, a snapshot, the reference). A call recorded on an
//! owned tape (one that will be back-propagated) also adds `B` to [`Counting::taped`]: the backward pass is
//! *not* a separate evaluation, and reporting `taped` beside the total lets a reader price it (a backward
//! costs about two forwards).

use std::sync::atomic::{AtomicU64, Ordering};

use dfdx::prelude::*;

use super::EnergyModel;
use crate::nn::ParamStore;
use crate::score::{LogScores, ScoreModel, Tokens};

/// `inner` with counters of its forwards: `evaluations = Σ_calls B`, `taped = Σ_{taped calls} B`.
#[derive(Debug)]
pub struct Counting<M> {
    /// The wrapped model.
    pub inner: M,
    evaluations: AtomicU64,
    taped: AtomicU64,
}

impl<M: Clone> Clone for Counting<M> {
    /// A copy with the same counts.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            evaluations: AtomicU64::new(self.evaluations()),
            taped: AtomicU64::new(self.taped()),
        }
    }
}

impl<M> Counting<M> {
    /// Wraps `inner` with both counters at 0.
    pub fn new(inner: M) -> Self {
        Self {
            inner,
            evaluations: AtomicU64::new(0),
            taped: AtomicU64::new(0),
        }
    }

    /// Sequences forwarded since the start (or the last [`Counting::reset`]): `Σ_calls B`.
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Ordering::Relaxed)
    }

    /// Of those, the sequences forwarded on an owned tape (later back-propagated): `Σ_{taped calls} B`.
    pub fn taped(&self) -> u64 {
        self.taped.load(Ordering::Relaxed)
    }

    /// Sets both counters to 0.
    pub fn reset(&self) {
        self.evaluations.store(0, Ordering::Relaxed);
        self.taped.store(0, Ordering::Relaxed);
    }

    /// The wrapped model.
    pub fn into_inner(self) -> M {
        self.inner
    }

    /// Counts one forward of `batch` sequences, also as taped when `taped`.
    fn count(&self, batch: usize, taped: bool) {
        let b = batch as u64;
        self.evaluations.fetch_add(b, Ordering::Relaxed);
        if taped {
            self.taped.fetch_add(b, Ordering::Relaxed);
        }
    }
}

impl<E: Dtype, D: Device<E>, M: ScoreModel<Elem = E, Device = D>> ScoreModel for Counting<M> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.inner.num_states()
    }

    fn max_len(&self) -> Option<usize> {
        self.inner.max_len()
    }

    fn params(&self) -> &ParamStore<E, D> {
        self.inner.params()
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        self.inner.params_mut()
    }

    fn description(&self) -> Option<crate::score::ModelDescription> {
        self.inner.description()
    }

    /// The inner model's: counting does not change what the scores depend on.
    fn time_conditioned(&self) -> bool {
        self.inner.time_conditioned()
    }

    /// The inner forward; adds `B` to the evaluations (and to `taped` when `T` owns a tape).
    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> crate::error::Result<LogScores<E, D, T>> {
        self.count(tokens.shape().0, T::OWNS_TAPE);
        self.inner.forward_with(params, tokens, sigma_bar, tape)
    }

    /// The inner model's checks (an `Mlp` accepts only its own length, for one).
    fn check_input(
        &self,
        tokens: &[usize],
        batch: usize,
        seq_len: usize,
        sigma_bar: &[f64],
    ) -> crate::error::Result<()> {
        self.inner.check_input(tokens, batch, seq_len, sigma_bar)
    }

    fn exact_log_prob(
        &self,
        params: &ParamStore<E, D>,
        sequences: &[usize],
        batch: usize,
    ) -> Option<Vec<f64>> {
        self.inner.exact_log_prob(params, sequences, batch)
    }
}

impl<M: EnergyModel> EnergyModel for Counting<M> {
    /// The inner energy head; adds `B` to the evaluations when it exists.
    fn log_potential_with<T: Tape<M::Elem, M::Device>>(
        &self,
        params: &super::Params<M>,
        tokens: &Tokens<M::Device>,
        tape: T,
    ) -> crate::Result<Option<Tensor<(usize,), M::Elem, M::Device, T>>> {
        let Some(out) = self.inner.log_potential_with(params, tokens, tape)? else {
            return Ok(None);
        };
        self.count(tokens.shape().0, T::OWNS_TAPE);
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Absorbing, Graph};
    use crate::score::Tabular;

    #[test]
    fn counts_rows_and_taped_rows() {
        let dev = Cpu::default();
        let graph = Absorbing::with_tokens(2).unwrap();
        let model = Tabular::<f64, Cpu>::new(&graph, 2, vec![0.0; 4], &dev).unwrap();
        let m = Counting::new(model);
        let ids = dev.tensor_from_vec(vec![0, 1, 1, 0, 2, 2], (3, 2));
        m.forward(&ids, &[0.1; 3], NoneTape).unwrap();
        assert_eq!((m.evaluations(), m.taped()), (3, 0));
        m.forward(&ids, &[0.1; 3], OwnedTape::<f64, Cpu>::default())
            .unwrap();
        assert_eq!((m.evaluations(), m.taped()), (6, 3));
        let clean = dev.tensor_from_vec(vec![0, 1], (1, 2));
        m.log_potential_with(m.params(), &clean, NoneTape).unwrap();
        assert_eq!((m.evaluations(), m.taped()), (7, 3));
        m.reset();
        assert_eq!((m.evaluations(), m.taped()), (0, 0));
        assert_eq!(m.num_states(), graph.num_states());
    }
}
