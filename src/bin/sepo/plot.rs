//! `sepo plot`: reward, eval reward and KL against rounds, as SVG.

use std::path::PathBuf;

/// Options of `sepo plot`.
#[derive(clap::Args)]
pub struct Args {
    /// The metrics file (JSON lines, as `sepo finetune` writes).
    #[arg(long)]
    metrics: PathBuf,
    /// The SVG file to write.
    #[arg(long, default_value = "metrics.svg")]
    out: PathBuf,
}

pub fn run(args: Args) -> sepo::Result<()> {
    sepo::plot::plot_metrics(&args.metrics, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
