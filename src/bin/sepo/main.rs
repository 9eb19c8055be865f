//! `sepo`: pretrain, fine-tune, sample, evaluate and plot discrete diffusion models from the command
//! line. Runs are described by TOML files with `policy!`'s keys ([`sepo::config`]); `sepo <command>
//! --help` lists each command's options.
//!
//! ```sh
//! sepo pretrain --demo --steps 300 --out runs/pretrain
//! sepo finetune --config run.toml --plot runs/tune/metrics.svg
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod common;
mod eval;
mod finetune;
mod plot;
mod pretrain;
mod sample;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Fine-tuning discrete diffusion models with policy gradients (SEPO).
#[derive(Parser)]
#[command(name = "sepo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain a diffusion model on a corpus file (DWDSE) and commit it to a checkpoint directory.
    Pretrain(pretrain::Args),
    /// Fine-tune a model with SEPO as a TOML run file (`policy!`'s keys) describes.
    Finetune(finetune::Args),
    /// Draw samples from a model, unconditionally, after a prefix, or infilling between a prefix
    /// and a suffix; writes them detokenised, one per line.
    Sample(sample::Args),
    /// Score a file of samples: rewards, k-mer correlation with a reference, diversity; and the
    /// path KL of a model to a reference model.
    Eval(eval::Args),
    /// Draw reward, eval reward and KL against rounds from a metrics file, as SVG.
    Plot(plot::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C during a run's `fit` stops it at the next round boundary, saved; elsewhere it exits.
    let _ = sepo::train::interrupt::install();
    let result = match cli.command {
        Command::Pretrain(a) => pretrain::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Plot(a) => plot::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ sepo::Error::Interrupted { .. }) => {
            eprintln!("{e}");
            ExitCode::from(sepo::train::interrupt::EXIT_STATUS as u8)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
