//! sepo's main job on CPU in a few minutes: pretrain a tiny discrete diffusion transformer on a
//! DNA-like corpus, then fine-tune it with SEPO so that its samples score higher on a reward (GC content)
//! while a KL term keeps it close to the pretrained model. Watch the reward rise on the progress bar.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

mod common;

use sepo::policy::{CleanScores, ConcreteScore};
use sepo::prelude::*;
use sepo::reward::GcContent;
use sepo::sample::SamplerConfig;
use sepo::train::{FinetuneConfig, Finetuner, LogProb, SamplerKind};

fn main() -> sepo::Result<()> {
    let dir = std::env::temp_dir().join("sepo-quickstart");
    let _ = std::fs::remove_dir_all(&dir);

    println!("1/2 pretraining a tiny diffusion transformer (DWDSE) on a synthetic DNA-like corpus");
    let model = common::pretrained(&dir.join("pretrained"), 300, true)?;

    println!("2/2 fine-tuning it with SEPO on GC content (KL β = 0.01 to the pretrained model)");
    let (graph, schedule) = common::process();
    let config = FinetuneConfig {
        groups: 4,
        group_size: 8,
        sampler: SamplerKind::FirstHitting(SamplerConfig::default()),
        log_prob: LogProb::ConcreteScore(ConcreteScore {
            clean: CleanScores::MaskedSubset { positions: 4 },
            ..ConcreteScore::default()
        }),
        optimizer: AdamW::with_lr(3e-4),
        epochs: 2,
        minibatch: 16,
        kl: 0.01,
        kl_last_steps: Some(8),
        ..FinetuneConfig::new(common::LEN)
    };
    let mut run = Finetuner::new(model, graph, schedule, GcContent::default(), config)?;
    let history = run.fit(20, true, None)?;
    println!("\nround  reward  reward_std  kl      clip_ratio");
    for m in history.iter().step_by(4).chain(history.last()) {
        println!(
            "{:>5}  {:.3}   {:.3}       {:.4}  {:.3}",
            m.round,
            m.reward,
            m.reward_std,
            m.kl.unwrap_or(0.0),
            m.clip_ratio
        );
    }
    let (first, last) = (&history[0], &history[history.len() - 1]);
    println!(
        "\nmean GC content: {:.3} → {:.3}",
        first.reward, last.reward
    );
    Ok(())
}
