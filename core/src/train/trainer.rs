//! One training loop for every trainer: a [`Trainer`] takes one transactional step at a time (a
//! fine-tuning round, a single-loop update, a pretraining step) and [`fit`] drives it with a progress
//! bar, one JSON line of metrics per step and, for trainers that can, periodic crash-consistent
//! checkpoints.

use crate::error::{Error, Result};
use crate::train::commit::{fault_point, DEFAULT_KEEP_LAST};
use crate::train::{interrupt, progress_bar, Checkpoint, MetricsWriter};

/// A trainer [`fit`] can drive.
pub trait Trainer {
    /// What one step reports (one JSON line of the metrics file).
    type Metrics: serde::Serialize;

    /// Prefix of the progress bar (`"fine-tune"`, `"flow"`, `"pretrain"`).
    const LABEL: &'static str;

    /// One step. Transactional: on error the trainer is as it was before the call.
    fn step(&mut self) -> Result<Self::Metrics>;

    /// Steps completed so far, resumed ones included.
    fn completed(&self) -> u64;

    /// The progress bar's message after a step.
    fn message(&mut self, metrics: &Self::Metrics) -> String;

    /// Commits a checkpoint to `checkpoint` recording how much of `metrics` it covers, keeping
    /// `keep_last` generations. The default refuses: a trainer whose state cannot be saved says so.
    fn save(
        &self,
        checkpoint: &Checkpoint,
        metrics: Option<&mut MetricsWriter>,
        keep_last: usize,
    ) -> Result<()> {
        let _ = (metrics, keep_last);
        Err(Error::invalid(
            "checkpoint",
            checkpoint.dir.display(),
            "this trainer cannot be checkpointed",
        ))
    }
}

/// How often [`fit`] commits a checkpoint ([`crate::train::Run::fit`] and
/// [`crate::train::Finetuner::fit_checkpointed`] go through it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periodic {
    /// Save after every step (round) whose count is a multiple of this (and after the last one), so a crash
    /// loses at most `every` rounds.
    pub every: u64,
    /// Generations kept on disk (the newest included; `≥ 1`).
    pub keep_last: usize,
}

impl Default for Periodic {
    /// Every 10 rounds, keeping 2 generations.
    fn default() -> Self {
        Self {
            every: 10,
            keep_last: DEFAULT_KEEP_LAST,
        }
    }
}

impl Periodic {
    /// Validates both fields.
    pub fn check(&self) -> Result<()> {
        if self.every == 0 {
            return Err(Error::invalid(
                "every",
                0,
                "checkpoint at least every round (≥ 1)",
            ));
        }
        crate::check::nonzero("keep_last", self.keep_last).map(|_| ())
    }
}

/// Runs `steps` steps of `trainer`, with a progress bar if `progress`, each step's metrics appended to
/// `metrics`, and, given `checkpoint = (dir, periodic)`, a checkpoint committed before the first step,
/// after every step whose count is a multiple of `periodic.every` and after the last: a crash loses at
/// most `every` steps, and the trainer's resume continues as if it had not happened. Stops at the
/// first error, with the state of the last completed step intact (steps are transactional).
///
/// A stop requested by Ctrl-C / SIGTERM ([`crate::train::interrupt`], once its handler is installed)
/// or [`crate::train::interrupt::request`] is honoured at the next step boundary: the completed steps
/// are committed (if a checkpoint is configured and the last commit does not already hold them) and
/// `fit` returns [`Error::Interrupted`].
pub fn fit<T: Trainer>(
    trainer: &mut T,
    steps: u64,
    progress: bool,
    mut metrics: Option<&mut MetricsWriter>,
    checkpoint: Option<(&Checkpoint, Periodic)>,
) -> Result<Vec<T::Metrics>> {
    let _active = interrupt::Active::enter();
    let mut saved_at = None;
    if let Some((ckpt, periodic)) = checkpoint {
        periodic.check()?;
        trainer.save(ckpt, metrics.as_deref_mut(), periodic.keep_last)?;
        saved_at = Some(trainer.completed());
    }
    let bar = progress_bar(steps, T::LABEL, progress);
    let mut out = Vec::with_capacity(steps.min(1 << 20) as usize);
    for i in 0..steps {
        if interrupt::take() {
            bar.abandon();
            let completed = trainer.completed();
            if let Some((ckpt, periodic)) = checkpoint {
                if saved_at != Some(completed) {
                    trainer.save(ckpt, metrics.as_deref_mut(), periodic.keep_last)?;
                }
            }
            return Err(Error::Interrupted {
                completed,
                checkpoint: checkpoint.map(|(c, _)| c.dir.clone()),
            });
        }
        let m = trainer.step()?;
        bar.set_message(trainer.message(&m));
        bar.inc(1);
        if let Some(w) = metrics.as_deref_mut() {
            w.write(&m)?;
        }
        if let Some((ckpt, periodic)) = checkpoint {
            fault_point(&ckpt.dir, "metrics written").map_err(|source| Error::Io {
                path: ckpt.dir.clone(),
                source,
            })?;
            if trainer.completed().is_multiple_of(periodic.every) || i + 1 == steps {
                trainer.save(ckpt, metrics.as_deref_mut(), periodic.keep_last)?;
                saved_at = Some(trainer.completed());
            }
        }
        out.push(m);
    }
    bar.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts steps, fails at step `fail_at`, records when it was saved.
    struct Toy {
        done: u64,
        fail_at: u64,
        saved_at: Vec<u64>,
    }

    impl Trainer for Toy {
        type Metrics = u64;
        const LABEL: &'static str = "toy";
        fn step(&mut self) -> Result<u64> {
            if self.done == self.fail_at {
                return Err(Error::invalid("step", self.done, "planned failure"));
            }
            self.done += 1;
            Ok(self.done)
        }
        fn completed(&self) -> u64 {
            self.done
        }
        fn message(&mut self, m: &u64) -> String {
            m.to_string()
        }
    }

    /// `fit` takes exactly the steps asked, stops at the first error with the completed steps
    /// intact, and refuses a checkpoint for a trainer that cannot save before taking any step.
    #[test]
    fn fit_runs_steps_stops_on_error_and_refuses_unsaveable_checkpoints() {
        let mut toy = Toy {
            done: 0,
            fail_at: u64::MAX,
            saved_at: Vec::new(),
        };
        assert_eq!(fit(&mut toy, 3, false, None, None).unwrap(), vec![1, 2, 3]);
        toy.fail_at = 5;
        assert!(fit(&mut toy, 4, false, None, None).is_err());
        assert_eq!(toy.completed(), 5);
        let ckpt = Checkpoint::new(std::env::temp_dir().join("sepo-trainer-toy-never-written"));
        let periodic = Periodic::default();
        let err = fit(&mut toy, 1, false, None, Some((&ckpt, periodic)));
        assert!(matches!(
            err,
            Err(Error::InvalidParameter {
                name: "checkpoint",
                ..
            })
        ));
        assert_eq!(toy.completed(), 5, "no step before the refused save");
        assert!(toy.saved_at.is_empty());
        assert!(!ckpt.dir.exists());
    }
}
