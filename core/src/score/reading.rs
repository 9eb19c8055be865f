//! How a score network's clean-end scores are read: the choice every clean-end estimator
//! ([`crate::policy::clean_log_scores`]) and the single loop's state gradients share.

/// How clean-end scores are read from a score network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum CleanScores {
    /// One forward on the clean sequence. Exact for uniform-graph models at `t₀ → 0`. For absorbing
    /// networks it reads `log q_l(v) − log q_l(x_l)`, with `q_l` the network's softmax over the real
    /// tokens at the unmasked position `l`: a proper ratio (`Σ_v s_{l,v} = 1/q_l(x_l)`), but of a
    /// distribution pretraining never supervised, so a heuristic (one forward instead of `L`). The
    /// reference implementation reads the same softmax differently: as probabilities `log q_l(v)`, not
    /// as a ratio, over every slot including the current token and the mask (docs/sepo.md §7); sepo
    /// does not reproduce that computation.
    Unmasked,
    /// Absorbing models: mask each position in turn and read the clean conditional (default).
    #[default]
    Masked,
    /// Absorbing models: mask `positions` random positions per sample, weight them by `L/positions`.
    MaskedSubset {
        /// Positions masked per sample.
        positions: usize,
    },
}
