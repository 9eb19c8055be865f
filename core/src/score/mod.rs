//! Score networks: `s_θ(x, σ̄)_{l,v} ≈ p_t(x^{l←v}) / p_t(x)`, the *concrete score*, in log space.
//!
//! A [`ScoreModel`] is an architecture (layer ids, widths) evaluated against a [`ParamStore`]: the same
//! architecture serves the trainable weights θ, a frozen snapshot θ_old and the reference model, each a
//! store of its own. Outputs are log-ratios `[B, L, N]` with `0` at `v = x_l` (the ratio of a sequence to
//! itself).

pub mod counting;
pub mod description;
pub mod dnaconv;
pub mod energy;
pub mod head;
pub mod import;
pub mod lora;
pub mod mlp;
pub mod reading;
pub mod tabular;
#[cfg(test)]
pub(crate) mod testing;
pub mod transformer;
pub mod view;

pub use counting::Counting;
pub use description::{dtype_name, ModelDescription, ModelKind};
pub use energy::EnergyModel;
pub use head::ScoreHead;
pub use lora::{Lora, LoraConfig};
pub use mlp::{Mlp, MlpConfig};
pub use reading::CleanScores;
pub use tabular::Tabular;
pub use transformer::{Transformer, TransformerConfig};
pub use view::Policy;

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::ParamStore;

/// Token ids `[B, L]` on the device.
pub type Tokens<D> = Tensor<(usize, usize), usize, D>;

/// Log concrete scores `[B, L, N]`.
pub type LogScores<E, D, T> = Tensor<(usize, usize, usize), E, D, T>;

/// The parameter store of a [`ScoreModel`] `M`: its own weights, a snapshot or a reference (same layout).
pub type Params<M> = ParamStore<<M as ScoreModel>::Elem, <M as ScoreModel>::Device>;

/// Log concrete scores `[B, L, N]` of a [`ScoreModel`] `M`, recorded on tape `T`.
pub type ModelLogScores<M, T> = LogScores<<M as ScoreModel>::Elem, <M as ScoreModel>::Device, T>;

/// Gradients with respect to the parameters of a [`ScoreModel`] `M`.
pub type ModelGrads<M> = crate::nn::Grads<<M as ScoreModel>::Elem, <M as ScoreModel>::Device>;

/// One value per sequence `[B]` (a log-potential, a log-probability) of a [`ScoreModel`] `M` on tape
/// `T`.
pub type ModelValues<M, T> =
    Tensor<(usize,), <M as ScoreModel>::Elem, <M as ScoreModel>::Device, T>;

/// A network predicting log concrete scores, generic over the tape; its element type and device are
/// associated types (burn's `Backend` idea), so code generic over a model names one parameter, `M`.
pub trait ScoreModel {
    /// The element type of its parameters and activations (`f32`, `f64`).
    type Elem: Dtype;
    /// The device its tensors live on (`Cpu`, `Cuda`).
    type Device: Device<Self::Elem>;

    /// Number of states `N` it scores (the graph's `num_states`).
    fn num_states(&self) -> usize;

    /// Longest sequence accepted (`None`: any length).
    fn max_len(&self) -> Option<usize>;

    /// The model's own (trainable) parameters.
    fn params(&self) -> &ParamStore<Self::Elem, Self::Device>;

    /// Mutable access for optimisers and checkpoint loading.
    fn params_mut(&mut self) -> &mut ParamStore<Self::Elem, Self::Device>;

    /// What a checkpoint's `config.json` records about this model, so that trainers generic over
    /// any score model save directories [`crate::train::Checkpoint::load_model`] can rebuild: `Some`
    /// for the architectures implementing [`crate::train::ModelKind`], `None` (the default, no
    /// `config.json`) for the others.
    fn description(&self) -> Option<ModelDescription> {
        None
    }

    /// Whether the log-scores depend on `σ̄`. `false` promises that [`ScoreModel::forward_with`] gives a
    /// sequence the same outputs, bit for bit, at every `sigma_bar` and in every batch, so the samplers
    /// reuse a sequence's scores while its tokens do not change (MDLM's cache). Default `true`.
    fn time_conditioned(&self) -> bool {
        true
    }

    /// `log s(x, σ̄)_{l,v}` for `tokens [B, L]` and per-sequence total noise `sigma_bar [B]`, evaluated with
    /// the weights in `params` (this model's, a snapshot's or a reference's: same layout), recording on
    /// `tape`. Inputs must already be validated (see [`ScoreModel::check_input`]). A failed upload of
    /// host data (position ids, time features, masks) is [`crate::Error::Device`].
    ///
    /// # Panics
    /// May panic (an index out of bounds, a shape assertion) on input that
    /// [`ScoreModel::check_input`] refuses: a token `≥ N`, a length the model does not accept, a σ̄
    /// per sequence missing. [`ScoreModel::try_forward_with`] is the checked form.
    fn forward_with<T: Tape<Self::Elem, Self::Device>>(
        &self,
        params: &ParamStore<Self::Elem, Self::Device>,
        tokens: &Tokens<Self::Device>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<Self::Elem, Self::Device, T>>;

    /// [`ScoreModel::forward_with`] on the model's own parameters (unchecked: see its panics;
    /// [`ScoreModel::try_forward`] is the checked form).
    fn forward<T: Tape<Self::Elem, Self::Device>>(
        &self,
        tokens: &Tokens<Self::Device>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<Self::Elem, Self::Device, T>> {
        self.forward_with(self.params(), tokens, sigma_bar, tape)
    }

    /// Checked [`ScoreModel::forward_with`]: reads `tokens` back to the host and validates them and
    /// `sigma_bar` with [`ScoreModel::check_input`] (ids `< N`, an accepted length, one finite σ̄ ≥ 0
    /// per sequence) before the forward, so bad input is a typed error rather than a panic. The
    /// read-back costs one copy of the `B·L` ids; sepo's own loops validate once at their entry and
    /// call the unchecked form.
    fn try_forward_with<T: Tape<Self::Elem, Self::Device>>(
        &self,
        params: &ParamStore<Self::Elem, Self::Device>,
        tokens: &Tokens<Self::Device>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<Self::Elem, Self::Device, T>> {
        let (batch, seq_len) = *tokens.shape();
        self.check_input(&tokens.as_vec(), batch, seq_len, sigma_bar)?;
        self.forward_with(params, tokens, sigma_bar, tape)
    }

    /// Checked [`ScoreModel::forward`]: [`ScoreModel::try_forward_with`] on the model's own
    /// parameters.
    fn try_forward<T: Tape<Self::Elem, Self::Device>>(
        &self,
        tokens: &Tokens<Self::Device>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<Self::Elem, Self::Device, T>> {
        self.try_forward_with(self.params(), tokens, sigma_bar, tape)
    }

    /// Exact `log π(x)` of clean sequences (flat `[batch, L]`) under `params`, for models whose
    /// distribution can be enumerated ([`Tabular`]); `None` for networks. Powers the `Enumerate`
    /// neighbour weights and the exactness tests.
    fn exact_log_prob(
        &self,
        params: &ParamStore<Self::Elem, Self::Device>,
        sequences: &[usize],
        batch: usize,
    ) -> Option<Vec<f64>> {
        let _ = (params, sequences, batch);
        None
    }

    /// Validates user input: `tokens` is `[batch, seq_len]` flat, every id `< N`, the length allowed,
    /// `sigma_bar` has one finite non-negative entry per sequence.
    fn check_input(
        &self,
        tokens: &[usize],
        batch: usize,
        seq_len: usize,
        sigma_bar: &[f64],
    ) -> Result<()> {
        crate::check::tokens(tokens, batch, seq_len, self.num_states())?;
        crate::check::sigmas(sigma_bar, batch)?;
        if let Some(max) = self.max_len() {
            if seq_len > max {
                return Err(crate::Error::ShapeMismatch {
                    op: "ScoreModel::check_input (sequence length)",
                    expected: vec![max],
                    got: vec![seq_len],
                });
            }
        }
        Ok(())
    }

    /// Checked, tape-free evaluation from host data: log-scores `[B·L·N]` on the host in `f64`.
    fn log_scores_host(
        &self,
        tokens: &[usize],
        batch: usize,
        seq_len: usize,
        sigma_bar: &[f64],
    ) -> Result<Vec<f64>> {
        self.check_input(tokens, batch, seq_len, sigma_bar)?;
        let dev = self.params().device();
        let ids = crate::nn::upload(dev, tokens.to_vec(), (batch, seq_len), "log_scores_host")?;
        Ok(crate::nn::to_f64s(
            &self.forward(&ids, sigma_bar, NoneTape)?.as_vec(),
        ))
    }
}

/// Tokens per tape-free forward in [`log_scores_chunked`]: bounds activation memory (attention holds
/// `rows·heads·L²` entries per layer) whatever the number of rows.
pub const FORWARD_TOKENS: usize = 1 << 16;

/// Tape-free log-scores `[rows·L·N]` on the host (`f64`) of `tokens [rows, L]` under `params`, with
/// `σ̄` per row, in chunks of at most `max(1, FORWARD_TOKENS / L)` rows. Inputs are the caller's own
/// derived sequences (already checked), so shapes are asserted, not returned as errors; a failed upload
/// or forward is [`crate::Error::Device`].
pub fn log_scores_chunked<M>(
    model: &M,
    params: &Params<M>,
    tokens: &[usize],
    seq_len: usize,
    sigma_bar: &[f64],
) -> Result<Vec<f64>>
where
    M: ScoreModel + ?Sized,
{
    let rows = sigma_bar.len();
    assert_eq!(tokens.len(), rows * seq_len, "log_scores_chunked: shape");
    let chunk = (FORWARD_TOKENS / seq_len.max(1)).max(1);
    let dev = params.device().clone();
    let mut out = Vec::with_capacity(rows * seq_len * model.num_states());
    for start in (0..rows).step_by(chunk) {
        let end = (start + chunk).min(rows);
        let ids = crate::nn::upload(
            &dev,
            tokens[start * seq_len..end * seq_len].to_vec(),
            (end - start, seq_len),
            "log_scores_chunked",
        )?;
        let scores = model.forward_with(params, &ids, &sigma_bar[start..end], NoneTape)?;
        out.extend(crate::nn::to_f64s(&scores.as_vec()));
    }
    Ok(out)
}
