//! What an imported checkpoint is: the DiT trunk's sizes and the family's output map, read from the
//! published `config.json` of SEDD (`PyTorchModelHubMixin`: the run's Hydra config) or MDLM
//! (`transformers`: `model_type: "mdlm"`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::score::{ScoreHead, TransformerConfig};

/// Width of the sinusoidal σ features in both families (`TimestepEmbedder`'s
/// `frequency_embedding_size = 256`, not configurable there).
pub const FREQ_DIM: usize = 256;

/// MLP width as a multiple of the model width in both families' `DDiTBlock` (`mlp_ratio = 4`).
pub const MLP_RATIO: usize = 4;

/// The published family a checkpoint belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Score Entropy Discrete Diffusion (Lou, Meng & Ermon 2024), `louaaron/sedd-*`.
    Sedd,
    /// Masked Diffusion Language Model (Sahoo et al. 2024), `kuleshov-group/mdlm-*`.
    Mdlm,
}

impl Family {
    /// Prefix of every parameter name in the family's state dict (`backbone.` for MDLM's
    /// `transformers` wrapper, none for SEDD's module).
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Sedd => "",
            Family::Mdlm => "backbone.",
        }
    }
}

/// How the family's network output becomes sepo's log concrete scores `[B, L, N]`
/// (docs/models.md derives each map). `ℓ` are the trunk's logits, `x` the input tokens, `m = N − 1`
/// the mask (absorbing), `σ̄` the total noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// SEDD's `forward`: the logits are the log-score. With `scale_by_sigma` (absorbing only),
    /// `log s_v = ℓ_v − log(e^{σ̄} − 1) − log(N − 1)`; without, `log s_v = ℓ_v`. Then `0` at `v = x_l`.
    /// Every other entry, the mask column at clean positions included, is the network's.
    Sedd {
        /// SEDD's `model.scale_by_sigma`.
        scale_by_sigma: bool,
    },
    /// MDLM's "subs" x₀-parameterisation read as the absorbing concrete score. With
    /// `log p_θ(v | x) = log_softmax_{v ≠ m}(ℓ)`:
    /// at a masked position `log s_v = log p_θ(v | x) − log(e^{σ̄} − 1)` for `v ≠ m`, `0` at `m`;
    /// at a clean position `0` at `v = x_l` and at `m`, [`NEG_INFINITY`] at every other token
    /// (subs' carry-over: `p_θ(x₀ = v | x) = 0`).
    MdlmSubs {
        /// MDLM's `time_conditioning`: when false the trunk sees σ = 0 whatever σ̄ is.
        time_conditioning: bool,
    },
}

/// MDLM's finite stand-in for `log 0` (`neg_infinity = -1e6` in its diffusion code), used for the
/// concrete score's zero entries at clean positions.
pub const NEG_INFINITY: f64 = -1_000_000.0;

impl Output {
    /// Whether the trunk receives σ̄ (`false`: it receives 0).
    pub fn conditions_on_sigma(self) -> bool {
        !matches!(
            self,
            Output::MdlmSubs {
                time_conditioning: false
            }
        )
    }

    /// The family this map belongs to.
    pub fn family(self) -> Family {
        match self {
            Output::Sedd { .. } => Family::Sedd,
            Output::MdlmSubs { .. } => Family::Mdlm,
        }
    }
}

/// An imported model's configuration: the DiT trunk (sepo's [`TransformerConfig`], whose head must be
/// [`ScoreHead::Uniform`]: raw logits, `0` at the current token) and the family's output map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedConfig {
    /// The trunk's sizes.
    pub trunk: TransformerConfig,
    /// Whether the graph is absorbing (mask = state `N − 1`, as in both families' GPT-2 setups).
    pub absorbing: bool,
    /// The output map.
    pub output: Output,
}

impl ImportedConfig {
    /// Validates the trunk ([`TransformerConfig::check`]) and the combination: a uniform-head trunk,
    /// SEDD's σ̄ scaling and MDLM's subs only on an absorbing graph.
    pub fn check(&self) -> Result<()> {
        self.trunk.check()?;
        if self.trunk.head != ScoreHead::Uniform {
            return Err(Error::invalid(
                "ImportedConfig.trunk.head",
                format!("{:?}", self.trunk.head),
                "must be Uniform (raw logits); the family's map is `output`",
            ));
        }
        let needs_mask = matches!(
            self.output,
            Output::Sedd {
                scale_by_sigma: true
            } | Output::MdlmSubs { .. }
        );
        if needs_mask && !self.absorbing {
            return Err(Error::invalid(
                "ImportedConfig.absorbing",
                false,
                format!("{:?} is defined for the absorbing graph only", self.output),
            ));
        }
        Ok(())
    }

    /// The trunk of a family's DDiT with the given sizes (`mlp_ratio` 4, 256 σ features, RoPE only).
    pub fn ddit(
        vocab: usize,
        length: usize,
        hidden: usize,
        heads: usize,
        blocks: usize,
        cond_dim: usize,
    ) -> TransformerConfig {
        TransformerConfig {
            vocab,
            max_len: length,
            dim: hidden,
            heads,
            layers: blocks,
            cond_dim,
            mlp_ratio: MLP_RATIO,
            freq_dim: FREQ_DIM,
            head: ScoreHead::Uniform,
            learned_positions: false,
        }
    }
}

/// SEDD's `config.json` (the keys the model reads).
#[derive(Deserialize)]
struct SeddFile {
    tokens: usize,
    graph: SeddGraph,
    model: SeddModel,
}

#[derive(Deserialize)]
struct SeddGraph {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SeddModel {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    hidden_size: usize,
    cond_dim: usize,
    length: usize,
    n_blocks: usize,
    n_heads: usize,
    scale_by_sigma: bool,
}

/// MDLM's `config.json` (`MDLMConfig`'s keys; `time_conditioning` defaults to false there).
#[derive(Deserialize)]
struct MdlmFile {
    vocab_size: usize,
    model_length: usize,
    hidden_dim: usize,
    cond_dim: usize,
    n_blocks: usize,
    n_heads: usize,
    #[serde(default)]
    time_conditioning: bool,
    #[serde(default)]
    backbone: Option<String>,
}

/// Reads a published `config.json` and recognises its family: `model_type: "mdlm"` is MDLM; an
/// object with `tokens`, `graph` and `model` (at the top or under `config`) is SEDD. Anything else,
/// or a variant these importers do not cover (another graph, MDLM's non-DiT backbones), is
/// [`Error::UnsupportedWeights`]; a key of the wrong type is [`Error::CorruptCheckpoint`].
pub fn read_config(path: &Path) -> Result<ImportedConfig> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |reason: String| Error::CorruptCheckpoint {
        path: path.to_path_buf(),
        reason,
    };
    let unsupported = |reason: String| Error::UnsupportedWeights {
        path: path.to_path_buf(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let config = if value.get("model_type").and_then(|t| t.as_str()) == Some("mdlm") {
        let f: MdlmFile = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        if let Some(b) = f.backbone.as_deref().filter(|b| *b != "dit") {
            return Err(unsupported(format!(
                "MDLM backbone {b:?}; sepo imports the DiT backbone"
            )));
        }
        ImportedConfig {
            trunk: ImportedConfig::ddit(
                f.vocab_size,
                f.model_length,
                f.hidden_dim,
                f.n_heads,
                f.n_blocks,
                f.cond_dim,
            ),
            absorbing: true,
            output: Output::MdlmSubs {
                time_conditioning: f.time_conditioning,
            },
        }
    } else {
        let inner = match value.get("config") {
            Some(c) if c.get("model").is_some() => c.clone(),
            _ => value,
        };
        if inner.get("tokens").is_none() || inner.get("model").is_none() {
            return Err(unsupported(
                "config.json is neither SEDD's (tokens, graph, model) nor MDLM's (model_type \"mdlm\")"
                    .into(),
            ));
        }
        let f: SeddFile = serde_json::from_value(inner).map_err(|e| corrupt(e.to_string()))?;
        if let Some(kind) = f.model.kind.as_deref().filter(|k| *k != "ddit") {
            return Err(unsupported(format!(
                "SEDD model type {kind:?}; sepo imports \"ddit\""
            )));
        }
        let absorbing = match f.graph.kind.as_str() {
            "absorb" => true,
            "uniform" => false,
            other => {
                return Err(unsupported(format!(
                    "SEDD graph {other:?}; sepo imports \"absorb\" and \"uniform\""
                )))
            }
        };
        let m = f.model;
        ImportedConfig {
            trunk: ImportedConfig::ddit(
                f.tokens + usize::from(absorbing),
                m.length,
                m.hidden_size,
                m.n_heads,
                m.n_blocks,
                m.cond_dim,
            ),
            absorbing,
            output: Output::Sedd {
                scale_by_sigma: m.scale_by_sigma,
            },
        }
    };
    config.check()?;
    Ok(config)
}

/// The published `config.json` of `config` in its family's layout: SEDD's Hydra keys the model and
/// graph read (with SEDD's default log-linear noise, which the weights do not record), or MDLM's
/// `transformers` keys.
pub fn published_config(config: &ImportedConfig) -> serde_json::Value {
    let t = &config.trunk;
    match config.output {
        Output::Sedd { scale_by_sigma } => serde_json::json!({
            "tokens": t.vocab - usize::from(config.absorbing),
            "graph": { "type": if config.absorbing { "absorb" } else { "uniform" } },
            "noise": { "type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20 },
            "model": {
                "type": "ddit",
                "hidden_size": t.dim,
                "cond_dim": t.cond_dim,
                "length": t.max_len,
                "n_blocks": t.layers,
                "n_heads": t.heads,
                "scale_by_sigma": scale_by_sigma,
                "dropout": 0.1,
            },
        }),
        Output::MdlmSubs { time_conditioning } => serde_json::json!({
            "architectures": ["MDLM"],
            "model_type": "mdlm",
            "vocab_size": t.vocab,
            "model_length": t.max_len,
            "hidden_dim": t.dim,
            "cond_dim": t.cond_dim,
            "n_blocks": t.layers,
            "n_heads": t.heads,
            "dropout": 0.1,
            "time_conditioning": time_conditioning,
        }),
    }
}
