//! Fine-tunes a tiny pretrained diffusion transformer on a DNA-like corpus with SEPO: the training reward
//! counts a motif (`TATA`), a separate held-out evaluation reward (a CNN motif classifier loaded from
//! safetensors) is reported but never trained on, and the 3-mer correlation with the corpus checks that
//! samples stay natural.
//!
//! ```sh
//! cargo run --release --example finetune_dna             # longer run
//! cargo run --release --example finetune_dna -- --quick  # about a minute on CPU
//! ```

mod common;

use rand::SeedableRng;
use sepo::data::to_dna_string;
use sepo::policy::Mixture;
use sepo::policy::{CleanScores, ConcreteScore};
use sepo::prelude::*;
use sepo::reward::{evaluate, CnnClassifier, MotifCount, Reward};
use sepo::sample::{first_hitting, SamplerConfig};
use sepo::train::{FinetuneConfig, Finetuner, LogProb, MetricsWriter, SamplerKind};

const TATA: [usize; 4] = [3, 0, 3, 0];

fn summary<M: ScoreModel<f32, Cpu>>(
    label: &str,
    model: &M,
    reward: &dyn Reward,
    eval: &dyn Reward,
) -> sepo::Result<()> {
    let (graph, schedule) = common::process();
    let mut rng = rand::rngs::StdRng::seed_from_u64(123);
    let s = first_hitting(
        model,
        model.params(),
        &graph,
        &schedule,
        &SamplerConfig::default(),
        256,
        common::LEN,
        None,
        &mut rng,
    )?;
    let seqs: Vec<Vec<usize>> = s.sequences().map(<[usize]>::to_vec).collect();
    let refs: Vec<&[usize]> = seqs.iter().map(Vec::as_slice).collect();
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "{label:>10}: reward {:.3}  eval_reward {:.3}  3-mer correlation {:.3}   e.g. {}",
        mean(evaluate(reward, &refs)?),
        mean(evaluate(eval, &refs)?),
        common::kmer_correlation(&seqs)?,
        to_dna_string(&seqs[0])
    );
    Ok(())
}

fn main() -> sepo::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let (pretrain_steps, rounds) = if quick { (150, 12) } else { (600, 60) };
    let dir = std::env::temp_dir().join(format!(
        "sepo-finetune-dna-{}",
        if quick { "quick" } else { "full" }
    ));
    std::fs::create_dir_all(&dir).map_err(|source| sepo::Error::Io {
        path: dir.clone(),
        source,
    })?;
    println!("1. pretraining (or loading) a tiny transformer: {pretrain_steps} steps");
    let model = common::pretrained(&dir.join("pretrained"), pretrain_steps, true)?;

    // The held-out oracle: a CNN motif classifier, saved and loaded as safetensors like a trained one.
    let oracle_path = dir.join("oracle.safetensors");
    CnnClassifier::motif_detector(4, &[TATA.to_vec()])?.save(&oracle_path)?;
    let eval = CnnClassifier::load(&oracle_path)?.probability();
    let reward = MotifCount::new(TATA.to_vec());
    summary("before", &model, &reward, &eval)?;

    let (graph, schedule) = common::process();
    let config = FinetuneConfig {
        groups: 4,
        group_size: 8,
        sampler: SamplerKind::FirstHitting(SamplerConfig {
            record_trajectory: true,
            ..SamplerConfig::default()
        }),
        log_prob: LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::MaskedSubset { positions: 4 },
            ..ConcreteScore::default()
        }),
        estimator: Mixture::grpo(0.2),
        epochs: 2,
        minibatch: 16,
        optimizer: AdamW::with_lr(1e-3),
        kl: 0.02,
        kl_last_steps: Some(8),
        ..FinetuneConfig::new(common::LEN)
    };
    println!(
        "2. SEPO fine-tuning: {rounds} rounds of {} samples",
        config.batch()
    );
    let mut ft = Finetuner::new(model, graph, schedule, reward.clone(), config)?
        .with_eval_reward(Box::new(eval.clone()));
    let mut metrics = MetricsWriter::append(&dir.join("finetune.jsonl"))?;
    let history = ft.fit(rounds, true, Some(&mut metrics))?;
    let first = &history[0];
    let last = &history[history.len() - 1];
    println!(
        "   round 0: reward {:.3} kl {:.4} | round {}: reward {:.3} kl {:.4} (metrics: {})",
        first.reward,
        first.kl.unwrap_or(0.0),
        last.round,
        last.reward,
        last.kl.unwrap_or(0.0),
        dir.join("finetune.jsonl").display()
    );
    summary("after", &ft.model, &reward, &eval)?;
    Ok(())
}
