//! sepo's one error type.
//!
//! Every public function that takes user data validates it at entry and reports the offender by name,
//! index and value; hot loops behind that boundary are infallible. Device failures (a CUDA allocation, say)
//! are carried as [`Error::Device`] with the operation that failed.

use std::path::PathBuf;

/// Result alias used throughout sepo.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sepo, grouped by where it comes from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // === Input validation ===
    /// A token id is not in `[0, vocab)`.
    #[error("token {token} at sequence {sequence}, position {position} is outside the vocabulary of {vocab} states")]
    TokenOutOfVocab {
        /// Index of the sequence in its batch.
        sequence: usize,
        /// Position within the sequence.
        position: usize,
        /// The offending token id.
        token: usize,
        /// Number of states of the graph or model.
        vocab: usize,
    },
    /// Two inputs disagree in shape, or an input has the wrong shape for the operation.
    #[error("shape mismatch in {op}: expected {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// The operation that checked the shape.
        op: &'static str,
        /// The shape it needed.
        expected: Vec<usize>,
        /// The shape it got.
        got: Vec<usize>,
    },
    /// A batch with no sequences (or sequences of length zero) where at least one is needed.
    #[error("empty input to {op}: {what}")]
    Empty {
        /// The operation that refused it.
        op: &'static str,
        /// What was empty.
        what: &'static str,
    },
    /// A configuration value outside its valid range.
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        /// Name of the parameter, as the user wrote it.
        name: &'static str,
        /// Its value, formatted.
        value: String,
        /// What it must satisfy.
        reason: String,
    },
    /// A run configuration file names an unknown key or option, or gives one a value of the wrong
    /// form (`sepo::config`); `key` is the key as written (`sampler`, `sampler.steps`).
    #[error("config key `{key}`: {reason}")]
    Config {
        /// The key or option, as written.
        key: String,
        /// What is wrong, with a "did you mean" where one is close.
        reason: String,
    },
    /// A value that must be finite (a time, a noise level, a weight) is NaN or infinite.
    #[error("non-finite {what} at index {index}: {value}")]
    NonFinite {
        /// What the value is.
        what: &'static str,
        /// Where it was found.
        index: usize,
        /// The value.
        value: f64,
    },

    // === Rewards ===
    /// A reward returned NaN or an infinity.
    #[error("reward `{reward}` returned the non-finite value {value} for sample {sample}")]
    NonFiniteReward {
        /// The reward's name.
        reward: String,
        /// Index of the sample in the batch it scored.
        sample: usize,
        /// The value it returned.
        value: f64,
    },
    /// A reward returned a value outside the range it declared.
    #[error("reward `{reward}` returned {value} for sample {sample}, outside its declared range [{min}, {max}]")]
    RewardOutOfRange {
        /// The reward's name.
        reward: String,
        /// Index of the sample in the batch it scored.
        sample: usize,
        /// The value it returned.
        value: f64,
        /// Declared lower bound.
        min: f64,
        /// Declared upper bound.
        max: f64,
    },
    /// A reward returned a different number of values than it was given sequences.
    #[error("reward `{reward}` returned {got} values for a batch of {expected} sequences")]
    RewardCount {
        /// The reward's name.
        reward: String,
        /// Batch size.
        expected: usize,
        /// Values returned.
        got: usize,
    },

    // === Training ===
    /// A loss or gradient became NaN or infinite; the update was not applied.
    #[error("non-finite {what} at step {step}; parameters were left unchanged")]
    Diverged {
        /// What went non-finite (`loss`, `gradient norm`, `parameters`, ...).
        what: &'static str,
        /// Optimiser step at which it happened.
        step: u64,
    },

    // === Checkpoints and files ===
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint file could not be parsed (truncated, not safetensors, bad JSON).
    #[error("corrupt checkpoint {path}: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint parsed but does not fit the model it is loaded into.
    #[error("checkpoint {path} does not match: {what} expected {expected}, found {found}")]
    CheckpointMismatch {
        /// The file.
        path: PathBuf,
        /// What differs (a tensor name, a config key).
        what: String,
        /// Value the model expects.
        expected: String,
        /// Value in the file.
        found: String,
    },

    // === Text and sequence files ===
    /// A tokenizer met a character it has no token for (and was not told to skip or mask it).
    #[error("{tokenizer} tokenizer: no token for {symbol:?} at character {position}")]
    UnknownSymbol {
        /// Which tokenizer (`nucleotide`, `character`, `bpe`).
        tokenizer: &'static str,
        /// The character.
        symbol: char,
        /// Its index in the text, counted in characters (not bytes) from 0.
        position: usize,
    },
    /// A record of a corpus file cannot be read or tokenised (malformed FASTA/FASTQ, a line that is
    /// not UTF-8, an unknown symbol, a length the packing refuses).
    #[error("{path}, record {record}: {reason}")]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// The record's number, from 1 (for plain text, the line number).
        record: usize,
        /// What is wrong with it (names the record's id where the format has one).
        reason: String,
    },
    /// A corpus file yields nothing usable: no records at all, or too few tokens for one chunk.
    #[error("empty corpus {path}: {reason}")]
    EmptyCorpus {
        /// The file.
        path: PathBuf,
        /// Why nothing came out.
        reason: String,
    },
    /// A tokenizer file cannot be loaded or does not fit sepo's conventions.
    #[error("tokenizer {path}: {reason}")]
    BadTokenizer {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A committed checkpoint's file is missing, or its size or checksum differs from what the
    /// manifest recorded when it was committed (a damaged file, never a half-written one: see
    /// [`crate::train::commit`]).
    #[error("checkpoint file {path}: {problem}")]
    CheckpointIntegrity {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Integrity,
    },
    /// A weight file in a format or element type sepo does not read (a legacy pickle, integer
    /// weights, a PyTorch archive without the `pytorch` feature, an unknown published layout).
    #[error("unsupported weights {path}: {reason}")]
    UnsupportedWeights {
        /// The file (or model directory).
        path: PathBuf,
        /// What sepo cannot read, and what would work.
        reason: String,
    },
    /// A model id is not in the local hub cache (`models--<org>--<name>/snapshots/<revision>`).
    #[error("model {id} (revision {revision}) is not in the hub cache {cache}")]
    ModelNotCached {
        /// The model id (`org/name`).
        id: String,
        /// The revision asked for (a branch, tag or commit).
        revision: String,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// The directory holds no committed checkpoint (nothing was ever published there).
    #[error("no committed checkpoint in {path}")]
    NoCheckpoint {
        /// The directory.
        path: PathBuf,
    },
    /// Another process (or another writer in this one) holds the checkpoint directory's lock.
    #[error("checkpoint directory {path} is locked by another writer")]
    CheckpointBusy {
        /// The directory.
        path: PathBuf,
    },
    /// A resume whose configuration differs from the saved run's in a key that changes the run.
    #[error("cannot resume from {path}: `{key}` is {saved} in the checkpoint but {resuming} now")]
    ResumeMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The first differing key (`seed`, `optimizer.lr`, `estimator.components[0].clip`, ...).
        key: String,
        /// Its value in the checkpoint (JSON).
        saved: String,
        /// Its value in the resuming run (JSON).
        resuming: String,
    },
    /// A run stopped by Ctrl-C / SIGTERM ([`crate::train::interrupt`]) at a step boundary, after
    /// committing a checkpoint if one was configured.
    #[error("interrupted after step {completed}{}", .checkpoint.as_ref().map_or(String::new(), |p| format!(": checkpoint committed to {}, resume from it", p.display())))]
    Interrupted {
        /// Steps (rounds, updates) completed, all of them in the checkpoint if there is one.
        completed: u64,
        /// The checkpoint directory committed at the stop, if the run had one.
        checkpoint: Option<PathBuf>,
    },

    // === Device ===
    /// The tensor backend failed (allocation, kernel launch).
    #[error("device error in {op}: {message}")]
    Device {
        /// The operation.
        op: &'static str,
        /// The backend's message.
        message: String,
    },
}

/// What is wrong with one file of a committed checkpoint ([`Error::CheckpointIntegrity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Integrity {
    /// The file is not there, or the committed checkpoint does not list it.
    Missing,
    /// Its length differs from the committed one (a truncated or appended file).
    Size {
        /// Bytes recorded in the manifest.
        expected: u64,
        /// Bytes found.
        found: u64,
    },
    /// Same length, different CRC-64 (a flipped byte, an edited file).
    Checksum {
        /// CRC-64/XZ recorded in the manifest (hex).
        expected: String,
        /// CRC-64/XZ of the bytes found (hex).
        found: String,
    },
}

impl std::fmt::Display for Integrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Integrity::Missing => write!(f, "missing from the committed checkpoint"),
            Integrity::Size { expected, found } => {
                write!(f, "{found} bytes where {expected} were committed")
            }
            Integrity::Checksum { expected, found } => {
                write!(f, "CRC-64 {found} where {expected} was committed")
            }
        }
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(
        name: &'static str,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Maps any displayable backend error into [`Error::Device`].
    pub fn device<Er: std::fmt::Display>(op: &'static str) -> impl FnOnce(Er) -> Self {
        move |e| Error::Device {
            op,
            message: e.to_string(),
        }
    }
}

/// Checks that `x` is finite, naming it in the error.
pub fn ensure_finite(what: &'static str, index: usize, x: f64) -> Result<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Error::NonFinite {
            what,
            index,
            value: x,
        })
    }
}
