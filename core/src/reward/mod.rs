//! Rewards `r(x)` on token sequences: the start of sepo's data flow
//! (reward → trajectories → advantages → loss → optimiser).
//!
//! A reward need not be differentiable. Implement [`SequenceReward`] for a per-sequence function (scored
//! in parallel with rayon), or [`Reward`] directly to score whole batches (a classifier). Rewards compose:
//! `GcContent::default().scaled(0.5).plus(MotifCount::new(vec![1, 2, 2]))`, or with `+` and `*` on the
//! composite types. Every value is checked by [`evaluate`]: a NaN, an infinity, a value outside a declared
//! range or a wrong count is a typed error naming the reward and the sample.

mod builtin;
mod classifier;
mod labelled;
mod onnx;
mod trainable;

pub use builtin::{GcContent, KmerLogLikelihood, MotifCount, MotifPresence, MAX_KMER_TABLE};
pub use classifier::CnnClassifier;
pub use labelled::{LabelKind, Labelled};
pub use onnx::{OnnxDtype, OnnxEncoding, OnnxReadout, OnnxReward, OnnxSpec};
pub use trainable::{
    pearson, ConvClassifier, ConvClassifierConfig, Pooling, TrainConfig, Validation,
};

use rayon::prelude::*;

use crate::error::{Error, Result};

/// A reward on a batch of token sequences (prompt + completion).
pub trait Reward: Send + Sync {
    /// Name used in errors and metrics.
    fn name(&self) -> String;

    /// Raw scores, one per sequence. Validation happens in [`evaluate`].
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64>;

    /// Declared bounds `[min, max]`, checked at run time.
    fn range(&self) -> Option<(f64, f64)> {
        None
    }

    /// The named terms of a reward that is a sum of them, each scored on `batch` as it enters the
    /// total (`r = Σ_j c_j`, `c_j` already weighted), for the per-component metrics
    /// `rewards/<name>/mean` and `/std`. `None`, the default, for a reward of one term. [`Sum`]
    /// lists its terms' components (or the terms themselves), [`Scaled`] scales its inner reward's
    /// and names them `w*<name>`. Scores each term again: metrics only, never the trained value.
    fn components(&self, batch: &[&[usize]]) -> Option<Vec<(String, Vec<f64>)>> {
        let _ = batch;
        None
    }
}

/// A reward defined one sequence at a time; [`Reward`] follows, scoring batches in parallel.
pub trait SequenceReward: Send + Sync {
    /// Name used in errors and metrics.
    fn name(&self) -> String;
    /// `r(x)`.
    fn score_one(&self, seq: &[usize]) -> f64;
    /// Declared bounds.
    fn range(&self) -> Option<(f64, f64)> {
        None
    }
}

impl<R: SequenceReward> Reward for R {
    fn name(&self) -> String {
        SequenceReward::name(self)
    }
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        batch.par_iter().map(|s| self.score_one(s)).collect()
    }
    fn range(&self) -> Option<(f64, f64)> {
        SequenceReward::range(self)
    }
}

/// A type-erased reward (a `Box<dyn Reward>` that is itself a [`Reward`]).
pub struct BoxedReward(pub Box<dyn Reward>);

impl Reward for BoxedReward {
    fn name(&self) -> String {
        self.0.name()
    }
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        self.0.score_batch(batch)
    }
    fn range(&self) -> Option<(f64, f64)> {
        self.0.range()
    }
    fn components(&self, batch: &[&[usize]]) -> Option<Vec<(String, Vec<f64>)>> {
        self.0.components(batch)
    }
}

/// Scores `batch` and validates every value: count, finiteness, declared range.
pub fn evaluate<R: Reward + ?Sized>(reward: &R, batch: &[&[usize]]) -> Result<Vec<f64>> {
    let values = reward.score_batch(batch);
    if values.len() != batch.len() {
        return Err(Error::RewardCount {
            reward: reward.name(),
            expected: batch.len(),
            got: values.len(),
        });
    }
    let range = reward.range();
    for (sample, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(Error::NonFiniteReward {
                reward: reward.name(),
                sample,
                value,
            });
        }
        if let Some((min, max)) = range {
            if value < min || value > max {
                return Err(Error::RewardOutOfRange {
                    reward: reward.name(),
                    sample,
                    value,
                    min,
                    max,
                });
            }
        }
    }
    Ok(values)
}

/// [`evaluate`] on a flat `[batch, seq_len]` buffer.
pub fn evaluate_flat<R: Reward + ?Sized>(
    reward: &R,
    tokens: &[usize],
    seq_len: usize,
) -> Result<Vec<f64>> {
    crate::check::nonzero("seq_len", seq_len)?;
    let batch: Vec<&[usize]> = tokens.chunks(seq_len).collect();
    evaluate(reward, &batch)
}

/// `w · r(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled<R> {
    /// The weight `w`.
    pub weight: f64,
    /// The reward `r`.
    pub inner: R,
}

impl<R: Reward> Reward for Scaled<R> {
    fn name(&self) -> String {
        format!("{}*{}", self.weight, self.inner.name())
    }
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        self.inner
            .score_batch(batch)
            .into_iter()
            .map(|v| self.weight * v)
            .collect()
    }
    fn range(&self) -> Option<(f64, f64)> {
        self.inner.range().map(|(a, b)| {
            let (x, y) = (self.weight * a, self.weight * b);
            (x.min(y), x.max(y))
        })
    }
    fn components(&self, batch: &[&[usize]]) -> Option<Vec<(String, Vec<f64>)>> {
        let w = self.weight;
        let parts = self.inner.components(batch)?;
        Some(
            parts
                .into_iter()
                .map(|(n, v)| (format!("{w}*{n}"), v.into_iter().map(|x| w * x).collect()))
                .collect(),
        )
    }
}

/// The components of `r` on `batch`, or `r` itself as one.
fn terms<R: Reward + ?Sized>(r: &R, batch: &[&[usize]]) -> Vec<(String, Vec<f64>)> {
    r.components(batch)
        .unwrap_or_else(|| vec![(r.name(), r.score_batch(batch))])
}

/// `r_a(x) + r_b(x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sum<A, B> {
    /// First term.
    pub a: A,
    /// Second term.
    pub b: B,
}

impl<A: Reward, B: Reward> Reward for Sum<A, B> {
    fn name(&self) -> String {
        format!("{}+{}", self.a.name(), self.b.name())
    }
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        let (x, y) = rayon::join(|| self.a.score_batch(batch), || self.b.score_batch(batch));
        // A length mismatch in a term surfaces as a count error of the sum.
        if x.len() != y.len() {
            return Vec::new();
        }
        x.into_iter().zip(y).map(|(p, q)| p + q).collect()
    }
    fn range(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.a.range()?, self.b.range()?);
        Some((a.0 + b.0, a.1 + b.1))
    }
    fn components(&self, batch: &[&[usize]]) -> Option<Vec<(String, Vec<f64>)>> {
        let mut out = terms(&self.a, batch);
        out.extend(terms(&self.b, batch));
        Some(out)
    }
}

/// Combinators on every reward.
pub trait RewardExt: Reward + Sized {
    /// `w · self`.
    fn scaled(self, weight: f64) -> Scaled<Self> {
        Scaled {
            weight,
            inner: self,
        }
    }
    /// `self + other`.
    fn plus<B: Reward>(self, other: B) -> Sum<Self, B> {
        Sum { a: self, b: other }
    }
}

impl<R: Reward + Sized> RewardExt for R {}

impl<R: Reward, B: Reward> std::ops::Add<B> for Scaled<R> {
    type Output = Sum<Self, B>;
    fn add(self, rhs: B) -> Self::Output {
        Sum { a: self, b: rhs }
    }
}

impl<A: Reward, B: Reward, C: Reward> std::ops::Add<C> for Sum<A, B> {
    type Output = Sum<Self, C>;
    fn add(self, rhs: C) -> Self::Output {
        Sum { a: self, b: rhs }
    }
}

/// A reward from a closure (tests, quick experiments).
pub struct FnReward<F> {
    name: String,
    f: F,
    range: Option<(f64, f64)>,
}

impl<F: Fn(&[usize]) -> f64 + Send + Sync> FnReward<F> {
    /// Wraps `f` under `name`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        Self {
            name: name.into(),
            f,
            range: None,
        }
    }

    /// Declares bounds to be checked.
    pub fn with_range(mut self, min: f64, max: f64) -> Self {
        self.range = Some((min, max));
        self
    }
}

impl<F: Fn(&[usize]) -> f64 + Send + Sync> SequenceReward for FnReward<F> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn score_one(&self, seq: &[usize]) -> f64 {
        (self.f)(seq)
    }
    fn range(&self) -> Option<(f64, f64)> {
        self.range
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_typed_errors_naming_the_sample() {
        let nan = FnReward::new(
            "nan_at_2",
            |s: &[usize]| if s[0] == 2 { f64::NAN } else { 1.0 },
        );
        let batch: Vec<&[usize]> = vec![&[0], &[1], &[2]];
        match evaluate(&nan, &batch) {
            Err(Error::NonFiniteReward { reward, sample, .. }) => {
                assert_eq!((reward.as_str(), sample), ("nan_at_2", 2))
            }
            other => panic!("{other:?}"),
        }
        let inf = FnReward::new("inf", |_: &[usize]| f64::INFINITY);
        assert!(matches!(
            evaluate(&inf, &batch),
            Err(Error::NonFiniteReward { sample: 0, .. })
        ));
        let bounded = FnReward::new("id", |s: &[usize]| s[0] as f64).with_range(0.0, 1.0);
        assert!(matches!(
            evaluate(&bounded, &batch),
            Err(Error::RewardOutOfRange { sample: 2, .. })
        ));
        struct Short;
        impl Reward for Short {
            fn name(&self) -> String {
                "short".into()
            }
            fn score_batch(&self, _: &[&[usize]]) -> Vec<f64> {
                vec![0.0]
            }
        }
        assert!(matches!(
            evaluate(&Short, &batch),
            Err(Error::RewardCount {
                expected: 3,
                got: 1,
                ..
            })
        ));
    }

    /// A sum lists its terms (nested sums flattened, a scaled sum's terms scaled and renamed), each
    /// as it enters the total, so the components add up to the score; a single reward has none.
    #[test]
    fn a_sum_lists_its_weighted_terms() {
        let a = FnReward::new("a", |s: &[usize]| s[0] as f64);
        let b = FnReward::new("b", |s: &[usize]| s.len() as f64);
        let c = FnReward::new("c", |_: &[usize]| 1.0);
        let batch: Vec<&[usize]> = vec![&[2, 0, 0], &[4, 1]];
        assert!(a.components(&batch).is_none());
        let r = (a.plus(b)).scaled(2.0) + c;
        let parts = r.components(&batch).unwrap();
        let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["2*a", "2*b", "c"]);
        assert_eq!(parts[0].1, vec![4.0, 8.0]);
        assert_eq!(parts[1].1, vec![6.0, 4.0]);
        assert_eq!(parts[2].1, vec![1.0, 1.0]);
        let total = evaluate(&r, &batch).unwrap();
        for (i, t) in total.iter().enumerate() {
            assert_eq!(parts.iter().map(|(_, v)| v[i]).sum::<f64>(), *t);
        }
        let boxed = BoxedReward(Box::new(r));
        assert_eq!(boxed.components(&batch).unwrap().len(), 3);
    }

    #[test]
    fn rewards_compose_linearly_with_ranges() {
        let a = FnReward::new("a", |s: &[usize]| s[0] as f64).with_range(0.0, 4.0);
        let b = FnReward::new("b", |s: &[usize]| s.len() as f64).with_range(0.0, 10.0);
        let r = a.scaled(-0.5) + b;
        let batch: Vec<&[usize]> = vec![&[2, 0, 0], &[4, 1]];
        assert_eq!(evaluate(&r, &batch).unwrap(), vec![-1.0 + 3.0, -2.0 + 2.0]);
        assert_eq!(r.range(), Some((-2.0, 10.0)));
        assert_eq!(r.name(), "-0.5*a+b");
    }
}
