//! Pretraining a score model with the denoising score entropy.
//!
//! One step: draw a minibatch of clean sequences, `t ~ U(ε, 1)`, corrupt, DWDSE loss, backward, clip
//! the global gradient norm, AdamW at the scheduled learning rate, optional EMA of the weights.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::{dwdse_loss, Dwdse};
use crate::nn::io::{adamw_to_bytes, load_adamw_bytes};
use crate::nn::{AdamW, AdamWState, Ema, Grads};
use crate::schedule::NoiseSchedule;
use crate::score::ScoreModel;
use crate::train::checkpoint::{Checkpoint, ModelKind};
use crate::train::checkpoint::{ModelDescription, MODEL_FILE, OPTIMIZER_FILE};
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

/// Learning-rate schedule as a function of the step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LrSchedule {
    /// `lr(i) = lr`.
    Constant,
    /// Linear warm-up over `warmup` steps, then constant (SEDD).
    Warmup {
        /// Warm-up length.
        warmup: u64,
    },
    /// Linear warm-up, then cosine decay to `min_ratio·lr` at `total`.
    WarmupCosine {
        /// Warm-up length.
        warmup: u64,
        /// Step at which the decay ends.
        total: u64,
        /// Final fraction of the peak rate.
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// Validates the schedule: `WarmupCosine` needs `min_ratio ∈ [0, 1]` (NaN made NaN rates, a
    /// negative one a negative rate, i.e. gradient ascent on the loss) and `total > warmup` (the decay
    /// must end after the warm-up does).
    pub fn check(&self) -> Result<()> {
        if let LrSchedule::WarmupCosine {
            warmup,
            total,
            min_ratio,
        } = *self
        {
            if !(0.0..=1.0).contains(&min_ratio) {
                return Err(Error::invalid(
                    "min_ratio",
                    min_ratio,
                    "is a fraction of the peak rate: must be in [0, 1]",
                ));
            }
            if total <= warmup {
                return Err(Error::invalid(
                    "total",
                    total,
                    format!("the cosine decay must end after the warm-up: need total > warmup = {warmup}"),
                ));
            }
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based) for peak `lr`.
    pub fn at(&self, lr: f64, step: u64) -> f64 {
        let warm = |w: u64| {
            if w == 0 {
                1.0
            } else {
                ((step + 1) as f64 / w as f64).min(1.0)
            }
        };
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Warmup { warmup } => lr * warm(warmup),
            LrSchedule::WarmupCosine {
                warmup,
                total,
                min_ratio,
            } => {
                if step < warmup {
                    lr * warm(warmup)
                } else {
                    let span = total.saturating_sub(warmup).max(1) as f64;
                    let progress = ((step - warmup) as f64 / span).min(1.0);
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                    lr * (min_ratio + (1.0 - min_ratio) * cosine)
                }
            }
        }
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
pub struct Pretrainer<E: Dtype, D: Device<E>, M: ScoreModel<E, D>, G: Graph, S: NoiseSchedule> {
    /// The model being trained.
    pub model: M,
    /// Forward graph.
    pub graph: G,
    /// Noise schedule.
    pub schedule: S,
    /// Hyper-parameters.
    pub config: PretrainConfig,
    /// AdamW moments and step counter.
    pub state: AdamWState<E, D>,
    /// Exponential moving average of the weights.
    pub ema: Option<Ema<E, D>>,
}

impl<E: Dtype, D: Device<E>, M: ScoreModel<E, D>, G: Graph, S: NoiseSchedule>
    Pretrainer<E, D, M, G, S>
{
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
            graph,
            schedule,
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
            &self.graph,
            &self.schedule,
            &x0,
            b,
            corpus.seq_len(),
            &mut rng,
        )?;
        let loss = dwdse_loss(&self.model, &self.graph, &batch)?;
        let loss_value = loss.as_vec()[0].to_f64().unwrap_or(f64::NAN);
        if !loss_value.is_finite() {
            return Err(Error::Diverged { what: "loss", step });
        }
        let mut grads = Grads::collect(self.model.params(), &mut loss.backward())?;
        let grad_norm = match self.config.grad_clip {
            Some(c) => grads.clip_norm(c),
            None => grads.global_norm(),
        };
        let lr = self.config.lr_schedule.at(self.config.optimizer.lr, step);
        self.config
            .optimizer
            .step(lr, self.model.params_mut(), &mut self.state, &grads)?;
        if let Some(ema) = &mut self.ema {
            ema.update(self.model.params());
        }
        Ok(StepStats {
            step,
            loss: loss_value,
            grad_norm,
            learning_rate: lr,
        })
    }

    /// Runs `steps` steps with a progress bar (if `progress`) and metrics as JSON lines (if given).
    pub fn fit(
        &mut self,
        corpus: &Corpus,
        steps: u64,
        progress: bool,
        mut metrics: Option<&mut MetricsWriter>,
    ) -> Result<Vec<StepStats>> {
        let bar = if progress {
            let bar = indicatif::ProgressBar::new(steps);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix("pretrain");
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut out = Vec::with_capacity(steps as usize);
        let mut running = f64::NAN;
        for _ in 0..steps {
            let stats = self.step(corpus)?;
            running = if running.is_nan() {
                stats.loss
            } else {
                0.95 * running + 0.05 * stats.loss
            };
            bar.set_message(format!("loss {running:.4}"));
            bar.inc(1);
            if let Some(m) = metrics.as_deref_mut() {
                m.write(&stats)?;
            }
            out.push(stats);
        }
        bar.finish();
        Ok(out)
    }
}

impl<
        E: Dtype,
        D: Device<E>,
        M: ModelKind<E, D>,
        G: Graph + serde::Serialize,
        S: NoiseSchedule + serde::Serialize,
    > Pretrainer<E, D, M, G, S>
{
    /// Commits model, configuration (with graph, schedule and training config), optimiser state and the
    /// EMA weights (if any) as one generation ([`crate::train::commit`]).
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        let extra = serde_json::json!({
            "graph": self.graph,
            "schedule": self.schedule,
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
