//! Gradient-flow SEPO (docs/gradient_flow.md): sampling as optimisation in distribution space.
//!
//! A continuous-time Markov chain on the Hamming-1 graph with locally balanced rates
//! `Q_θ(x, x^{l←v}) = λ·g(s_θ(x)_{l,v})` ([`LocallyBalanced`]) has the model's distribution as its limit
//! law and is the gradient flow of `KL(·‖π_θ)` for the discrete Wasserstein metric. A persistent
//! population of particles moved by this chain ([`chain`]) replaces the fresh sampling of every SEPO
//! round; the policy gradient at the chain's fixed point follows from the implicit function theorem
//! with a closed-form inverse ([`crate::policy::ift`]); [`crate::train::single_loop`] alternates one
//! chain step and one update, reading `log(π_θ/p_ref)` exactly, tracked, or along a canonical Hamming
//! path ([`path`]).
//!
//! `exact` (a test fixture: compiled for tests or with the `testing` feature) is the dense ground truth on enumerated spaces (stationary law, Onsager operator, both
//! IFTs), with the log-potentials of [`potential`] (tabular, Potts) as fixtures.

pub mod chain;
#[cfg(any(test, feature = "testing"))]
pub mod exact;
#[cfg(any(test, feature = "testing"))]
pub mod linalg;
pub mod path;
pub mod potential;
pub mod rates;

pub use chain::{step, ExactScores, Jump, ModelScores, PositionScores};
pub use path::{consensus, path_log_potential};
pub use potential::{LogPotential, Potts, Space, TabularPotential};
pub use rates::LocallyBalanced;
