//! Published checkpoints in: SEDD (`louaaron/sedd-small`, `sedd-medium`) and MDLM
//! (`kuleshov-group/mdlm-owt`) as sepo [`crate::score::ScoreModel`]s.
//!
//! ```text
//! model id ──cache──▶ folder ──config.json──▶ ImportedConfig { trunk, output }
//!                        └──model.safetensors | pytorch_model.bin──▶ weights (torch names, [out, in])
//! ImportedDit:  log s = Output(Trunk(x, σ̃), x, σ̄)        trunk = sepo's DiT under SEDD's names
//! ```
//!
//! Both families publish the same DDiT backbone (token embedding, `TimestepEmbedder` of σ, adaLN
//! blocks with rotary attention, adaLN final layer); they differ in the output map ([`Output`]):
//! SEDD's network output *is* the log-score (with its σ̄ scaling), MDLM's is the logits of
//! `p_θ(x₀ | x_t)` under its "subs" parameterisation, turned here into the absorbing concrete score.
//! docs/models.md derives both maps and lists what could not be checked offline.
//!
//! ```no_run
//! use sepo_core::dfdx::prelude::Cpu;
//! use sepo_core::score::import::{import_dir, resolve_model};
//! use sepo_core::score::ScoreModel;
//!
//! let dir = resolve_model("louaaron/sedd-small", None)?; // or a local folder
//! let model = import_dir::<f32, Cpu>(&dir, &Cpu::default())?;
//! assert_eq!(model.num_states(), 50_258);
//! # Ok::<(), sepo_core::Error>(())
//! ```

pub mod cache;
pub mod config;
pub mod export;
pub mod load;
pub mod model;
pub mod output;

pub use cache::{resolve_model, HubCache};
pub use config::{read_config, Family, ImportedConfig, Output};
pub use export::export_dir;
pub use load::{import_dir, import_files};
pub use model::ImportedDit;
