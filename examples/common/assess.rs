//! One yardstick for every fine-tuning method of the DNA-like examples: fresh samples from the model's
//! diffusion sampler, scored with the training and the evaluation reward, the path KL to the pretrained
//! model, the 3-mer correlation with the corpus, and the model evaluations the method spent.

use rand::SeedableRng;
use sepo::loss::path_kl;
use sepo::nn::ParamStore;
use sepo::prelude::*;
use sepo::reward::{evaluate, Reward};
use sepo::sample::{first_hitting, SamplerConfig};

/// Fresh samples drawn per assessment (standard error of a mean = sample sd / 16).
pub const SAMPLES: usize = 256;

/// What a model's fresh samples score, and what producing the model cost.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Method name.
    pub label: String,
    /// Mean training reward of [`SAMPLES`] fresh samples, and its standard error `sd/√n`.
    pub reward: (f64, f64),
    /// Mean held-out evaluation reward, and its standard error.
    pub eval: (f64, f64),
    /// Mean path KL `Σ_k Σ_l KL(p_θ(·|x_k) ‖ p_ref(·|x_k))` of the first-hitting sampler along its own
    /// trajectories: by the data-processing inequality an upper bound on `KL(p_θ ‖ p_ref)` of the clean
    /// samples' laws (exact for the path laws, since the first-hitting times and positions do not depend
    /// on the model).
    pub kl: f64,
    /// Pearson correlation of the samples' 3-mer frequencies with the corpus's.
    pub kmer: f64,
    /// Model evaluations spent by the method (one forward on one sequence), and of those the ones that
    /// were back-propagated.
    pub evaluations: (u64, u64),
    /// Wall time of the method, seconds.
    pub seconds: f64,
    /// One sample, as a DNA string.
    pub example: String,
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, (var / n).sqrt())
}

/// Assesses `model` against the pretrained weights `reference` on [`SAMPLES`] fresh first-hitting
/// samples (seed 123, the same for every method).
pub fn assess<M: ScoreModel<Elem = f32, Device = Cpu>>(
    label: &str,
    model: &M,
    reference: &ParamStore<f32, Cpu>,
    reward: &dyn Reward,
    eval: &dyn Reward,
    evaluations: (u64, u64),
    seconds: f64,
) -> sepo::Result<Outcome> {
    let (graph, schedule) = super::process();
    let mut rng = rand::rngs::StdRng::seed_from_u64(123);
    let cfg = SamplerConfig {
        record_trajectory: true,
        ..SamplerConfig::default()
    };
    let s = first_hitting(
        &Policy::current(model),
        &Diffusion::new(graph, schedule),
        &cfg,
        (SAMPLES, super::LEN),
        None,
        &mut rng,
    )?;
    let seqs: Vec<Vec<usize>> = s.sequences().map(<[usize]>::to_vec).collect();
    let refs: Vec<&[usize]> = seqs.iter().map(Vec::as_slice).collect();
    let trajectory = s.trajectory.as_ref().expect("recorded");
    let (kl, _) = path_kl(model, reference, &graph, trajectory, None, None)?;
    Ok(Outcome {
        label: label.to_string(),
        reward: mean_se(&evaluate(reward, &refs)?),
        eval: mean_se(&evaluate(eval, &refs)?),
        kl,
        kmer: super::kmer_correlation(&seqs)?,
        evaluations,
        seconds,
        example: sepo::data::to_dna_string(&seqs[0]),
    })
}

/// Prints outcomes as a markdown table.
pub fn print_table(rows: &[Outcome]) {
    println!(
        "| method | reward ± se | eval_reward ± se | path KL | 3-mer corr. | evaluations (backpropagated) | wall | e.g. |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for o in rows {
        println!(
            "| {} | {:.3} ± {:.3} | {:.3} ± {:.3} | {:.3} | {:.3} | {} ({}) | {:.1} s | {} |",
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
            o.example
        );
    }
}
