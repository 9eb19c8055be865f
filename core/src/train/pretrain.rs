//! Pretraining a score model with the denoising score entropy.
//!
//! One step: draw a minibatch of clean sequences, `t ~ U(ε, 1)`, corrupt, DWDSE loss, backward, clip
//! the global gradient norm, AdamW at the scheduled learning rate, optional EMA of the weights.

use dfdx::prelude::*;
use rand::Rng;

use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::{dwdse_loss, Dwdse};
use crate::nn::io::{adamw_to_bytes, load_adamw_bytes};
use crate::nn::{AdamW, AdamWState, Ema, Grads, LrSchedule, Optimizer};
use crate::schedule::NoiseSchedule;
use crate::score::ModelDescription;
use crate::score::ModelKind;
use crate::score::ScoreModel;
use crate::train::checkpoint::Checkpoint;
use crate::train::checkpoint::{MODEL_FILE, OPTIMIZER_FILE};
use crate::train::commit::DEFAULT_KEEP_LAST;
use crate::train::{step_rng, MetricsWriter};

/// File name of the EMA weights in a pretraining checkpoint.
pub const EMA_FILE: &str = "ema.safetensors";

/// A corpus of equal-length clean sequences.
#[derive(Debug, Clone)]
pub struct Corpus {
    tokens: Vec<usize>,
    seq_len: usize,
}

impl Corpus {
    /// Validates that every sequence is non-empty, has the same length and uses tokens `< vocab`.
    pub fn new(sequences: &[Vec<usize>], vocab: usize) -> Result<Self> {
        let first = sequences.first().ok_or(Error::Empty {
            op: "Corpus::new",
            what: "a corpus needs at least one sequence",
        })?;
        let seq_len = first.len();
        let tokens: Vec<usize> = sequences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if s.len() == seq_len {
                    Ok(s.as_slice())
                } else {
                    Err(Error::ShapeMismatch {
                        op: "Corpus::new (sequence length)",
                        expected: vec![seq_len],
                        got: vec![i, s.len()],
                    })
                }
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        crate::check::tokens(&tokens, sequences.len(), seq_len, vocab)?;
        Ok(Self { tokens, seq_len })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.tokens.len() / self.seq_len
    }

    /// Whether the corpus is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Sequence length.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Sequence `i`.
    pub fn get(&self, i: usize) -> &[usize] {
        &self.tokens[i * self.seq_len..(i + 1) * self.seq_len]
    }

    /// `batch` sequences drawn uniformly with replacement, flat.
    pub fn sample<R: Rng>(&self, batch: usize, rng: &mut R) -> Vec<usize> {
        (0..batch)
            .flat_map(|_| self.get(rng.gen_range(0..self.len())).to_vec())
            .collect()
    }
}

/// Pretraining hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PretrainConfig {
    /// Sequences per step.
    pub batch_size: usize,
    /// AdamW (its `lr` is the peak rate).
    pub optimizer: AdamW,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// EMA decay of the weights.
    pub ema_decay: Option<f64>,
    /// Time sampling of the loss.
    pub loss: Dwdse,
    /// Run seed (batches and noise of step `i` come from `step_rng(seed, i)`).
    pub seed: u64,
}

impl Default for PretrainConfig {
    /// Batch 64, AdamW lr 3e-4, 100 warm-up steps, clip 1.0, no EMA, `t_min = 1e-3`, seed 0.
    fn default() -> Self {
        Self {
            batch_size: 64,
            optimizer: AdamW::with_lr(3e-4),
            lr_schedule: LrSchedule::Warmup { warmup: 100 },
            grad_clip: Some(1.0),
            ema_decay: None,
            loss: Dwdse::default(),
            seed: 0,
        }
    }
}

impl PretrainConfig {
    /// The optimiser this configuration describes: `optimizer` under `lr_schedule`, clipped at
    /// `grad_clip`.
    pub fn to_optimizer(&self) -> Optimizer {
        Optimizer {
            adamw: self.optimizer,
            schedule: self.lr_schedule,
            clip: self.grad_clip,
        }
    }

    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        crate::check::nonzero("batch_size", self.batch_size)?;
        self.optimizer.check()?;
        self.lr_schedule.check()?;
        if let Some(c) = self.grad_clip {
            crate::check::positive("grad_clip", c)?;
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return Err(Error::invalid("ema_decay", d, "must be in [0, 1)"));
            }
        }
        if !(self.loss.t_min > 0.0 && self.loss.t_min < 1.0) {
            return Err(Error::invalid(
                "t_min",
                self.loss.t_min,
                "must be in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepStats {
    /// Step index (0-based).
    pub step: u64,
    /// Mean `σ(t)`-weighted score entropy of the batch.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub learning_rate: f64,
}

/// A model, its forward process and its optimiser state.
#[derive(Debug)]
pub struct Pretrainer<M: ScoreModel, G: Graph, S: NoiseSchedule> {
    /// The model being trained.
    pub model: M,
    /// The forward process: graph and noise schedule.
    pub diffusion: Diffusion<G, S>,
    /// Hyper-parameters.
    pub config: PretrainConfig,
    /// AdamW moments and step counter.
    pub state: AdamWState<M::Elem, M::Device>,
    /// Exponential moving average of the weights.
    pub ema: Option<Ema<M::Elem, M::Device>>,
}

impl<M: ScoreModel, G: Graph, S: NoiseSchedule> Pretrainer<M, G, S> {
    /// Checks the configuration and that the model scores the graph's states.
    pub fn new(model: M, graph: G, schedule: S, config: PretrainConfig) -> Result<Self> {
        config.check()?;
        schedule.check()?;
        if model.num_states() != graph.num_states() {
            return Err(Error::ShapeMismatch {
                op: "Pretrainer::new (model states vs graph states)",
                expected: vec![graph.num_states()],
                got: vec![model.num_states()],
            });
        }
        let state = config.optimizer.init(model.params());
        let ema = match config.ema_decay {
            Some(d) => Some(Ema::new(model.params(), d)?),
            None => None,
        };
        Ok(Self {
            model,
            diffusion: Diffusion::new(graph, schedule),
            config,
            state,
            ema,
        })
    }

    /// Number of steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    /// One optimisation step on a minibatch from `corpus`. A non-finite loss or gradient is refused
    /// with [`Error::Diverged`] and leaves the model and optimiser untouched.
    pub fn step(&mut self, corpus: &Corpus) -> Result<StepStats> {
        let step = self.state.step;
        let mut rng = step_rng(self.config.seed, step);
        let b = self.config.batch_size;
        crate::check::size(
            "a pretraining batch",
            &[("batch_size", b), ("seq_len", corpus.seq_len())],
            crate::check::MAX_ELEMENTS,
        )?;
        let x0 = corpus.sample(b, &mut rng);
        let batch = self.config.loss.corrupt(
            &self.diffusion.graph,
            &self.diffusion.schedule,
            &x0,
            b,
            corpus.seq_len(),
            &mut rng,
        )?;
        let loss = dwdse_loss(&self.model, &self.diffusion.graph, &batch)?;
        let loss_value = crate::nn::to_f64s(&loss.as_vec())[0];
        if !loss_value.is_finite() {
            return Err(Error::Diverged { what: "loss", step });
        }
        let mut grads = Grads::collect(self.model.params(), &mut loss.backward())?;
        let update = self.config.to_optimizer().apply(
            step,
            self.model.params_mut(),
            &mut self.state,
            &mut grads,
        )?;
        if let Some(ema) = &mut self.ema {
            ema.update(self.model.params());
        }
        Ok(StepStats {
            step,
            loss: loss_value,
            grad_norm: update.grad_norm,
            learning_rate: update.lr,
        })
    }

    /// Runs `steps` steps with a progress bar (if `progress`) and metrics as JSON lines (if given).
    pub fn fit(
        &mut self,
        corpus: &Corpus,
        steps: u64,
        progress: bool,
        metrics: Option<&mut MetricsWriter>,
    ) -> Result<Vec<StepStats>> {
        let mut run = Pretraining {
            pretrainer: self,
            corpus,
            running: f64::NAN,
        };
        crate::train::fit(&mut run, steps, progress, metrics, None)
    }
}

impl<M: ModelKind, G: Graph + serde::Serialize, S: NoiseSchedule + serde::Serialize>
    Pretrainer<M, G, S>
{
    /// Commits model, configuration (with graph, schedule and training config), optimiser state and the
    /// EMA weights (if any) as one generation ([`crate::train::commit`]).
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let extra = serde_json::json!({
            "graph": self.diffusion.graph,
            "schedule": self.diffusion.schedule,
            "pretrain": self.config,
            "step": self.state.step,
        });
        let description = ModelDescription::of(&self.model);
        let mut files = Checkpoint::model_files(self.model.params(), Some(&description), extra)?;
        if let Some(ema) = &self.ema {
            files.push((
                EMA_FILE,
                ema.params.to_safetensors_bytes(&Default::default())?,
            ));
        }
        files.push((
            OPTIMIZER_FILE,
            adamw_to_bytes(self.model.params(), &self.state)?,
        ));
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        checkpoint.commit(&refs, DEFAULT_KEEP_LAST).map(|_| ())
    }

    /// Restores model weights and optimiser state saved by [`Pretrainer::save`] into this trainer
    /// (same architecture); training then continues bit-identically. Every file is checked against
    /// the manifest first.
    pub fn resume(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let committed = checkpoint.open()?;
        let mut params = self.model.params().clone();
        params.load_bytes(&committed.read(MODEL_FILE)?, &committed.path(MODEL_FILE))?;
        let state = load_adamw_bytes(
            &params,
            &committed.read(OPTIMIZER_FILE)?,
            &committed.path(OPTIMIZER_FILE),
        )?;
        let ema = match &self.ema {
            Some(ema) => {
                let mut avg = ema.params.clone();
                avg.load_bytes(&committed.read(EMA_FILE)?, &committed.path(EMA_FILE))?;
                Some(Ema {
                    decay: ema.decay,
                    params: avg,
                })
            }
            None => None,
        };
        // Only now that every file has loaded does anything change.
        *self.model.params_mut() = params;
        self.state = state;
        self.ema = ema;
        Ok(())
    }
}

/// A [`Pretrainer`] on its corpus, as a [`Trainer`](crate::train::Trainer): what [`Pretrainer::fit`]
/// drives. The progress message is the loss's exponential moving average (weight 0.05).
struct Pretraining<'a, M: ScoreModel, G: Graph, S: NoiseSchedule> {
    pretrainer: &'a mut Pretrainer<M, G, S>,
    corpus: &'a Corpus,
    running: f64,
}

impl<M: ScoreModel, G: Graph, S: NoiseSchedule> crate::train::Trainer for Pretraining<'_, M, G, S> {
    type Metrics = StepStats;
    const LABEL: &'static str = "pretrain";

    fn step(&mut self) -> Result<StepStats> {
        self.pretrainer.step(self.corpus)
    }

    fn completed(&self) -> u64 {
        self.pretrainer.state.step
    }

    fn message(&mut self, stats: &StepStats) -> String {
        self.running = if self.running.is_nan() {
            stats.loss
        } else {
            0.95 * self.running + 0.05 * stats.loss
        };
        format!("loss {:.4}", self.running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schedules that would make NaN or negative rates, or a decay that ends before the warm-up, are
    /// typed errors in both configs' `check` (they used to commit NaN weights a round late, or ascend).
    #[test]
    fn bad_schedules_are_typed_errors() {
        for bad in [
            LrSchedule::WarmupCosine {
                warmup: 0,
                total: 10,
                min_ratio: f64::NAN,
            },
            LrSchedule::WarmupCosine {
                warmup: 0,
                total: 10,
                min_ratio: -3.0,
            },
            LrSchedule::WarmupCosine {
                warmup: 100,
                total: 50,
                min_ratio: 0.1,
            },
        ] {
            assert!(
                matches!(bad.check(), Err(Error::InvalidParameter { .. })),
                "{bad:?}"
            );
            let pretrain = PretrainConfig {
                lr_schedule: bad,
                ..PretrainConfig::default()
            };
            assert!(pretrain.check().is_err(), "{bad:?}");
            let finetune = crate::train::FinetuneConfig {
                lr_schedule: bad,
                ..crate::train::FinetuneConfig::new(8)
            };
            assert!(finetune.check().is_err(), "{bad:?}");
        }
        let good = LrSchedule::WarmupCosine {
            warmup: 10,
            total: 100,
            min_ratio: 0.0,
        };
        assert!(good.check().is_ok());
        // Every rate of a valid schedule is finite and in [min_ratio·lr, lr].
        assert!((0..200).all(|i| (0.0..=1e-3).contains(&good.at(1e-3, i))));
    }
}
