//! Losses. Pretraining uses the denoising score entropy ([`score_entropy`](fn@score_entropy)); the policy-gradient
//! surrogates of fine-tuning build on the same log-scores.

pub mod elbo;
pub mod kl;
pub mod ppo_clip;
pub mod score_entropy;

pub use elbo::{elbo, Elbo, ElboConfig};
pub use kl::{kl_weights, path_kl, KlBaseline, KlGradient, KlWeights};
pub use ppo_clip::{ppo_clip, ppo_coefficients, PpoObjective, PpoStats, PpoTerms};
pub use score_entropy::{dwdse_loss, score_entropy, score_entropy_host, Dwdse, DwdseBatch};
