//! The DWDSE bound on the negative log-likelihood of held-out sequences (SEDD's perplexity bound).
//!
//! For a score model `s_θ` and a clean sequence `x₀` (Lou et al. 2024, Thm. 3.6 / eq. 17),
//!
//! ```text
//! −log p₀^θ(x₀) ≤ L(x₀) + KL(p_{1|0}(·|x₀) ‖ p_base),
//! L(x₀) = ∫₀¹ σ(t) E_{x_t ~ p_{t|0}(·|x₀)} [ Σ_l Σ_{y≠x_t^l} Q(y, x_t^l) f(s_θ(x_t)_{l,y}, r_{l,y}) ] dt
//! ```
//!
//! with `f(s, r) = s − r log s + r(log r − 1)` the score entropy
//! ([`score_entropy`](fn@super::score_entropy)). Since `σ(t) dt = dσ̄ = σ̄ d log σ̄`, the integral is
//! `∫ σ̄·E_{x ~ p_{σ̄|0}}[SE(x, σ̄)] d log σ̄` over `(log σ̄(t_min), log σ̄(1))`. [`elbo`] estimates it by Monte Carlo in `log σ̄` (SEDD draws `t`
//! uniformly): `K` levels `σ̄_k = σ̄_lo·(σ̄_hi/σ̄_lo)^{(u + k/K) mod 1}`, `σ̄_lo = σ̄(t_min)`,
//! `σ̄_hi = σ̄(1)` (stratified, one `u ~ U(0,1)` per sequence, a fixed seed), one noised `x` each, and
//! `L̂ = log(σ̄_hi/σ̄_lo)·(1/K) Σ_k σ̄_k·SE(x_k, σ̄_k)`, unbiased for `∫_{t_min}^1`. Why not `t`: a draw at
//! `t` carries the weight `σ(t)`, which the log-linear schedule sends to `1/ε` near `t = 1`, and at small
//! `σ̄` a flipped token (probability `∝ σ̄`) scores `∝ 1/σ̄`; both make the estimate heavy-tailed (its
//! mean usually low, now and then far high). The factor `σ̄_k` cancels the second and the log scale
//! removes the first: on the tests' exact models (`K = 2048`) uniform-`t` estimates mostly sat 1–3 of
//! their standard errors low with occasional far-high outliers; the `log σ̄` estimates scatter within
//! about one standard error of the exact value. The prior term is exact:
//! per position `KL(p_{1|0}(·|x₀^l) ‖ π_base)` with `π_base` the graph's limit law. For the absorbing
//! graph `π_base` is the mask alone and `p_{1|0}` keeps `x₀^l` with probability `e^{−σ̄(1)} > 0`, so that
//! term is `+∞` at any finite `σ̄(1)`; SEDD reports `exp(L/tokens)` alone as its perplexity bound, and so
//! does [`Elbo::perplexity`]. [`Elbo::bound_per_token`] adds the prior term.
//!
//! **What the bound equals for the exact score.** If `s_θ` is the true concrete score of a law `π`, the
//! path KL decomposition gives, per sequence, `L(x₀) = −log π(x₀) − KL(p_{1|0}(·|x₀) ‖ p₁)` where
//! `p₁ = Σ π(x₀') p_{1|0}(·|x₀')`: the DWDSE term falls short of the NLL by exactly the information the
//! noise at `t = 1` leaves about `x₀`, which the prior term pays back (on average over `π`,
//! `E_π[L + KL(p_{1|0} ‖ π_base)] = H(π) + KL(p₁ ‖ π_base) ≥ H(π)`). The tests check this identity by
//! enumeration.

use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::loss::score_entropy_host;
use crate::schedule::NoiseSchedule;
use crate::score::{log_scores_chunked, ScoreModel};

/// Settings of [`elbo`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ElboConfig {
    /// Noise levels `K` per sequence (stratified over `(σ̄(t_min), σ̄(1))`).
    pub draws: usize,
    /// Lower end `t_min` of the time integral; `∫₀^{t_min}` is left out (the tests bound what that costs).
    pub t_min: f64,
    /// Seed of the times and of the noised sequences.
    pub seed: u64,
}

impl Default for ElboConfig {
    /// 32 noise levels per sequence, `t_min = 1e-5`, seed 0.
    fn default() -> Self {
        Self {
            draws: 32,
            t_min: 1e-5,
            seed: 0,
        }
    }
}

/// The bound on held-out data, per token (nats).
#[derive(Debug, Clone, PartialEq)]
pub struct Elbo {
    /// Number of sequences scored.
    pub sequences: usize,
    /// Number of tokens scored.
    pub tokens: usize,
    /// `Σ_i L̂(x₀^i) / tokens`: the DWDSE term, SEDD's reported bound.
    pub nats_per_token: f64,
    /// Monte Carlo standard error of `nats_per_token` (time and noise draws only, the data fixed;
    /// from the spread of the `K` draws of each sequence, conservative under stratification).
    pub std_error: f64,
    /// `Σ_i KL(p_{1|0}(·|x₀^i) ‖ π_base) / tokens` (exact; `+∞` for the absorbing graph).
    pub prior_per_token: f64,
    /// `L̂(x₀^i)` per sequence (nats, not per token).
    pub per_sequence: Vec<f64>,
    /// Standard error of each `L̂(x₀^i)`.
    pub per_sequence_se: Vec<f64>,
}

impl Elbo {
    /// `exp(nats_per_token)`: SEDD's perplexity bound (prior term left out).
    pub fn perplexity(&self) -> f64 {
        self.nats_per_token.exp()
    }

    /// `nats_per_token + prior_per_token`: the full bound on `−log p₀^θ` per token.
    pub fn bound_per_token(&self) -> f64 {
        self.nats_per_token + self.prior_per_token
    }
}

/// Rows per forward such that the host log-scores `[rows, L, N]` stay near 4 M values.
const HOST_VALUES: usize = 1 << 22;

/// Estimates the DWDSE bound of `model` (under its own parameters) on `data` (clean sequences, any
/// lengths the model accepts) for the forward process `graph`, `schedule` (module docs). Errors on
/// empty data, a token outside the graph's clean tokens, a length the model refuses, `draws = 0` or
/// `t_min ∉ (0, 1)`.
pub fn elbo<M, G, S>(
    model: &M,
    graph: &G,
    schedule: &S,
    data: &[Vec<usize>],
    config: &ElboConfig,
) -> Result<Elbo>
where
    M: ScoreModel + ?Sized,
    G: Graph,
    S: NoiseSchedule,
{
    crate::check::nonzero("draws", config.draws)?;
    if !(config.t_min > 0.0 && config.t_min < 1.0) {
        return Err(Error::invalid("t_min", config.t_min, "must be in (0, 1)"));
    }
    if data.is_empty() {
        return Err(Error::Empty {
            op: "elbo",
            what: "held-out sequences",
        });
    }
    if model.num_states() != graph.num_states() {
        return Err(Error::ShapeMismatch {
            op: "elbo (model states vs graph states)",
            expected: vec![graph.num_states()],
            got: vec![model.num_states()],
        });
    }
    let (k, t_min) = (config.draws, config.t_min);
    let sigma_one = schedule.total(1.0);
    crate::error::ensure_finite("σ̄(1)", 0, sigma_one)?;
    let (lo, hi) = (schedule.total(t_min), sigma_one);
    crate::error::ensure_finite("σ̄(t_min)", 0, lo)?;
    if !(lo > 0.0 && hi > lo) {
        return Err(Error::invalid(
            "schedule",
            format!("σ̄(t_min) = {lo}, σ̄(1) = {hi}"),
            "the bound needs a total noise that increases from t_min to 1",
        ));
    }
    let base = graph.limit_distribution();
    let mut rng = rand::rngs::StdRng::seed_from_u64(config.seed);
    let (mut per_sequence, mut per_sequence_se) = (Vec::new(), Vec::new());
    let (mut tokens, mut prior) = (0usize, 0.0);
    for x0 in data {
        let len = x0.len();
        crate::check::tokens(x0, 1, len, graph.num_tokens())?;
        model.check_input(x0, 1, len, &[0.0])?;
        tokens += len;
        prior += x0
            .iter()
            .map(|&x| prior_kl(graph, x, sigma_one, &base))
            .sum::<f64>();
        // Stratified in log σ̄ (module docs): σ̄_k = σ̄_lo·(σ̄_hi/σ̄_lo)^{(u + k/K) mod 1}.
        let u: f64 = rng.gen();
        let sigma_bar: Vec<f64> = (0..k)
            .map(|i| lo * (hi / lo).powf((u + i as f64 / k as f64) % 1.0))
            .collect();
        crate::check::sigmas(&sigma_bar, k)?;
        let clean: Vec<usize> = x0.iter().copied().cycle().take(k * len).collect();
        let noised = graph.sample_transition(&clean, &sigma_bar, &mut rng);
        let rows = (HOST_VALUES / (len * model.num_states()).max(1)).max(1);
        let mut values = Vec::with_capacity(k);
        for start in (0..k).step_by(rows) {
            let end = (start + rows).min(k);
            let span = start * len..end * len;
            let scores = log_scores_chunked(
                model,
                model.params(),
                &noised[span.clone()],
                len,
                &sigma_bar[start..end],
            )?;
            let se = score_entropy_host(
                graph,
                &scores,
                &noised[span.clone()],
                &clean[span],
                &sigma_bar[start..end],
            );
            values.extend(
                se.iter()
                    .zip(&sigma_bar[start..end])
                    .map(|(s, sb)| (hi / lo).ln() * sb * s),
            );
        }
        let (mean, se) = mean_and_se(&values);
        per_sequence.push(mean);
        per_sequence_se.push(se);
    }
    let n = tokens as f64;
    Ok(Elbo {
        sequences: data.len(),
        tokens,
        nats_per_token: per_sequence.iter().sum::<f64>() / n,
        std_error: per_sequence_se.iter().map(|s| s * s).sum::<f64>().sqrt() / n,
        prior_per_token: prior / n,
        per_sequence,
        per_sequence_se,
    })
}

/// `KL(p_{1|0}(·|x) ‖ base)` for one position: `Σ_y p(y) log(p(y)/base(y))`, `+∞` where `p > 0 = base`.
fn prior_kl<G: Graph>(graph: &G, x: usize, sigma_one: f64, base: &[f64]) -> f64 {
    (0..graph.num_states())
        .map(|y| {
            let p = graph.transition(x, y, sigma_one);
            if p <= 0.0 {
                0.0
            } else if base[y] <= 0.0 {
                f64::INFINITY
            } else {
                p * (p / base[y]).ln()
            }
        })
        .sum()
}

/// Mean and standard error `sd/√K` (sample sd; 0 for a single value).
fn mean_and_se(v: &[f64]) -> (f64, f64) {
    let k = v.len() as f64;
    let mean = v.iter().sum::<f64>() / k;
    if v.len() < 2 {
        return (mean, 0.0);
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1.0);
    (mean, (var / k).sqrt())
}

#[cfg(test)]
mod tests;
