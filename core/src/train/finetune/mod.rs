//! SEPO fine-tuning: rounds of sampling and policy-gradient optimisation.
//!
//! One round: snapshot `θ_old`; draw `groups × group_size` sequences from `θ_old` with the configured
//! sampler (recording trajectories when the estimator or the KL needs them), or, with prompts, as many as
//! the allocation decides per prompt (`round.rs`); score them with the training
//! reward (and the held-out evaluation reward, if any); advantages; `epochs` passes over minibatches, each an
//! AdamW step on the PPO-clip loss of the chosen estimator plus `β·KL_path` to the reference and minus an
//! optional entropy bonus; metrics. If anything fails (a NaN reward, a diverging gradient), the model, the
//! optimiser and the round counter are restored to the end of the previous round and the typed error is
//! returned: [`Finetuner::round`] is transactional.

//!
//! Files: `config.rs` (the configuration and the round's metrics), `round.rs` (drawing, allocation,
//! advantages, the optimisation loop), `gradients.rs` (the surrogate, KL and entropy gradients),
//! `persist.rs` (crash-consistent saves, checked resumes).

mod config;
mod gradients;
mod persist;
mod round;
mod stages;

pub use crate::sample::SamplerKind;
pub use config::{FinetuneConfig, KlMode, LogProb, RoundMetrics};
pub(crate) use persist::first_difference;
pub use persist::{Resumed, REFERENCE_FILE, TRAINER_FILE};
pub use round::GradientEstimate;

use rand::Rng;

use crate::diffusion::Diffusion;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::AdamWState;
use crate::reward::Reward;
use crate::sample::{Condition, Samples};
use crate::schedule::NoiseSchedule;
use crate::score::ScoreModel;
use crate::score::{Params, Policy};
use crate::train::Planner;
use crate::train::{Checkpoint, MetricsWriter, Periodic, Trainer};

/// A fine-tuning run: the policy, its reference, the forward process, the rewards and the optimiser.
///
/// Its state is private so that a round stays transactional and a resume checks what it restores:
/// build it with [`Finetuner::new`] and the `with_*` builders, read it through the accessors
/// ([`Finetuner::model`], [`Finetuner::config`], ...), and change it only by running rounds
/// ([`Finetuner::round`], [`Finetuner::fit`]) or resuming ([`Finetuner::resume`]).
pub struct Finetuner<M: ScoreModel, G: Graph, S: NoiseSchedule, R: Reward> {
    /// The policy (trainable score model).
    model: M,
    /// Reference weights for the KL.
    reference: Params<M>,
    /// The forward process: graph and noise schedule.
    diffusion: Diffusion<G, S>,
    /// Training reward.
    reward: R,
    /// Held-out evaluation reward.
    eval_reward: Option<Box<dyn Reward>>,
    /// Optional prompt (fixed positions) shared by every sample, read by [`Finetuner::sample_with`] and
    /// by rounds without prompts (with prompts, each pass of a round builds its own, one row per draw).
    condition: Option<Condition>,
    /// Hyper-parameters.
    config: FinetuneConfig,
    /// AdamW state.
    state: AdamWState<M::Elem, M::Device>,
    /// Rounds completed.
    round: u64,
    /// The prompts of [`Finetuner::with_prompts`] (empty: none).
    prompts: Vec<Vec<usize>>,
    /// The allocation's state across rounds (with prompts), e.g. the pooled spreads of Neyman targets;
    /// rebuilt when `config.allocation` changes.
    planner: Option<Planner>,
    /// Log the first completion of each group in the metrics of every round whose index is a
    /// multiple of this ([`RoundMetrics::completions`]); `None` (the default): never.
    log_completions: Option<u64>,
}

impl<M, G, S, R> Finetuner<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    /// Starts from `model` (also the reference).
    pub fn new(model: M, graph: G, schedule: S, reward: R, config: FinetuneConfig) -> Result<Self> {
        config.check()?;
        schedule.check()?;
        if model.num_states() != graph.num_states() {
            return Err(Error::ShapeMismatch {
                op: "Finetuner::new (model states vs graph states)",
                expected: vec![graph.num_states()],
                got: vec![model.num_states()],
            });
        }
        if matches!(config.log_prob, LogProb::Events { .. }) && graph.mask().is_none() {
            return Err(Error::invalid(
                "log_prob",
                "Events",
                "needs an absorbing graph (a mask state)",
            ));
        }
        let state = config.optimizer.init(model.params());
        let reference = model.params().snapshot();
        Ok(Self {
            model,
            reference,
            diffusion: Diffusion::new(graph, schedule),
            reward,
            eval_reward: None,
            condition: None,
            config,
            state,
            round: 0,
            prompts: Vec::new(),
            planner: None,
            log_completions: None,
        })
    }

    /// The policy: the trainable score model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Consumes the finetuner and hands back the trained model.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The reference weights `θ_ref` of the KL: the starting weights, unless
    /// [`Finetuner::with_reference`] set others (or a resume restored them).
    pub fn reference(&self) -> &Params<M> {
        &self.reference
    }

    /// The forward process: graph and noise schedule.
    pub fn diffusion(&self) -> &Diffusion<G, S> {
        &self.diffusion
    }

    /// The training reward.
    pub fn reward(&self) -> &R {
        &self.reward
    }

    /// The held-out evaluation reward, if any ([`Finetuner::with_eval_reward`]).
    pub fn eval_reward(&self) -> Option<&dyn Reward> {
        self.eval_reward.as_deref()
    }

    /// The prompt shared by every sample of [`Finetuner::sample_with`], if any
    /// ([`Finetuner::with_condition`], or the uniform layout of [`Finetuner::with_prompts`]).
    pub fn condition(&self) -> Option<&Condition> {
        self.condition.as_ref()
    }

    /// The hyper-parameters (`groups` set by [`Finetuner::with_prompts`]).
    pub fn config(&self) -> &FinetuneConfig {
        &self.config
    }

    /// The optimiser's AdamW state (step count, first and second moments).
    pub fn optimizer_state(&self) -> &AdamWState<M::Elem, M::Device> {
        &self.state
    }

    /// Rounds completed (the [`Trainer::completed`] count; restored by a resume).
    pub fn completed(&self) -> u64 {
        self.round
    }

    /// The prompts of [`Finetuner::with_prompts`] (empty: none).
    pub fn prompts(&self) -> &[Vec<usize>] {
        &self.prompts
    }

    /// The allocation planner's state across rounds (with prompts; `None` without).
    pub fn planner(&self) -> Option<&Planner> {
        self.planner.as_ref()
    }

    /// Every how many rounds the metrics log each group's first completion
    /// ([`Finetuner::with_log_completions`]); `None`: never.
    pub fn log_completions(&self) -> Option<u64> {
        self.log_completions
    }

    /// Logs the first completion of each group ([`RoundMetrics::completions`]) in the metrics of
    /// every round whose index is a multiple of `every`; `None` (the default) never.
    pub fn with_log_completions(mut self, every: Option<u64>) -> Self {
        self.log_completions = every;
        self
    }

    /// Takes a copy of `reference` (fresh parameter ids, so no gradient reaches it) as the KL's
    /// reference weights instead of the starting ones.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `reference` does not have the model's parameter layout.
    pub fn with_reference(mut self, reference: &Params<M>) -> Result<Self> {
        self.model
            .params()
            .check_same_layout(reference, "Finetuner::with_reference")?;
        self.reference = reference.snapshot();
        Ok(self)
    }

    /// Sets a held-out evaluation reward (reported, never trained on).
    pub fn with_eval_reward(mut self, reward: Box<dyn Reward>) -> Self {
        self.eval_reward = Some(reward);
        self
    }

    /// Sets a prompt: positions fixed in every sample.
    pub fn with_condition(mut self, condition: Condition) -> Self {
        self.condition = Some(condition);
        self
    }

    /// One group per prompt: prompt `i`'s completions start with `prompts[i]` (a prefix held fixed by
    /// the sampler), and advantages are formed among the completions of one prompt. Sets
    /// `groups = prompts.len()`. How many completions each prompt gets per round is
    /// `config.allocation`'s choice: `group_size` each under `Uniform`; under an adaptive strategy
    /// (see [`crate::train::planner`]) groups of unequal sizes, each prompt weighing the same in the
    /// gradient. Call it before [`Finetuner::resume`]: it starts a fresh allocation planner, which
    /// would replace the adaptive state a resume restored.
    pub fn with_prompts(mut self, prompts: &[Vec<usize>]) -> Result<Self> {
        let c = &mut self.config;
        if prompts.is_empty() {
            return Err(Error::Empty {
                op: "Finetuner::with_prompts",
                what: "no prompt",
            });
        }
        let vocab = self.diffusion.graph.num_tokens();
        for (g, prompt) in prompts.iter().enumerate() {
            if prompt.len() > c.seq_len {
                return Err(Error::ShapeMismatch {
                    op: "Finetuner::with_prompts (prompt longer than seq_len)",
                    expected: vec![c.seq_len],
                    got: vec![g, prompt.len()],
                });
            }
            if let Some(p) = prompt.iter().position(|&t| t >= vocab) {
                return Err(Error::TokenOutOfVocab {
                    sequence: g,
                    position: p,
                    token: prompt[p],
                    vocab,
                });
            }
        }
        c.groups = prompts.len();
        c.check()?;
        self.planner = Some(Planner::new(c.allocation, prompts.len(), c.batch())?);
        // `sample_with` draws the uniform layout: `group_size` completions of each prompt in turn.
        let fixed = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p, c.group_size))
            .flat_map(|p| (0..c.seq_len).map(|l| p.get(l).copied()))
            .collect();
        self.condition = Some(Condition::per_sequence(fixed));
        self.prompts = prompts.to_vec();
        Ok(self)
    }

    /// Draws `batch` samples from `params` with the configured sampler (and condition, if any).
    pub fn sample_with<Rn: Rng>(
        &self,
        params: &Params<M>,
        batch: usize,
        record: bool,
        rng: &mut Rn,
    ) -> Result<Samples> {
        self.sample_conditioned(params, batch, record, self.condition.as_ref(), rng)
    }

    fn sample_conditioned<Rn: Rng>(
        &self,
        params: &Params<M>,
        batch: usize,
        record: bool,
        cond: Option<&Condition>,
        rng: &mut Rn,
    ) -> Result<Samples> {
        let c = &self.config;
        let policy = Policy::new(&self.model, params);
        c.sampler.draw(
            &policy,
            &self.diffusion,
            (batch, c.seq_len),
            cond,
            record,
            rng,
        )
    }

    /// One round; on error everything is as it was before the call.
    pub fn round(&mut self) -> Result<RoundMetrics> {
        let saved = (
            self.model.params().clone(),
            self.state.clone(),
            self.reference.clone(),
            self.planner.clone(),
        );
        match self.round_inner() {
            Ok(m) => Ok(m),
            Err(e) => {
                *self.model.params_mut() = saved.0;
                self.state = saved.1;
                self.reference = saved.2;
                self.planner = saved.3;
                Err(e)
            }
        }
    }

    /// Runs `rounds` rounds with a progress bar (if `progress`) and metrics as JSON lines (if given).
    /// Stops at the first error, with the state of the last completed round intact. Saves nothing:
    /// [`Finetuner::fit_checkpointed`] does.
    pub fn fit(
        &mut self,
        rounds: u64,
        progress: bool,
        metrics: Option<&mut MetricsWriter>,
    ) -> Result<Vec<RoundMetrics>> {
        self.fit_checkpointed(rounds, progress, metrics, None)
    }

    /// [`Finetuner::fit`], committing a checkpoint to `checkpoint.0` before the first round, after
    /// every round whose count is a multiple of `checkpoint.1.every`, and after the last, each
    /// recording how much of the metrics file it covers. A crash then loses at most `every` rounds,
    /// and [`Finetuner::resume`] plus [`MetricsMark::rewind`](crate::train::MetricsMark::rewind) (what
    /// [`crate::train::Run::resume`] does) continue the run as if it had not happened: the same
    /// parameters bit for bit on CPU, and each round's metrics line once.
    pub fn fit_checkpointed(
        &mut self,
        rounds: u64,
        progress: bool,
        metrics: Option<&mut MetricsWriter>,
        checkpoint: Option<(&Checkpoint, Periodic)>,
    ) -> Result<Vec<RoundMetrics>> {
        crate::train::fit(self, rounds, progress, metrics, checkpoint)
    }
}

impl<M, G, S, R> Trainer for Finetuner<M, G, S, R>
where
    M: ScoreModel,
    G: Graph,
    S: NoiseSchedule,
    R: Reward,
{
    type Metrics = RoundMetrics;
    const LABEL: &'static str = "fine-tune";

    /// [`Finetuner::round`].
    fn step(&mut self) -> Result<RoundMetrics> {
        self.round()
    }

    fn completed(&self) -> u64 {
        self.round
    }

    fn message(&mut self, m: &RoundMetrics) -> String {
        let eval = m
            .eval_reward
            .map_or(String::new(), |e| format!(" eval {e:.3}"));
        let kl = m.kl.map_or(String::new(), |k| format!(" kl {k:.3}"));
        format!("reward {:.3}{eval}{kl}", m.reward)
    }

    /// [`Finetuner::save_with`].
    fn save(
        &self,
        checkpoint: &Checkpoint,
        metrics: Option<&mut MetricsWriter>,
        keep_last: usize,
    ) -> Result<()> {
        self.save_with(checkpoint, metrics, keep_last).map(|_| ())
    }
}
