//! `sepo eval`: what a file of samples scores (rewards, k-mer correlation with a reference corpus,
//! distinct-n, mean pairwise Hamming distance) and, given a model and a reference model, the path KL
//! between them on fresh samples, and/or the DWDSE perplexity bound of the model on held-out sequences
//! (`--elbo FILE`). Prints one JSON object.

use std::path::PathBuf;

use rand::SeedableRng;
use serde_json::json;

use sepo::config::{parse_value, RewardRegistry};
use sepo::dfdx::prelude::Cpu;
use sepo::graph::Absorbing;
use sepo::loss::{elbo, path_kl, Elbo, ElboConfig};
use sepo::reward::evaluate;
use sepo::sample::{first_hitting, SamplerConfig};
use sepo::schedule::LogLinear;
use sepo::score::{EnergyModel, ModelKind, ScoreModel};
use sepo::text::{distinct_n, kmer_correlation, mean_pairwise_hamming};
use sepo::train::{Checkpoint, FromStates};
use sepo::{Diffusion, Error, Policy, Result};

use super::common::{self, WithModel};

/// Options of `sepo eval`.
#[derive(clap::Args)]
pub struct Args {
    /// Samples, one per line (as `sepo sample` writes them).
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Tokenizer of the files: nucleotide, chars:ALPHABET, bpe:PATH or ids.
    #[arg(long, default_value = "nucleotide")]
    tokenizer: String,
    /// Training reward, as in a run file: a built-in name (`gc_content`, `motif_count(motif = [3,
    /// 0, 3, 0])`, ..) or a weighted sum.
    #[arg(long)]
    reward: Option<String>,
    /// Held-out evaluation reward, same form.
    #[arg(long)]
    eval_reward: Option<String>,
    /// Reference sequences for the k-mer correlation, one per line.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// k of the k-mer correlation.
    #[arg(long, default_value_t = 3)]
    k: usize,
    /// A model (checkpoint directory): with --reference-model, the path KL between the two; with
    /// --elbo, its perplexity bound.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The reference model (same architecture), e.g. the pretrained one.
    #[arg(long)]
    reference_model: Option<PathBuf>,
    /// Fresh first-hitting samples the path KL is averaged over.
    #[arg(long, default_value_t = 256)]
    num: usize,
    /// Seed of those samples (and of the --elbo times).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out sequences, one per line (tokenised with --tokenizer): the model's DWDSE bound on them
    /// (SEDD's perplexity bound: nats per token, perplexity = exp, and the prior term).
    #[arg(long, requires = "model")]
    elbo: Option<PathBuf>,
    /// Monte Carlo times per held-out sequence for --elbo.
    #[arg(long, default_value_t = 32)]
    elbo_draws: usize,
}

pub fn run(args: Args) -> Result<()> {
    let tokenizer = common::tokenizer(&args.tokenizer)?;
    let tok = tokenizer.as_deref();
    let mut out = serde_json::Map::new();
    if let Some(path) = &args.samples {
        let seqs = common::read_sequences(path, tok)?;
        if seqs.is_empty() {
            return Err(Error::Empty {
                op: "sepo eval",
                what: "no sample in the file",
            });
        }
        let refs: Vec<&[usize]> = seqs.iter().map(Vec::as_slice).collect();
        out.insert("samples".into(), json!(seqs.len()));
        let registry = RewardRegistry::default();
        for (key, expr) in [("reward", &args.reward), ("eval_reward", &args.eval_reward)] {
            if let Some(expr) = expr {
                let reward = registry.build(key, &parse_value(key, expr)?)?;
                let (mean, se) = sepo::assess::mean_se(&evaluate(&reward, &refs)?);
                out.insert(key.into(), json!({ "mean": mean, "se": se }));
            }
        }
        if let Some(reference) = &args.reference {
            let corpus = common::read_sequences(reference, tok)?;
            let alphabet = match tok {
                Some(t) => t.vocab_size(),
                None => {
                    1 + seqs
                        .iter()
                        .chain(&corpus)
                        .flatten()
                        .copied()
                        .max()
                        .unwrap_or(0)
                }
            };
            let r = kmer_correlation(&seqs, &corpus, args.k, alphabet)?;
            out.insert(format!("kmer_correlation_{}", args.k), json!(r));
        }
        for n in 1..=3 {
            if let Ok(d) = distinct_n(&seqs, n) {
                out.insert(format!("distinct_{n}"), json!(d));
            }
        }
        if let Ok(h) = mean_pairwise_hamming(&seqs) {
            out.insert("mean_pairwise_hamming".into(), json!(h));
        }
    }
    if let (Some(model), Some(reference)) = (&args.model, &args.reference_model) {
        let kl = common::with_model(
            model,
            Kl {
                reference: reference.clone(),
                num: args.num,
                seed: args.seed,
            },
        )?;
        out.insert("path_kl".into(), json!(kl));
    }
    if let (Some(model), Some(held_out)) = (&args.model, &args.elbo) {
        let data = common::read_sequences(held_out, tok)?;
        let config = ElboConfig {
            draws: args.elbo_draws,
            seed: args.seed,
            ..ElboConfig::default()
        };
        let bound = common::with_model(model, Bound { data, config })?;
        out.insert(
            "elbo".into(),
            json!({
                "sequences": bound.sequences,
                "tokens": bound.tokens,
                "nats_per_token": bound.nats_per_token,
                "se": bound.std_error,
                "perplexity": bound.perplexity(),
                // JSON has no infinity: the absorbing graph's prior term is reported as null.
                "prior_per_token": bound.prior_per_token.is_finite().then_some(bound.prior_per_token),
            }),
        );
    }
    if args.model.is_some() && args.reference_model.is_none() && args.elbo.is_none() {
        return Err(Error::invalid(
            "sepo eval --model",
            "alone",
            "add --reference-model DIR (path KL) or --elbo FILE (perplexity bound)",
        ));
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "sepo eval",
            "no input",
            "give --samples FILE, --model DIR --reference-model DIR, or --model DIR --elbo FILE",
        ));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&out).expect("JSON values")
    );
    Ok(())
}

/// The DWDSE bound of a checkpoint on held-out sequences (absorbing graph, log-linear schedule).
struct Bound {
    data: Vec<Vec<usize>>,
    config: ElboConfig,
}

impl WithModel for Bound {
    type Out = Elbo;
    fn run<M>(self, model: M) -> Result<Elbo>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + ModelKind + Clone + 'static,
    {
        let graph = Absorbing::from_states(model.num_states())?;
        elbo(
            &model,
            &graph,
            &LogLinear::default(),
            &self.data,
            &self.config,
        )
    }
}

/// The mean path KL `Σ_k Σ_l KL(p_θ(·|x_k) ‖ p_ref(·|x_k))` along the model's own first-hitting
/// trajectories (absorbing graph, log-linear schedule), an upper bound on the KL of the samples' laws.
struct Kl {
    reference: PathBuf,
    num: usize,
    seed: u64,
}

impl WithModel for Kl {
    type Out = f64;
    fn run<M>(self, model: M) -> Result<f64>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + ModelKind + Clone + 'static,
    {
        let (reference, _) = Checkpoint::new(&self.reference).load_model::<M>(&Cpu::default())?;
        let graph = Absorbing::from_states(model.num_states())?;
        let seq_len = sepo::train::seq_len_of(&model, None)?;
        let diffusion = Diffusion::new(graph, LogLinear::default());
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let cfg = SamplerConfig {
            record_trajectory: true,
            ..SamplerConfig::default()
        };
        let s = first_hitting(
            &Policy::current(&model),
            &diffusion,
            &cfg,
            (self.num, seq_len),
            None,
            &mut rng,
        )?;
        let trajectory = s.trajectory.as_ref().ok_or(Error::Empty {
            op: "sepo eval",
            what: "no trajectory recorded",
        })?;
        Ok(path_kl(
            &model,
            reference.params(),
            &diffusion.graph,
            trajectory,
            None,
            None,
        )?
        .0)
    }
}
