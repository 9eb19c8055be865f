//! Parameter-efficient fine-tuning: low-rank adapters (LoRA, Hu et al. 2021) on chosen weight
//! matrices and full training of a chosen subset of parameters (TexForce's partial fine-tuning), every
//! other weight frozen.
//!
//! [`Lora<M>`] wraps any [`ScoreModel`] `M`. Its [`ScoreModel::params`] are only the trainable tensors
//! (the adapters `A`, `B` and copies of the parameters named in [`LoraConfig::train`]); the frozen base
//! weights live inside the wrapper. Every trainer, the optimiser (whose AdamW state is then two moments
//! per *trainable* scalar), snapshots, the reference model and checkpoints work unchanged on it.
//!
//! For a target weight `W ∈ ℝ^{d_in×d_out}` (sepo's layout, `y = x W`; torch's is the transpose), rank
//! `r` and scale `α`, the adapted weight is
//!
//! ```text
//! W' = W + (α/r)·A B,   A ∈ ℝ^{d_in×r} ~ U(±1/√d_in) (Kaiming-uniform, a = √5, as peft),   B ∈ ℝ^{r×d_out} = 0
//! ```
//!
//! so `y = x W' = x W + (α/r)(x A) B` and the adapted model starts equal to the base. Each target adds
//! `r·(d_in + d_out)` trainable scalars. In peft's torch layout `A_torch = Aᵀ`, `B_torch = Bᵀ`.
//!
//! **How the forward stays the base model's.** Each forward builds `W'` as a recorded tensor op on the
//! adapters, detaches the result (keeping its id) into a copy of the base store, runs the base model's
//! own forward on that store and merges the adapters' tape into the output's. The base forward records
//! `∂L/∂W'` against `W'`'s id; dfdx runs merged tapes in creation order, so the adapter ops run after
//! and turn it into `∂L/∂A = (α/r)·∂L/∂W' Bᵀ`, `∂L/∂B = (α/r)·Aᵀ ∂L/∂W'`. No architecture needs to know
//! about adapters. The cost is one `d_in×r×d_out` product and one `d_in×d_out` gradient per target per
//! forward, small beside a batch's activations.
//!
//! [`Lora::save_adapters`] writes the trainable tensors alone (safetensors, the config in the header),
//! [`Lora::load_adapters`] puts them back on a base model, and [`Lora::into_merged`] folds them into
//! the base weights (`W ← W + (α/r)·A B`, on the host in f64).

mod file;
pub mod select;
#[cfg(test)]
mod tests;

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::nn::{from_f64, Init, ParamId};
use crate::score::{LogScores, Params, ScoreModel, Tokens};

pub use select::glob_match;

/// The attention (`attn_qkv`, `attn_out`) and MLP (`mlp.0`, `mlp.2`) projections of every block of
/// sepo's DiT ([`crate::score::Transformer`]) and of the imported SEDD/MDLM DiTs, which use the same
/// names.
pub const DIT_PROJECTIONS: [&str; 4] = [
    "blocks.*.attn_qkv.weight",
    "blocks.*.attn_out.weight",
    "blocks.*.mlp.0.weight",
    "blocks.*.mlp.2.weight",
];

/// The σ̄-conditioning path of the DiT: the σ̄ embedding MLP and every adaLN modulation (blocks and
/// final layer), the part TexForce-style partial fine-tuning trains.
pub const DIT_SIGMA_PATH: [&str; 3] = [
    "sigma_map.*",
    "blocks.*.adaLN_modulation.*",
    "output_layer.adaLN_modulation.*",
];

/// What a [`Lora`] adapts and trains: rank-`r` adapters with scale `α/r` on the weights matched by
/// `targets`, full training of the parameters matched by `train`, everything else frozen. Patterns are
/// parameter names with `*` wildcards ([`glob_match`]); each must match at least one parameter.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraConfig {
    /// Adapter rank `r ≥ 1` (ignored when `targets` is empty).
    pub rank: usize,
    /// Scale numerator `α > 0`: the update is `(α/r)·A B`.
    pub alpha: f64,
    /// Weight matrices (rank-2 parameters) that get adapters.
    pub targets: Vec<String>,
    /// Parameters trained in full (copied into the trainable store); must not overlap `targets`.
    pub train: Vec<String>,
}

impl LoraConfig {
    /// Rank-`rank` adapters with scale `alpha` on the DiT's attention and MLP projections
    /// ([`DIT_PROJECTIONS`]); nothing else trained.
    pub fn dit(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            targets: DIT_PROJECTIONS.iter().map(|s| s.to_string()).collect(),
            train: Vec::new(),
        }
    }

    /// No adapters: only the parameters matched by `patterns` train (TexForce's partial fine-tuning),
    /// e.g. [`DIT_SIGMA_PATH`].
    pub fn freeze_all_but(patterns: &[&str]) -> Self {
        Self {
            rank: 1,
            alpha: 1.0,
            targets: Vec::new(),
            train: patterns.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The adapters' scale `α/r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Validates rank and α.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("rank", self.rank)?;
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::invalid(
                "alpha",
                self.alpha,
                "must be finite and > 0",
            ));
        }
        if self.targets.is_empty() && self.train.is_empty() {
            return Err(Error::invalid(
                "LoraConfig",
                "no targets, nothing trained",
                "name at least one weight to adapt or one parameter to train",
            ));
        }
        Ok(())
    }
}

/// One adapted weight: its index in the base store and its two factors in the trainable store.
#[derive(Debug, Clone, Copy)]
struct Link {
    base: usize,
    a: ParamId,
    b: ParamId,
}

/// A score model with frozen weights, low-rank adapters and optionally a trained subset (module
/// docs): `W' = W + (α/r)·A B` on each target.
#[derive(Clone)]
pub struct Lora<M: ScoreModel> {
    base: M,
    config: LoraConfig,
    adapters: Params<M>,
    links: Vec<Link>,
    trained: Vec<(usize, ParamId)>,
}

impl<M: ScoreModel> std::fmt::Debug for Lora<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lora")
            .field("config", &self.config)
            .field("trainable", &self.adapters.num_elements())
            .field("frozen", &self.base.params().num_elements())
            .finish()
    }
}

/// The trainable name of the adapter factor `which` (`lora_A`, `lora_B`) of base parameter `name`:
/// `blocks.0.attn_qkv.weight` → `blocks.0.attn_qkv.lora_A.weight` (peft's naming, without its
/// `base_model.model.` prefix).
fn adapter_name(name: &str, which: &str) -> String {
    match name.strip_suffix(".weight") {
        Some(module) => format!("{module}.{which}.weight"),
        None => format!("{name}.{which}"),
    }
}

impl<M: ScoreModel> Lora<M> {
    /// Wraps `base`: adapters on every weight matched by `config.targets` (`A` seeded by `seed`, `B = 0`)
    /// and trainable copies of the parameters matched by `config.train`. A pattern matching nothing, a
    /// target that is not a matrix, or a parameter both adapted and trained is an error.
    pub fn new(base: M, config: LoraConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let store = base.params();
        let targets = select::select(store, &config.targets, "LoRA target")?;
        let trained = select::select(store, &config.train, "trained parameter")?;
        if let Some(&i) = targets.iter().find(|i| trained.contains(i)) {
            return Err(Error::invalid(
                "trained parameter",
                &store.params()[i].name,
                "is also a LoRA target: adapt it or train it, not both",
            ));
        }
        let mut adapters = Params::<M>::new(store.device(), seed);
        let mut links = Vec::with_capacity(targets.len());
        for &i in &targets {
            let p = &store.params()[i];
            let (d_in, d_out) = match p.shape[..] {
                [d_in, d_out] => (d_in, d_out),
                _ => {
                    return Err(Error::invalid(
                        "LoRA target",
                        &p.name,
                        format!("has shape {:?}; adapters need a matrix", p.shape),
                    ))
                }
            };
            let a = adapters.add(
                adapter_name(&p.name, "lora_A"),
                &[d_in, config.rank],
                Init::Uniform {
                    bound: 1.0 / (d_in as f64).sqrt(),
                },
            )?;
            let b = adapters.add(
                adapter_name(&p.name, "lora_B"),
                &[config.rank, d_out],
                Init::Zeros,
            )?;
            links.push(Link { base: i, a, b });
        }
        let mut copies = Vec::with_capacity(trained.len());
        for &i in &trained {
            let p = &store.params()[i];
            let id = adapters.add(p.name.clone(), &p.shape, Init::Zeros)?;
            adapters.set_values(id, p.tensor.as_vec())?;
            copies.push((i, id));
        }
        Ok(Self {
            base,
            config,
            adapters,
            links,
            trained: copies,
        })
    }

    /// Only the parameters matched by `patterns` train, every other one frozen:
    /// [`Lora::new`] with [`LoraConfig::freeze_all_but`].
    pub fn freeze_all_but(base: M, patterns: &[&str]) -> Result<Self> {
        Self::new(base, LoraConfig::freeze_all_but(patterns), 0)
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The base model (frozen weights).
    pub fn base(&self) -> &M {
        &self.base
    }

    /// Number of trainable scalars: `Σ_targets r·(d_in + d_out)` plus the sizes of the trained
    /// parameters.
    pub fn trainable(&self) -> usize {
        self.adapters.num_elements()
    }

    /// Number of frozen scalars (the base model's parameters, the trained ones included: their
    /// trainable copies replace them).
    pub fn frozen(&self) -> usize {
        self.base.params().num_elements()
    }

    /// Names of the base parameters that carry adapters, in store order.
    pub fn targets(&self) -> Vec<&str> {
        let p = self.base.params().params();
        self.links.iter().map(|l| p[l.base].name.as_str()).collect()
    }

    /// The base store with every adapted weight replaced by `W + (α/r)·A B` (recorded on a tape of
    /// type `T` that is returned beside it, the result itself detached with its id kept) and every
    /// trained parameter by its trainable tensor from `params`.
    fn effective<T: Tape<M::Elem, M::Device>>(&self, params: &Params<M>) -> (Params<M>, T) {
        let mut store = self.base.params().clone();
        let mut tape = T::default();
        let scale = from_f64::<M::Elem>(self.config.scale());
        for link in &self.links {
            let w = store.params()[link.base].tensor.clone();
            let n = w.shape().0;
            let delta = params
                .matrix(link.a)
                .put_tape(T::default())
                .matmul(params.matrix(link.b))
                * scale;
            let (w_eff, t) = (delta.reshape_like(&(n,)) + w).split_tape();
            tape = tape.merge(t);
            store.replace(link.base, w_eff);
        }
        for &(base, id) in &self.trained {
            store.replace(base, params.vector(id));
        }
        (store, tape)
    }

    /// The weights the base architecture runs with under trainable parameters `params` (adapters
    /// applied, trained parameters in place), detached: e.g. to evaluate a snapshot as a plain model.
    pub fn effective_params(&self, params: &Params<M>) -> Params<M> {
        self.effective::<NoneTape>(params).0
    }
}

impl<M: ScoreModel> ScoreModel for Lora<M> {
    type Elem = M::Elem;
    type Device = M::Device;

    fn num_states(&self) -> usize {
        self.base.num_states()
    }

    fn max_len(&self) -> Option<usize> {
        self.base.max_len()
    }

    /// The trainable tensors only (adapters and trained copies).
    fn params(&self) -> &Params<M> {
        &self.adapters
    }

    fn params_mut(&mut self) -> &mut Params<M> {
        &mut self.adapters
    }

    fn time_conditioned(&self) -> bool {
        self.base.time_conditioned()
    }

    fn forward_with<T: Tape<M::Elem, M::Device>>(
        &self,
        params: &Params<M>,
        tokens: &Tokens<M::Device>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<M::Elem, M::Device, T>> {
        let (store, adapter_tape) = self.effective::<T>(params);
        let (out, tape) = self
            .base
            .forward_with(&store, tokens, sigma_bar, tape)?
            .split_tape();
        Ok(out.put_tape(tape.merge(adapter_tape)))
    }

    fn exact_log_prob(
        &self,
        params: &Params<M>,
        sequences: &[usize],
        batch: usize,
    ) -> Option<Vec<f64>> {
        self.base
            .exact_log_prob(&self.effective_params(params), sequences, batch)
    }

    fn check_input(
        &self,
        tokens: &[usize],
        batch: usize,
        seq_len: usize,
        sigma_bar: &[f64],
    ) -> Result<()> {
        self.base.check_input(tokens, batch, seq_len, sigma_bar)
    }
}
