//! One yardstick for fine-tuned models: fresh samples from the model's first-hitting sampler, scored
//! with the training and a held-out evaluation reward (mean ± standard error), the path KL to the
//! pretrained weights, the k-mer correlation with a reference corpus (naturalness), and what the
//! method spent. The examples compare methods with it; it works for any model, graph and schedule.

use rand::SeedableRng;

use sepo_core::graph::Graph;
use sepo_core::loss::path_kl;
use sepo_core::reward::{evaluate, Reward};
use sepo_core::sample::{first_hitting, SamplerConfig};
use sepo_core::schedule::NoiseSchedule;
use sepo_core::score::{Params, ScoreModel};
use sepo_core::text::kmer_correlation;
use sepo_core::{Diffusion, Policy, Result};

/// Fresh samples drawn per assessment by default (the standard error of a mean is the sample sd / 16).
pub const SAMPLES: usize = 256;

/// What a model's fresh samples score, and what producing the model cost.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Method name.
    pub label: String,
    /// Mean training reward of the fresh samples, and its standard error `s/√n`
    /// (`s² = Σ (r − r̄)²/(n − 1)`).
    pub reward: (f64, f64),
    /// Mean held-out evaluation reward, and its standard error.
    pub eval: (f64, f64),
    /// Mean path KL `Σ_k Σ_l KL(p_θ(·|x_k) ‖ p_ref(·|x_k))` of the first-hitting sampler along its
    /// own trajectories: by the data-processing inequality an upper bound on `KL(p_θ ‖ p_ref)` of the
    /// clean samples' laws (exact for the path laws: the first-hitting times and positions do not
    /// depend on the model).
    pub kl: f64,
    /// Pearson correlation of the samples' k-mer frequencies with the reference corpus's
    /// ([`kmer_correlation`]).
    pub kmer: f64,
    /// Model evaluations spent by the method (one forward on one sequence), and of those the ones
    /// that were back-propagated.
    pub evaluations: (u64, u64),
    /// Wall time of the method, seconds.
    pub seconds: f64,
    /// The first sample.
    pub example: Vec<usize>,
}

/// `(mean, s/√n)`.
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

/// How models are assessed: the forward process, the rewards, the k-mer reference and the draws.
pub struct Yardstick<'a, G: Graph, S: NoiseSchedule> {
    /// The forward process the model was trained for (absorbing: first-hitting sampling).
    pub diffusion: Diffusion<G, S>,
    /// The training reward.
    pub reward: &'a dyn Reward,
    /// The held-out evaluation reward.
    pub eval: &'a dyn Reward,
    /// The reference corpus of the k-mer correlation.
    pub corpus: &'a [Vec<usize>],
    /// `k` of the k-mers.
    pub k: usize,
    /// Tokens of the k-mer alphabet (the graph's real tokens).
    pub alphabet: usize,
    /// Fresh samples per assessment.
    pub samples: usize,
    /// Their length.
    pub seq_len: usize,
    /// The sampler's seed (the same for every model, so methods see the same randomness).
    pub seed: u64,
}

impl<G: Graph, S: NoiseSchedule> Yardstick<'_, G, S> {
    /// Assesses `model` against the pretrained weights `reference`.
    pub fn assess<M: ScoreModel>(
        &self,
        label: &str,
        model: &M,
        reference: &Params<M>,
        evaluations: (u64, u64),
        seconds: f64,
    ) -> Result<Outcome> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let cfg = SamplerConfig {
            record_trajectory: true,
            ..SamplerConfig::default()
        };
        let s = first_hitting(
            &Policy::current(model),
            &self.diffusion,
            &cfg,
            (self.samples, self.seq_len),
            None,
            &mut rng,
        )?;
        let seqs: Vec<Vec<usize>> = s.sequences().map(<[usize]>::to_vec).collect();
        let refs: Vec<&[usize]> = seqs.iter().map(Vec::as_slice).collect();
        let kl = match &s.trajectory {
            Some(t) => path_kl(model, reference, &self.diffusion.graph, t, None, None)?.0,
            None => f64::NAN,
        };
        Ok(Outcome {
            label: label.to_string(),
            reward: mean_se(&evaluate(self.reward, &refs)?),
            eval: mean_se(&evaluate(self.eval, &refs)?),
            kl,
            kmer: kmer_correlation(&seqs, self.corpus, self.k, self.alphabet)?,
            evaluations,
            seconds,
            example: seqs.first().cloned().unwrap_or_default(),
        })
    }
}

/// The outcomes as a markdown table, each example sample rendered by `show`.
pub fn table(rows: &[Outcome], show: impl Fn(&[usize]) -> String) -> String {
    let mut out = String::from(
        "| method | reward ± se | eval_reward ± se | path KL | k-mer corr. | evaluations (backpropagated) | wall | e.g. |\n|---|---|---|---|---|---|---|---|\n",
    );
    for o in rows {
        out.push_str(&format!(
            "| {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.3} | {:.3} | {} ({}) | {:.1} s | {} |\n",
            o.label,
            o.reward.0,
            o.reward.1,
            o.eval.0,
            o.eval.1,
            o.kl,
            o.kmer,
            o.evaluations.0,
            o.evaluations.1,
            o.seconds,
            show(&o.example)
        ));
    }
    out
}
