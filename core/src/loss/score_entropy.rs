//! Denoising score entropy (DWDSE, Lou et al. 2024).
//!
//! For `x_t ~ p_t(· | x_0)` and log-scores `log s_y` at `x_t`, per position
//!
//! `ℓ = Σ_{y ≠ x_t} Q(y, x_t) [ s_y − r_y log s_y + r_y (log r_y − 1) ]`,  `r_y = p_t(y | x_0)/p_t(x_t | x_0)`,
//!
//! summed over positions and weighted by `σ(t)`. Each bracket is `f(s) = s − r log s + r(log r − 1) ≥ 0`
//! with equality exactly at `s = r` (for `r = 0` it is `s`, minimised as `s → 0`), so the loss is
//! non-negative and vanishes at the true concrete score.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{from_f64, upload_f64s};
use crate::schedule::NoiseSchedule;
use crate::score::{LogScores, ScoreModel};

/// Host-side constants of the loss for one batch: weights `Q(y, x_t)`, log-ratios where the weight is
/// positive, and the constant term per sequence.
struct Terms {
    weight: Vec<f64>,
    ratio: Vec<f64>,
    constant: Vec<f64>,
}

fn terms<G: Graph>(
    graph: &G,
    x_t: &[usize],
    x0: &[usize],
    sigma_bar: &[f64],
    seq_len: usize,
) -> Terms {
    let n = graph.num_states();
    let mut weight = vec![0.0; x_t.len() * n];
    let mut ratio = vec![0.0; x_t.len() * n];
    let mut constant = vec![0.0; sigma_bar.len()];
    for (i, (&xt, &x)) in x_t.iter().zip(x0).enumerate() {
        let (w, r) = (
            &mut weight[i * n..(i + 1) * n],
            &mut ratio[i * n..(i + 1) * n],
        );
        graph.score_entropy_terms(xt, x, sigma_bar[i / seq_len], w, r);
        constant[i / seq_len] += w
            .iter()
            .zip(r.iter())
            .filter(|(_, &r)| r > 0.0)
            .map(|(&w, &r)| w * r * (r.ln() - 1.0))
            .sum::<f64>();
    }
    Terms {
        weight,
        ratio,
        constant,
    }
}

/// Per-sequence score entropy `[B]` (not yet weighted by `σ(t)`), differentiable through `log_scores`.
///
/// `x_t`, `x0`: flat `[B·L]` tokens (already validated); `sigma_bar`: `[B]`.
pub fn score_entropy<E: Dtype, D: Device<E>, T: Tape<E, D>, G: Graph>(
    graph: &G,
    log_scores: LogScores<E, D, T>,
    x_t: &[usize],
    x0: &[usize],
    sigma_bar: &[f64],
) -> Result<Tensor<(usize,), E, D, T>> {
    let shape = *log_scores.shape();
    let (b, l, _) = shape;
    let dev = log_scores.device().clone();
    let t = terms(graph, x_t, x0, sigma_bar, l);
    // Lengths follow `x_t`, `sigma_bar` and the scores' shape, which callers validate (`dwdse_loss`
    // does); a mismatch is a typed error, not a panic.
    let weight = upload_f64s(&dev, &t.weight, shape, "score_entropy (weights)")?;
    let weighted_ratio: Vec<f64> = t.weight.iter().zip(&t.ratio).map(|(w, r)| w * r).collect();
    let weighted_ratio = upload_f64s(&dev, &weighted_ratio, shape, "score_entropy (ratios)")?;
    let constant = upload_f64s(&dev, &t.constant, (b,), "score_entropy (constants)")?;
    // Entries with zero weight take no part: pin their log-score to 0 first so that a huge value there
    // cannot overflow exp() into inf·0 = NaN.
    let active = weight.clone().gt(from_f64::<E>(0.0));
    let log_s = active.choose(log_scores, dev.zeros_like(&shape));
    let positive = (log_s.with_empty_tape().exp() * weight)
        .sum::<_, Axis<2>>()
        .sum::<_, Axis<1>>();
    let negative = (log_s * weighted_ratio)
        .sum::<_, Axis<2>>()
        .sum::<_, Axis<1>>();
    Ok(positive - negative + constant)
}

/// The same loss on the host in f64 (tests and diagnostics): per-sequence values.
pub fn score_entropy_host<G: Graph>(
    graph: &G,
    log_scores: &[f64],
    x_t: &[usize],
    x0: &[usize],
    sigma_bar: &[f64],
) -> Vec<f64> {
    let n = graph.num_states();
    let seq_len = x_t.len() / sigma_bar.len();
    let t = terms(graph, x_t, x0, sigma_bar, seq_len);
    let mut out = t.constant.clone();
    for i in 0..x_t.len() {
        for y in 0..n {
            let k = i * n + y;
            if t.weight[k] > 0.0 {
                out[i / seq_len] +=
                    t.weight[k] * (log_scores[k].exp() - t.ratio[k] * log_scores[k]);
            }
        }
    }
    out
}

/// DWDSE training objective: draws `t ∈ (ε, 1)` per sequence, corrupts, and scores.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dwdse {
    /// Smallest training time `ε` (SEDD: 1e-3).
    pub t_min: f64,
    /// Stratified times (MDLM's low-discrepancy sampler): `t_i = ε + (1 − ε)·((u + i/B) mod 1)` with one
    /// shared `u ~ U(0, 1)`. Each `t_i` is still `U(ε, 1)`, so the loss stays unbiased, but the batch covers
    /// the time range evenly, which lowers the variance of the `σ(t)`-weighted loss.
    pub stratified: bool,
}

impl Default for Dwdse {
    /// `t_min = 1e-3`, stratified times.
    fn default() -> Self {
        Self {
            t_min: 1e-3,
            stratified: true,
        }
    }
}

/// One corrupted batch: clean tokens, times, noise levels and noised tokens.
#[derive(Debug, Clone)]
pub struct DwdseBatch {
    /// Clean `x_0`, flat `[B·L]`.
    pub x0: Vec<usize>,
    /// Noised `x_t`, flat `[B·L]`.
    pub x_t: Vec<usize>,
    /// `t` per sequence.
    pub t: Vec<f64>,
    /// `σ̄(t)` per sequence.
    pub sigma_bar: Vec<f64>,
    /// `σ(t)` per sequence.
    pub sigma_rate: Vec<f64>,
    /// Batch size.
    pub batch: usize,
    /// Sequence length.
    pub seq_len: usize,
}

impl Dwdse {
    /// Corrupts `x0` (`[batch, seq_len]`, validated against the graph's clean tokens).
    pub fn corrupt<G: Graph, S: NoiseSchedule, R: Rng>(
        &self,
        graph: &G,
        schedule: &S,
        x0: &[usize],
        batch: usize,
        seq_len: usize,
        rng: &mut R,
    ) -> Result<DwdseBatch> {
        if !(self.t_min > 0.0 && self.t_min < 1.0) {
            return Err(Error::invalid("t_min", self.t_min, "must be in (0, 1)"));
        }
        crate::check::tokens(x0, batch, seq_len, graph.num_tokens())?;
        let t: Vec<f64> = if self.stratified {
            let u: f64 = rng.gen();
            (0..batch)
                .map(|i| self.t_min + (1.0 - self.t_min) * ((u + i as f64 / batch as f64) % 1.0))
                .collect()
        } else {
            (0..batch).map(|_| rng.gen_range(self.t_min..1.0)).collect()
        };
        let sigma_bar: Vec<f64> = t.iter().map(|&t| schedule.total(t)).collect();
        let sigma_rate: Vec<f64> = t.iter().map(|&t| schedule.rate(t)).collect();
        // A negative σ̄ or σ would train on a negative loss without any other sign of trouble.
        crate::check::sigmas(&sigma_bar, batch)?;
        for (i, &rate) in sigma_rate.iter().enumerate() {
            crate::error::ensure_finite("noise rate σ(t)", i, rate)?;
            if rate < 0.0 {
                return Err(Error::invalid(
                    "σ(t)",
                    rate,
                    format!(
                        "the schedule's rate must be ≥ 0 (sequence {i}, t = {})",
                        t[i]
                    ),
                ));
            }
        }
        let x_t = graph.sample_transition(x0, &sigma_bar, rng);
        Ok(DwdseBatch {
            x0: x0.to_vec(),
            x_t,
            t,
            sigma_bar,
            sigma_rate,
            batch,
            seq_len,
        })
    }
}

/// Mean over the batch of `σ(t)·score_entropy`, with gradient through the model's parameters. The
/// batch is checked against the model first ([`ScoreModel::check_input`]: token ids, σ̄, and a
/// sequence length the model accepts), so a corpus of the wrong length is a typed error.
pub fn dwdse_loss<E: Dtype, D: Device<E>, M: ScoreModel<Elem = E, Device = D>, G: Graph>(
    model: &M,
    graph: &G,
    batch: &DwdseBatch,
) -> Result<Tensor<Rank0, E, D, OwnedTape<E, D>>> {
    model.check_input(&batch.x_t, batch.batch, batch.seq_len, &batch.sigma_bar)?;
    if batch.sigma_rate.len() != batch.batch || batch.x0.len() != batch.x_t.len() {
        return Err(Error::ShapeMismatch {
            op: "dwdse_loss (σ(t) and x0 per sequence)",
            expected: vec![batch.batch, batch.x_t.len()],
            got: vec![batch.sigma_rate.len(), batch.x0.len()],
        });
    }
    let dev = model.params().device();
    let ids = dev
        .try_tensor_from_vec(batch.x_t.clone(), (batch.batch, batch.seq_len))
        .map_err(Error::device("dwdse_loss"))?;
    let log_scores = model.forward(&ids, &batch.sigma_bar, OwnedTape::default())?;
    let per_seq = score_entropy(graph, log_scores, &batch.x_t, &batch.x0, &batch.sigma_bar)?;
    let weights =
        upload_f64s::<E, _, _>(dev, &batch.sigma_rate, (batch.batch,), "dwdse_loss (σ(t))")?;
    Ok((per_seq * weights).mean())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Absorbing, Uniform};
    use crate::nn::gradcheck::{check_gradient, Objective};
    use crate::nn::{Init, ParamId, ParamStore};
    use rand::SeedableRng;

    fn random_case<G: Graph>(
        graph: &G,
        b: usize,
        l: usize,
        seed: u64,
    ) -> (Vec<usize>, Vec<usize>, Vec<f64>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let x0: Vec<usize> = (0..b * l)
            .map(|_| rng.gen_range(0..graph.num_tokens()))
            .collect();
        let sigma: Vec<f64> = (0..b).map(|_| rng.gen_range(0.05..3.0)).collect();
        let xt = graph.sample_transition(&x0, &sigma, &mut rng);
        (x0, xt, sigma)
    }

    /// True log-ratios `log r_y` where `Q(y, x_t) > 0`, and arbitrary values elsewhere.
    fn true_log_scores<G: Graph>(graph: &G, xt: &[usize], x0: &[usize], sigma: &[f64]) -> Vec<f64> {
        let n = graph.num_states();
        let l = xt.len() / sigma.len();
        let (mut w, mut r) = (vec![0.0; n], vec![0.0; n]);
        let mut out = Vec::new();
        for i in 0..xt.len() {
            graph.score_entropy_terms(xt[i], x0[i], sigma[i / l], &mut w, &mut r);
            for y in 0..n {
                out.push(if r[y] > 0.0 {
                    r[y].ln()
                } else if w[y] > 0.0 {
                    -50.0
                } else {
                    3.0
                });
            }
        }
        out
    }

    fn check_graph<G: Graph>(graph: &G) {
        let (b, l) = (6, 5);
        let (x0, xt, sigma) = random_case(graph, b, l, 3);
        // Zero at the truth (r = 0 entries contribute e^{−50} ≈ 2e-22).
        let exact = score_entropy_host(
            graph,
            &true_log_scores(graph, &xt, &x0, &sigma),
            &xt,
            &x0,
            &sigma,
        );
        assert!(exact.iter().all(|v| v.abs() < 1e-6), "{graph:?}: {exact:?}");
        // Non-negative on random inputs, and the tensor version agrees with the host one.
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let dev = Cpu::default();
        for _ in 0..20 {
            let ls: Vec<f64> = (0..b * l * graph.num_states())
                .map(|_| rng.gen_range(-4.0..4.0))
                .collect();
            let host = score_entropy_host(graph, &ls, &xt, &x0, &sigma);
            assert!(
                host.iter().all(|&v| v >= -1e-12),
                "{graph:?}: negative {host:?}"
            );
            let t = dev.tensor_from_vec(ls.clone(), (b, l, graph.num_states()));
            let dev_vals = score_entropy(graph, t, &xt, &x0, &sigma).unwrap().as_vec();
            for (a, c) in host.iter().zip(&dev_vals) {
                assert!((a - c).abs() < 1e-10 * a.abs().max(1.0));
            }
        }
    }

    #[test]
    fn non_negative_and_zero_exactly_at_the_true_ratios() {
        check_graph(&Absorbing::new(5).unwrap());
        check_graph(&Uniform::new(4).unwrap());
    }

    struct AsParams<G: Graph> {
        graph: G,
        id: ParamId,
        shape: (usize, usize, usize),
        x0: Vec<usize>,
        xt: Vec<usize>,
        sigma: Vec<f64>,
    }

    impl<G: Graph> Objective for AsParams<G> {
        fn eval<T: Tape<f64, Cpu>>(
            &self,
            store: &ParamStore<f64, Cpu>,
            tape: T,
        ) -> Tensor<Rank0, f64, Cpu, T> {
            let ls = store
                .vector(self.id)
                .put_tape(tape)
                .reshape_like(&self.shape);
            score_entropy(&self.graph, ls, &self.xt, &self.x0, &self.sigma)
                .unwrap()
                .sum()
        }
    }

    fn check_gradient_for<G: Graph>(graph: G) {
        let (x0, xt, sigma) = random_case(&graph, 3, 4, 1);
        let n = graph.num_states();
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 2);
        let id = store
            .add("log_scores", &[3 * 4 * n], Init::Normal { std: 1.0 })
            .unwrap();
        let f = AsParams {
            graph,
            id,
            shape: (3, 4, n),
            x0,
            xt,
            sigma,
        };
        let err = check_gradient(&mut store, &f, 1e-6);
        assert!(err < 1e-7, "relative error {err}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        check_gradient_for(Uniform::new(4).unwrap());
        check_gradient_for(Absorbing::new(5).unwrap());
    }

    #[test]
    fn dwdse_loss_runs_through_a_model_and_validates_tokens() {
        let dev = Cpu::default();
        let graph = Absorbing::new(4).unwrap();
        let model = crate::score::Tabular::<f64, Cpu>::new(
            &graph,
            2,
            vec![0.3, -0.2, 1.0, 0.0, 0.5, -1.0, 0.2, 0.1, 0.0],
            &dev,
        )
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let x0: Vec<usize> = (0..64).map(|_| rng.gen_range(0..3)).collect();
        let batch = Dwdse::default()
            .corrupt(
                &graph,
                &crate::schedule::LogLinear::default(),
                &x0,
                32,
                2,
                &mut rng,
            )
            .unwrap();
        let loss = dwdse_loss(&model, &graph, &batch).unwrap();
        let v = loss.as_vec()[0];
        assert!(v.is_finite() && v >= 0.0, "{v}");
        assert!(matches!(
            Dwdse::default().corrupt(
                &graph,
                &crate::schedule::LogLinear::default(),
                &[0, 3],
                1,
                2,
                &mut rng
            ),
            Err(Error::TokenOutOfVocab { token: 3, .. })
        ));
    }
}
