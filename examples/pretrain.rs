//! Pretrains a tiny diffusion transformer on a synthetic DNA-like corpus (4 nucleotides + mask,
//! length 32) with the denoising score entropy, saves a checkpoint, and samples from it.
//!
//! ```sh
//! cargo run --release --example pretrain            # 600 steps
//! cargo run --release --example pretrain -- --quick # 150 steps
//! ```

use rand::SeedableRng;
use sepo::data::to_dna_string;
use sepo::prelude::*;
use sepo::sample::{first_hitting, SamplerConfig};

fn main() -> sepo::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps = if quick { 150 } else { 600 };
    let dir = std::env::temp_dir().join(format!(
        "sepo-pretrain-{}",
        if quick { "quick" } else { "full" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "pretraining a tiny transformer for {steps} steps (checkpoint: {})",
        dir.display()
    );
    let model = sepo::demo::pretrained(&dir, steps, true)?;

    // Reload from disk, to show the checkpoint round-trips, then sample with the first-hitting sampler.
    let (model_back, _) =
        Checkpoint::new(&dir).load_model::<sepo::score::Transformer<f32, Cpu>>(&Cpu::default())?;
    assert_eq!(model.params().flat_f64(), model_back.params().flat_f64());
    let (graph, schedule) = sepo::demo::process();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let samples = first_hitting(
        &Policy::current(&model_back),
        &Diffusion::new(graph, schedule),
        &SamplerConfig::default(),
        (256, sepo::demo::LEN),
        None,
        &mut rng,
    )?;
    let seqs: Vec<Vec<usize>> = samples.sequences().map(<[usize]>::to_vec).collect();
    for s in seqs.iter().take(5) {
        println!("  {}", to_dna_string(s));
    }
    println!(
        "3-mer correlation with the corpus: {:.3}",
        sepo::demo::kmer_correlation(&seqs)?
    );
    Ok(())
}
