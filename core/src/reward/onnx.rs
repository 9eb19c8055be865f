//! A reward backed by an ONNX model, run by `tract` (pure Rust, CPU).
//!
//! The model is declared, not guessed: [`OnnxSpec`] names the input encoding (one-hot `[B, L, K]` in
//! `f32`/`f64`, or token ids `[B, L]` in `i64`/`i32`), the sequence length (fixed, or any length when
//! the model's length axis is dynamic), which output column is the reward and whether it is read raw or
//! as a probability. [`OnnxReward::load`] compares the declaration with the input the file itself
//! declares (rank, element type, every fixed axis) and with the output it computes (`[B, C]` or `[B]`,
//! the column inside `C`); any difference is a typed [`Error::CheckpointMismatch`] before anything runs.
//! The batch axis is symbolic, so one optimised plan serves every batch size; sequences are scored in
//! chunks of [`OnnxSpec::max_batch`] rows.
//!
//! Reward value of sequence `x` with output row `z = f(enc(x)) ∈ ℝ^C` and column `j`:
//!
//! - [`OnnxReadout::Raw`]: `r(x) = z_j`;
//! - [`OnnxReadout::Probability`]: `r(x) = softmax(z)_j = e^{z_j} / Σ_c e^{z_c}` for `C ≥ 2`, and the
//!   sigmoid `σ(z_0) = 1/(1 + e^{−z_0})` for a single output (a binary classifier's logit);
//!
//! where `enc(x)_{l,k} = [x_l = k]` (one-hot) or `enc(x)_l = x_l` (ids).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use super::Reward;
use crate::error::{Error, Result};

/// How a sequence is fed to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxEncoding {
    /// One-hot `[B, L, K]`: `enc(x)_{b,l,k} = 1` if `x_{b,l} = k`, else 0.
    OneHot {
        /// Number of tokens `K` (the last axis).
        alphabet: usize,
    },
    /// Token ids `[B, L]`, each `< vocab`.
    TokenIds {
        /// Number of tokens the model embeds (ids must be `< vocab`).
        vocab: usize,
    },
}

impl OnnxEncoding {
    /// Tokens accepted: ids must be `< tokens()`.
    pub fn tokens(&self) -> usize {
        match *self {
            OnnxEncoding::OneHot { alphabet } => alphabet,
            OnnxEncoding::TokenIds { vocab } => vocab,
        }
    }
}

/// Element type of the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxDtype {
    /// `float32` (one-hot).
    F32,
    /// `float64` (one-hot).
    F64,
    /// `int64` (token ids; what PyTorch exports for `LongTensor` ids).
    I64,
    /// `int32` (token ids).
    I32,
}

impl OnnxDtype {
    fn datum(self) -> DatumType {
        match self {
            OnnxDtype::F32 => DatumType::F32,
            OnnxDtype::F64 => DatumType::F64,
            OnnxDtype::I64 => DatumType::I64,
            OnnxDtype::I32 => DatumType::I32,
        }
    }
}

/// How the selected output column becomes the reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnnxReadout {
    /// The output itself (a logit, a regression value): `r = z_j`.
    Raw,
    /// `softmax(z)_j` over the `C ≥ 2` outputs, or `σ(z_0)` for one output; range `[0, 1]`.
    Probability,
}

/// The declaration an ONNX reward model is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxSpec {
    /// Input encoding.
    pub encoding: OnnxEncoding,
    /// Input element type (`F32`/`F64` for one-hot, `I64`/`I32` for ids).
    pub dtype: OnnxDtype,
    /// Sequence length `L`; `None` accepts any length (the model's length axis must then be dynamic).
    pub seq_len: Option<usize>,
    /// Which output column is the reward.
    pub output: usize,
    /// How the column is read.
    pub readout: OnnxReadout,
    /// Rows per model run (bounds activation memory).
    pub max_batch: usize,
}

impl OnnxSpec {
    /// One-hot `[B, L, alphabet]` in `f32`, output column `output` read raw, chunks of 1024 rows.
    pub fn one_hot(alphabet: usize, seq_len: Option<usize>, output: usize) -> Self {
        Self {
            encoding: OnnxEncoding::OneHot { alphabet },
            dtype: OnnxDtype::F32,
            seq_len,
            output,
            readout: OnnxReadout::Raw,
            max_batch: 1024,
        }
    }

    /// Token ids `[B, L]` (`< vocab`) in `i64`, output column `output` read raw, chunks of 1024 rows.
    pub fn token_ids(vocab: usize, seq_len: Option<usize>, output: usize) -> Self {
        Self {
            encoding: OnnxEncoding::TokenIds { vocab },
            dtype: OnnxDtype::I64,
            ..Self::one_hot(vocab, seq_len, output)
        }
    }

    /// Reads the column as a probability ([`OnnxReadout::Probability`]).
    pub fn probability(mut self) -> Self {
        self.readout = OnnxReadout::Probability;
        self
    }

    fn validate(&self) -> Result<()> {
        crate::check::nonzero("OnnxSpec tokens", self.encoding.tokens())?;
        crate::check::nonzero("OnnxSpec::max_batch", self.max_batch)?;
        if let Some(l) = self.seq_len {
            crate::check::nonzero("OnnxSpec::seq_len", l)?;
        }
        let fits = matches!(
            (self.encoding, self.dtype),
            (OnnxEncoding::OneHot { .. }, OnnxDtype::F32 | OnnxDtype::F64)
                | (
                    OnnxEncoding::TokenIds { .. },
                    OnnxDtype::I64 | OnnxDtype::I32
                )
        );
        if !fits {
            return Err(Error::invalid(
                "OnnxSpec::dtype",
                format!("{:?}", self.dtype),
                format!(
                    "{:?} takes a float (one-hot) or an integer (ids) input",
                    self.encoding
                ),
            ));
        }
        Ok(())
    }

    /// The declared input shape, `B` symbolic, for messages.
    fn shape_text(&self) -> String {
        let l = self.seq_len.map_or("L".to_string(), |l| l.to_string());
        match self.encoding {
            OnnxEncoding::OneHot { alphabet } => format!("[B, {l}, {alphabet}] {:?}", self.dtype),
            OnnxEncoding::TokenIds { .. } => format!("[B, {l}] {:?}", self.dtype),
        }
    }
}

type Plan = Arc<TypedRunnableModel>;

/// A batched reward computed by an ONNX model (see the module docs for the formula).
#[derive(Clone)]
pub struct OnnxReward {
    plan: Plan,
    spec: OnnxSpec,
    path: PathBuf,
    /// Name in errors and metrics (default: the file stem).
    pub name: String,
}

impl std::fmt::Debug for OnnxReward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxReward")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Two rewards are equal when they load the same file under the same declaration and name.
impl PartialEq for OnnxReward {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.spec == other.spec && self.name == other.name
    }
}

fn mismatch(
    path: &Path,
    what: &str,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Error {
    Error::CheckpointMismatch {
        path: path.to_path_buf(),
        what: what.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

impl OnnxReward {
    /// Loads and optimises the model at `path`, checked against `spec` (see the module docs).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::CorruptCheckpoint`] when it is not an ONNX
    /// model tract can parse, [`Error::CheckpointMismatch`] when its input or output does not fit the
    /// declaration, [`Error::InvalidParameter`] for an inconsistent `spec`.
    pub fn load(path: &Path, spec: OnnxSpec) -> Result<Self> {
        spec.validate()?;
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| Error::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: format!("not a loadable ONNX model: {e}"),
            })?;
        Self::check_declared_input(&model, &spec, path)?;
        let batch = model.sym("B");
        let length: TDim = match spec.seq_len {
            Some(l) => l.to_dim(),
            None => model.sym("L").to_dim(),
        };
        let mut dims: TVec<TDim> = tvec![batch.to_dim(), length];
        if let OnnxEncoding::OneHot { alphabet } = spec.encoding {
            dims.push(alphabet.to_dim());
        }
        let fact = InferenceFact::dt_shape(spec.dtype.datum(), dims);
        let typed = model
            .with_input_fact(0, fact)
            .and_then(|m| m.into_optimized())
            .map_err(|e| {
                mismatch(
                    path,
                    "model under the declared input",
                    spec.shape_text(),
                    format!("a graph that does not type-check with it: {e}"),
                )
            })?;
        Self::check_output(&typed, &spec, path)?;
        let plan = typed
            .into_runnable()
            .map_err(|e| Error::CorruptCheckpoint {
                path: path.to_path_buf(),
                reason: format!("cannot plan the model: {e}"),
            })?;
        Ok(Self {
            plan,
            spec,
            path: path.to_path_buf(),
            name: path
                .file_stem()
                .map_or("onnx".into(), |s| s.to_string_lossy().into_owned()),
        })
    }

    /// Renames the reward (errors and metrics).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The declaration it was loaded under.
    pub fn spec(&self) -> &OnnxSpec {
        &self.spec
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The graph's own input declaration must agree with the spec: one input, the declared rank and
    /// element type, and every axis the file fixes equal to the declared one.
    fn check_declared_input(model: &InferenceModel, spec: &OnnxSpec, path: &Path) -> Result<()> {
        let inputs = model.inputs.len();
        if inputs != 1 {
            return Err(mismatch(path, "number of inputs", "1", inputs.to_string()));
        }
        let fact = model
            .input_fact(0)
            .map_err(|e| mismatch(path, "input 0", spec.shape_text(), e.to_string()))?;
        if let Some(dt) = fact.datum_type.concretize() {
            if dt != spec.dtype.datum() {
                return Err(mismatch(
                    path,
                    "input element type",
                    format!("{:?} ({:?})", spec.dtype, spec.encoding),
                    format!("{dt:?}"),
                ));
            }
        }
        let found: Vec<Option<i64>> = fact
            .shape
            .dims()
            .map(|d| d.concretize().and_then(|d| d.as_i64()))
            .collect();
        let show = |dims: &[Option<i64>]| {
            let parts: Vec<String> = dims
                .iter()
                .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
                .collect();
            format!("[{}]", parts.join(", "))
        };
        let mut declared: Vec<Option<i64>> = vec![None, spec.seq_len.map(|l| l as i64)];
        if let OnnxEncoding::OneHot { alphabet } = spec.encoding {
            declared.push(Some(alphabet as i64));
        }
        let rank_known = !fact.shape.is_open();
        if rank_known && found.len() != declared.len() {
            return Err(mismatch(
                path,
                "input rank",
                spec.shape_text(),
                show(&found),
            ));
        }
        for (axis, (f, d)) in found.iter().zip(&declared).enumerate() {
            // A fixed axis of the file must equal a fixed declared axis; a fixed length in the file
            // cannot serve "any length".
            let clash = match (f, d) {
                (Some(f), Some(d)) => f != d,
                (Some(_), None) => axis == 1,
                _ => false,
            };
            if clash {
                return Err(mismatch(
                    path,
                    "input shape",
                    spec.shape_text(),
                    show(&found),
                ));
            }
        }
        Ok(())
    }

    /// The output must be `[B]` or `[B, C]` with `C` fixed, and the column inside it.
    fn check_output(model: &TypedModel, spec: &OnnxSpec, path: &Path) -> Result<()> {
        let fact = model
            .output_fact(0)
            .map_err(|e| mismatch(path, "output 0", "[B, C]", e.to_string()))?;
        let dims: Vec<String> = fact.shape.iter().map(|d| d.to_string()).collect();
        let columns = match fact.shape.rank() {
            1 => Some(1),
            2 => fact.shape[1].as_i64().map(|c| c as usize),
            _ => None,
        };
        let Some(columns) = columns else {
            return Err(mismatch(
                path,
                "output shape",
                "[B] or [B, C] with C fixed",
                format!("[{}]", dims.join(", ")),
            ));
        };
        if spec.output >= columns {
            return Err(mismatch(
                path,
                "output column",
                format!("< {columns} (the output is [{}])", dims.join(", ")),
                spec.output.to_string(),
            ));
        }
        Ok(())
    }

    /// Scores `batch` (every sequence checked): one value per sequence, in order.
    ///
    /// # Errors
    /// [`Error::TokenOutOfVocab`] for a token `≥ K`, [`Error::ShapeMismatch`] for a sequence whose
    /// length is not the declared one, [`Error::Device`] if tract fails at run time.
    pub fn try_score(&self, batch: &[&[usize]]) -> Result<Vec<f64>> {
        let tokens = self.spec.encoding.tokens();
        for (b, seq) in batch.iter().enumerate() {
            if let Some(l) = self.spec.seq_len {
                if seq.len() != l {
                    return Err(Error::ShapeMismatch {
                        op: "OnnxReward (sequence length)",
                        expected: vec![l],
                        got: vec![seq.len()],
                    });
                }
            }
            crate::check::nonzero("OnnxReward sequence length", seq.len())?;
            if let Some((p, &t)) = seq.iter().enumerate().find(|(_, &t)| t >= tokens) {
                return Err(Error::TokenOutOfVocab {
                    sequence: b,
                    position: p,
                    token: t,
                    vocab: tokens,
                });
            }
        }
        // Group by length (one run per length and chunk), then restore the order.
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (b, seq) in batch.iter().enumerate() {
            by_len.entry(seq.len()).or_default().push(b);
        }
        let mut out = vec![0.0; batch.len()];
        for (len, rows) in by_len {
            for chunk in rows.chunks(self.spec.max_batch) {
                let seqs: Vec<&[usize]> = chunk.iter().map(|&b| batch[b]).collect();
                let values = self.run(&seqs, len)?;
                for (&b, v) in chunk.iter().zip(values) {
                    out[b] = v;
                }
            }
        }
        Ok(out)
    }

    /// One model run on sequences of length `len` (already checked).
    fn run(&self, seqs: &[&[usize]], len: usize) -> Result<Vec<f64>> {
        let b = seqs.len();
        let input: Tensor = match (self.spec.encoding, self.spec.dtype) {
            (OnnxEncoding::OneHot { alphabet }, dtype) => {
                let mut x = vec![0.0f64; b * len * alphabet];
                for (i, seq) in seqs.iter().enumerate() {
                    for (l, &t) in seq.iter().enumerate() {
                        x[(i * len + l) * alphabet + t] = 1.0;
                    }
                }
                let shape = [b, len, alphabet];
                if dtype == OnnxDtype::F64 {
                    Tensor::from_shape(&shape, &x)
                } else {
                    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                    Tensor::from_shape(&shape, &x)
                }
            }
            (OnnxEncoding::TokenIds { .. }, dtype) => {
                let flat = seqs.iter().flat_map(|s| s.iter().copied());
                if dtype == OnnxDtype::I32 {
                    let x: Vec<i32> = flat.map(|t| t as i32).collect();
                    Tensor::from_shape(&[b, len], &x)
                } else {
                    let x: Vec<i64> = flat.map(|t| t as i64).collect();
                    Tensor::from_shape(&[b, len], &x)
                }
            }
        }
        .map_err(Error::device("OnnxReward input"))?;
        let outputs = self
            .plan
            .run(tvec![input.into()])
            .map_err(Error::device("OnnxReward run"))?;
        let z = outputs[0]
            .cast_to::<f64>()
            .map_err(Error::device("OnnxReward output"))?;
        let z: Vec<f64> = z
            .to_plain_array_view::<f64>()
            .map_err(Error::device("OnnxReward output"))?
            .iter()
            .copied()
            .collect();
        let columns = z.len() / b.max(1);
        if columns * b != z.len() || self.spec.output >= columns {
            return Err(Error::ShapeMismatch {
                op: "OnnxReward output",
                expected: vec![b, self.spec.output + 1],
                got: vec![z.len()],
            });
        }
        Ok(z.chunks(columns)
            .map(|row| readout(row, self.spec.output, self.spec.readout))
            .collect())
    }
}

/// `z_j`, `softmax(z)_j` (C ≥ 2) or `σ(z_0)` (C = 1), computed stably.
fn readout(row: &[f64], j: usize, how: OnnxReadout) -> f64 {
    match how {
        OnnxReadout::Raw => row[j],
        OnnxReadout::Probability if row.len() == 1 => 1.0 / (1.0 + (-row[0]).exp()),
        OnnxReadout::Probability => {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = row.iter().map(|z| (z - max).exp()).sum();
            (row[j] - max).exp() / total
        }
    }
}

impl Reward for OnnxReward {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// [`OnnxReward::try_score`]; on an error every value is NaN, which
    /// [`crate::reward::evaluate`] reports as [`Error::NonFiniteReward`] (the cause is in
    /// `try_score`'s error).
    fn score_batch(&self, batch: &[&[usize]]) -> Vec<f64> {
        self.try_score(batch)
            .unwrap_or_else(|_| vec![f64::NAN; batch.len()])
    }

    fn range(&self) -> Option<(f64, f64)> {
        (self.spec.readout == OnnxReadout::Probability).then_some((0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readouts_follow_their_formulas() {
        let z = [1.0, 3.0, -2.0];
        assert_eq!(readout(&z, 1, OnnxReadout::Raw), 3.0);
        let total = 1f64.exp() + 3f64.exp() + (-2f64).exp();
        let p = readout(&z, 1, OnnxReadout::Probability);
        assert!((p - 3f64.exp() / total).abs() < 1e-15);
        let s = readout(&[0.5], 0, OnnxReadout::Probability);
        assert!((s - 1.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-15);
        // Large logits do not overflow.
        assert!((readout(&[1000.0, 0.0], 0, OnnxReadout::Probability) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn inconsistent_specs_are_refused() {
        let mut spec = OnnxSpec::one_hot(4, Some(8), 1);
        spec.dtype = OnnxDtype::I64;
        assert!(matches!(
            spec.validate(),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(OnnxSpec::one_hot(0, None, 0).validate().is_err());
        assert!(OnnxSpec::token_ids(4, Some(0), 0).validate().is_err());
    }
}
