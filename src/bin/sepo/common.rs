//! What the commands share: tokenizers by name, reading sequence files, loading a checkpoint of
//! either architecture.

use std::path::Path;

use sepo::dfdx::prelude::Cpu;
use sepo::score::{EnergyModel, Mlp, ModelKind, ScoreModel, Transformer};
use sepo::text::{Chars, Nucleotide, Tokenizer};
use sepo::train::Checkpoint;
use sepo::{Error, Result};

/// `nucleotide`, `chars:ALPHABET`, `bpe:PATH/tokenizer.json` or `ids` (whitespace-separated ids).
pub fn tokenizer(spec: &str) -> Result<Option<Box<dyn Tokenizer>>> {
    let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
    Ok(match kind {
        "ids" => None,
        "nucleotide" => Some(Box::new(Nucleotide::new())),
        "chars" => Some(Box::new(Chars::new(arg)?)),
        "bpe" => Some(Box::new(sepo::text::Bpe::from_file(arg)?)),
        _ => {
            return Err(Error::invalid(
                "--tokenizer",
                spec,
                "expected nucleotide, chars:ALPHABET, bpe:PATH or ids",
            ))
        }
    })
}

/// `text` as token ids.
pub fn encode(tokenizer: Option<&dyn Tokenizer>, text: &str) -> Result<Vec<usize>> {
    match tokenizer {
        Some(t) => t.encode(text),
        None => text
            .split_whitespace()
            .map(|w| {
                w.parse()
                    .map_err(|_| Error::invalid("token id", w, "expected an integer ≥ 0"))
            })
            .collect(),
    }
}

/// `ids` as text.
pub fn decode(tokenizer: Option<&dyn Tokenizer>, ids: &[usize]) -> Result<String> {
    match tokenizer {
        Some(t) => t.decode(ids),
        None => Ok(ids
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" ")),
    }
}

/// The non-empty lines of `path`, each encoded.
pub fn read_sequences(path: &Path, tokenizer: Option<&dyn Tokenizer>) -> Result<Vec<Vec<usize>>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            encode(tokenizer, l.trim()).map_err(|e| Error::BadRecord {
                path: path.to_path_buf(),
                record: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Something to do with a model of either architecture.
pub trait WithModel {
    /// What it returns.
    type Out;
    /// Does it.
    fn run<M>(self, model: M) -> Result<Self::Out>
    where
        M: ScoreModel<Elem = f32, Device = Cpu> + EnergyModel + ModelKind + Clone + 'static;
}

/// The checkpoint's `config.json`.
fn config_json(dir: &Path) -> Result<serde_json::Value> {
    let committed = Checkpoint::new(dir).open()?;
    let bytes = committed.read(sepo::train::checkpoint::CONFIG_FILE)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::CorruptCheckpoint {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The architecture `config.json` of the checkpoint in `dir` names (`transformer`, `mlp`).
pub fn kind(dir: &Path) -> Result<String> {
    Ok(config_json(dir)?["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The graph the checkpoint's score head was built for: `absorbing` or `uniform` (from the model
/// configuration's `head`).
pub fn graph_of(dir: &Path) -> Result<String> {
    Ok(config_json(dir)?["model"]["head"]
        .as_str()
        .unwrap_or("Absorbing")
        .to_lowercase())
}

/// Loads the checkpoint in `dir` (pretrained or fine-tuned) as its architecture and hands it to `job`.
pub fn with_model<J: WithModel>(dir: &Path, job: J) -> Result<J::Out> {
    let ckpt = Checkpoint::new(dir);
    let dev = Cpu::default();
    match kind(dir)?.as_str() {
        "transformer" => job.run(ckpt.load_model::<Transformer<f32, Cpu>>(&dev)?.0),
        "mlp" => job.run(ckpt.load_model::<Mlp<f32, Cpu>>(&dev)?.0),
        other => Err(Error::CheckpointMismatch {
            path: dir.to_path_buf(),
            what: "model kind".into(),
            expected: "transformer or mlp".into(),
            found: other.into(),
        }),
    }
}
