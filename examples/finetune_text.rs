//! Text end to end with LoRA: write a small corpus, pretrain a tiny character-level diffusion
//! transformer on it, tokenise prompts, fine-tune rank-4 adapters with plain SEPO on an in-library
//! reward, and report the paper's metric — the win rate of fine-tuned over pretrained completions as
//! judged by a separate evaluation reward, with a 95 % Wilson interval — plus the DWDSE perplexity bound
//! on held-out sentences; then save the adapters alone and the merged model, and reload both.
//!
//! ```sh
//! cargo run --release --example finetune_text -- --quick   # under a minute on a laptop CPU
//! cargo run --release --example finetune_text              # longer pretraining and fine-tuning
//! ```
//!
//! **The corpus** (written to `target/finetune_text/corpus.txt`): sentences `the <animal> is <adjective>`
//! over 8 animals and 12 adjectives (4 kind, 4 unkind, 4 neutral), drawn uniformly, one per line, each
//! padded with spaces to 20 characters. The tokenizer is [`Chars`] over `a–z` and space (27 tokens, the
//! mask is 27). The model is [`TransformerConfig::tiny`] with learned positions, pretrained with DWDSE.
//!
//! **Fine-tuning**: prompts `the cat is `, `the dog is `, `the fox is `, `the owl is ` (prefix tokens held
//! fixed by the sampler, one GRPO group per prompt); the training reward counts the word `good`
//! ([`MotifCount`] on its tokens). Only the adapters train ([`Lora`], `W' = W + (α/r)·A B` on every
//! attention and MLP projection): 8 192 scalars beside the trunk's ~130 k.
//!
//! **Evaluation**: a separate judge, never trained on, scores a completion +1 for any of the four kind
//! adjectives, −1 for an unkind one, 0 otherwise. For each prompt, 64 completions of the pretrained and
//! of the fine-tuned model are paired in draw order; a win counts 1, a tie ½. With `n` pairs and
//! `p̂ = (wins + ties/2)/n`, the Wilson score interval is
//! `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`, `z = 1.96`.

use std::path::Path;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use sepo::loss::{elbo, ElboConfig};
use sepo::prelude::*;
use sepo::reward::MotifCount;
use sepo::sample::{Condition, SamplerConfig};
use sepo::score::{Lora, LoraConfig, ScoreHead, Transformer, TransformerConfig};
use sepo::text::{Chars, Tokenizer};
use sepo::train::{
    Checkpoint, Corpus, FinetuneConfig, Finetuner, LogProb, LrSchedule, PretrainConfig, Pretrainer,
    SamplerKind,
};

const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz ";
const LEN: usize = 20;
const ANIMALS: [&str; 8] = ["cat", "dog", "fox", "owl", "cow", "pig", "hen", "ram"];
const KIND: [&str; 4] = ["good", "nice", "glad", "kind"];
const UNKIND: [&str; 4] = ["bad", "sad", "mean", "rude"];
const NEUTRAL: [&str; 4] = ["big", "old", "tall", "red"];
const PROMPTS: [&str; 4] = ["the cat is ", "the dog is ", "the fox is ", "the owl is "];
/// Completions per prompt and model for the win rate.
const JUDGED: usize = 64;

fn sentences(count: usize, seed: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let adjectives: Vec<&str> = KIND
        .iter()
        .chain(&UNKIND)
        .chain(&NEUTRAL)
        .copied()
        .collect();
    (0..count)
        .map(|_| {
            let animal = ANIMALS[rng.gen_range(0..ANIMALS.len())];
            let adjective = adjectives[rng.gen_range(0..adjectives.len())];
            format!("{:<LEN$}", format!("the {animal} is {adjective}"))
        })
        .collect()
}

/// The judge: +1 for a kind adjective, −1 for an unkind one, 0 otherwise (whole words only).
fn judge(text: &str) -> f64 {
    text.split_whitespace()
        .map(|w| {
            if KIND.contains(&w) {
                1.0
            } else if UNKIND.contains(&w) {
                -1.0
            } else {
                0.0
            }
        })
        .sum()
}

/// Completions of every prompt (`JUDGED` each, prompt-major) from `model`, decoded.
fn complete<M: ScoreModel<Elem = f32, Device = Cpu>>(
    model: &M,
    tok: &Chars,
    prompts: &[Vec<usize>],
    seed: u64,
) -> sepo::Result<Vec<String>> {
    let fixed: Vec<Option<usize>> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(p, JUDGED))
        .flat_map(|p| (0..LEN).map(|l| p.get(l).copied()))
        .collect();
    let condition = Condition::per_sequence(fixed);
    let (graph, schedule) = process();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let samples = sepo::sample::first_hitting(
        &Policy::current(model),
        &Diffusion::new(graph, schedule),
        &SamplerConfig::default(),
        (prompts.len() * JUDGED, LEN),
        Some(&condition),
        &mut rng,
    )?;
    samples.sequences().map(|s| tok.decode(s)).collect()
}

fn process() -> (Absorbing, LogLinear) {
    (
        Absorbing::with_tokens(ALPHABET.len()).expect("27 tokens"),
        LogLinear::default(),
    )
}

/// Wilson score interval of a proportion `p̂` over `n` trials at `z = 1.96`.
fn wilson(p: f64, n: f64) -> (f64, f64) {
    let z2 = 1.96f64 * 1.96;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = 1.96 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    (centre - half, centre + half)
}

fn flag<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args().find_map(|a| {
        a.strip_prefix(name)
            .and_then(|v| v.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    })
}

fn main() -> sepo::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let pretrain_steps: u64 = flag("--pretrain").unwrap_or(if quick { 300 } else { 1500 });
    let rounds: u64 = flag("--rounds").unwrap_or(if quick { 15 } else { 40 });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/finetune_text");
    std::fs::create_dir_all(&out).map_err(|source| sepo::Error::Io {
        path: out.clone(),
        source,
    })?;
    let clock = Instant::now();

    // 1. The corpus, written to disk and read back through the tokenizer.
    let corpus_path = out.join("corpus.txt");
    std::fs::write(&corpus_path, sentences(3000, 1).join("\n")).map_err(|source| {
        sepo::Error::Io {
            path: corpus_path.clone(),
            source,
        }
    })?;
    let tok = Chars::new(ALPHABET)?;
    let text = std::fs::read_to_string(&corpus_path).map_err(|source| sepo::Error::Io {
        path: corpus_path.clone(),
        source,
    })?;
    let train: Vec<Vec<usize>> = text
        .lines()
        .map(|l| tok.encode(l))
        .collect::<sepo::Result<_>>()?;
    let held_out: Vec<Vec<usize>> = sentences(64, 2)
        .iter()
        .map(|s| tok.encode(s))
        .collect::<sepo::Result<_>>()?;
    println!(
        "corpus: {} sentences of {LEN} characters ({}), e.g. {:?}",
        train.len(),
        corpus_path.display(),
        text.lines().next().unwrap_or("")
    );

    // 2. Pretraining (DWDSE).
    let (graph, schedule) = process();
    let config = TransformerConfig {
        learned_positions: true,
        ..TransformerConfig::tiny(ALPHABET.len() + 1, LEN, ScoreHead::Absorbing)
    };
    let pretrain = PretrainConfig {
        batch_size: 64,
        optimizer: AdamW::with_lr(2e-3),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 50,
            total: pretrain_steps,
            min_ratio: 0.1,
        },
        ..PretrainConfig::default()
    };
    let mut trainer = Pretrainer::new(
        Transformer::new(config, &Cpu::default(), 0)?,
        graph,
        schedule,
        pretrain,
    )?;
    trainer.fit(
        &Corpus::new(&train, ALPHABET.len())?,
        pretrain_steps,
        false,
        None,
    )?;
    let pretrained = trainer.model;
    println!(
        "pretrained {} parameters for {pretrain_steps} steps ({:.0} s)",
        pretrained.params().num_elements(),
        clock.elapsed().as_secs_f64()
    );

    // 3. Prompts and LoRA fine-tuning on the count of `good`.
    let prompts: Vec<Vec<usize>> = PROMPTS
        .iter()
        .map(|p| tok.encode(p))
        .collect::<sepo::Result<_>>()?;
    let good = MotifCount::new(tok.encode("good")?);
    let lora = Lora::new(pretrained.clone(), LoraConfig::dit(4, 8.0), 1)?;
    println!(
        "LoRA r = 4, α = 8 on {} projections: {} trainable scalars, {} frozen",
        lora.targets().len(),
        lora.trainable(),
        lora.frozen()
    );
    let (graph, schedule) = process();
    let ft_config = FinetuneConfig {
        group_size: 8,
        sampler: SamplerKind::FirstHitting(SamplerConfig {
            record_trajectory: true,
            ..SamplerConfig::default()
        }),
        log_prob: LogProb::Events { positions: 4 },
        epochs: 2,
        optimizer: AdamW::with_lr(1e-2),
        seed: 5,
        ..FinetuneConfig::new(LEN)
    };
    let mut ft = Finetuner::new(lora, graph, schedule, good, ft_config)?.with_prompts(&prompts)?;
    let history = ft.fit(rounds, false, None)?;
    println!(
        "fine-tuned {rounds} rounds of {} completions: mean count of `good` {:.3} → {:.3} ({:.0} s)",
        ft.config().batch(),
        history[0].reward,
        history[history.len() - 1].reward,
        clock.elapsed().as_secs_f64()
    );
    let tuned = ft.into_model();

    // 4. Win rate under the separate judge.
    let before = complete(&pretrained, &tok, &prompts, 100)?;
    let after = complete(&tuned, &tok, &prompts, 200)?;
    let (mut wins, mut ties) = (0usize, 0usize);
    for (a, b) in after.iter().zip(&before) {
        match judge(a).partial_cmp(&judge(b)) {
            Some(std::cmp::Ordering::Greater) => wins += 1,
            Some(std::cmp::Ordering::Equal) => ties += 1,
            _ => {}
        }
    }
    let n = after.len() as f64;
    let p = (wins as f64 + 0.5 * ties as f64) / n;
    let (lo, hi) = wilson(p, n);
    let mean = |v: &[String]| v.iter().map(|s| judge(s)).sum::<f64>() / v.len() as f64;
    println!(
        "judge: pretrained {:.3}, fine-tuned {:.3}; win rate of fine-tuned over pretrained {:.3} \
         (95 % Wilson [{lo:.3}, {hi:.3}]; {wins} wins, {ties} ties, {} pairs)",
        mean(&before),
        mean(&after),
        p,
        after.len()
    );
    for (a, b) in after.iter().zip(&before).step_by(JUDGED).take(4) {
        println!("   pretrained {b:?}  |  fine-tuned {a:?}");
    }

    // 5. The perplexity bound on held-out sentences (DWDSE, 16 times each).
    let (graph, schedule) = process();
    let cfg = ElboConfig {
        draws: 16,
        ..ElboConfig::default()
    };
    let b0 = elbo(&pretrained, &graph, &schedule, &held_out, &cfg)?;
    let b1 = elbo(&tuned, &graph, &schedule, &held_out, &cfg)?;
    println!(
        "held-out DWDSE bound: pretrained {:.3} ± {:.3} nats/char (perplexity ≤ {:.2}), fine-tuned {:.3} ± {:.3} (≤ {:.2})",
        b0.nats_per_token,
        b0.std_error,
        b0.perplexity(),
        b1.nats_per_token,
        b1.std_error,
        b1.perplexity()
    );

    // 6. Save the adapters alone and the merged model; reload both and check the scores.
    let adapters = out.join("adapters.safetensors");
    tuned.save_adapters(&adapters)?;
    let reloaded = Lora::load_adapters(pretrained.clone(), &adapters)?;
    let model_dir = Checkpoint::new(out.join("merged"));
    let merged = tuned.merged()?;
    model_dir.save_model(&merged, serde_json::json!({ "example": "finetune_text" }))?;
    let (back, _) = model_dir.load_model::<Transformer<f32, Cpu>>(&Cpu::default())?;
    let probe = &held_out[0];
    let sigma = [1.0];
    let s_tuned = tuned.log_scores_host(probe, 1, LEN, &sigma)?;
    let gap = |s: &[f64]| {
        s.iter()
            .zip(&s_tuned)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    };
    println!(
        "saved {} ({} bytes) and {}; reloaded: adapters max |Δ log s| = {:.1e}, merged model {:.1e} ({:.0} s in all)",
        adapters.display(),
        std::fs::metadata(&adapters).map(|m| m.len()).unwrap_or(0),
        model_dir.model_path().display(),
        gap(&reloaded.log_scores_host(probe, 1, LEN, &sigma)?),
        gap(&back.log_scores_host(probe, 1, LEN, &sigma)?),
        clock.elapsed().as_secs_f64()
    );
    Ok(())
}
