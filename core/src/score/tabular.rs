//! An exact score model over a small, enumerable space: logits over every clean sequence.
//!
//! `π_θ = softmax(θ)` over all `V^L` clean sequences (lexicographic order, position 0 most significant).
//! Its noised law is `p_t = π_θ · exp(σ̄Q)^{⊗L}` and its concrete score is the exact ratio
//! `s(x)_{l,v} = p_t(x^{l←v}) / p_t(x)`, differentiable in θ. It is the ground truth of sepo's exactness
//! tests (samplers, policy gradients) and the "exact model fixture" of the SEPO tests.
//!
//! # How `p_t(y)` is computed
//! Both built-in graphs have kernels of the form `p_t(y_l | x_l) = a(y_l) + b(y_l)·[x_l = y_l]`
//! (absorbing: `a(mask) = 1 − e^{−σ̄}`, `a(real) = 0`, `b(real) = e^{−σ̄}`; uniform:
//! `a = (1 − e^{−σ̄})/N`, `b = e^{−σ̄}`). Expanding the product over positions,
//!
//! `p_t(y) = Σ_{S ⊆ [L]} Π_{l∉S} a(y_l) · Π_{l∈S} b(y_l) · P_π(x_S = y_S)`,
//!
//! so `p_t` is a fixed combination of the marginals `P_π(x_S = y_S)`, which are linear in `π`
//! (`M = A·π` with a 0/1 matrix `A` of `(V+1)^L` rows). Each requested ratio costs `2^L` terms, summed
//! in log space, `log p_t(y) = logsumexp_S (log coef_S + log M_S)`, so that no term underflows at large σ̄.

use dfdx::prelude::*;

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::nn::{from_f64, from_f64s, upload, Init, ParamId, ParamStore};
use crate::score::{LogScores, ScoreModel, Tokens};

/// Largest number of clean sequences `V^L` a [`Tabular`] model accepts.
pub const MAX_SEQUENCES: usize = 1 << 16;

/// Log-coefficient of a vanishing term of `p_t(y)`: finite, so that a row whose terms all vanish
/// (a masked `y` at σ̄ = 0) still has a finite log and gradient, and far below any real term.
const IMPOSSIBLE: f64 = -1e30;

/// Exact concrete scores of `π_θ = softmax(θ)` over all sequences of a small space.
#[derive(Debug, Clone)]
pub struct Tabular<E: Dtype, D: Device<E>> {
    tokens: usize,
    states: usize,
    seq_len: usize,
    logits: ParamId,
    params: ParamStore<E, D>,
    /// `Aᵀ`: `[V^L, (V+1)^L]`, `Aᵀ[x, row(S, y_S)] = [x_S = y_S]`.
    marginals_t: Tensor<(usize, usize), E, D>,
    /// Row offset of each subset `S` (bitmask) in the marginal table.
    offsets: Vec<usize>,
    /// `(a, b)` kernel decomposition functions, per state, for a given σ̄.
    kernel: KernelForm,
}

#[derive(Clone)]
struct KernelForm {
    /// `p(y | x) = a(y) + b(y)[x = y]` evaluated by the graph at σ̄: we keep the graph's transition.
    transition: std::sync::Arc<dyn Fn(usize, usize, f64) -> f64 + Send + Sync>,
    tokens: usize,
}

impl std::fmt::Debug for KernelForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelForm")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl KernelForm {
    /// `(a(y), b(y))` at total noise `σ̄`.
    fn ab(&self, y: usize, sigma_bar: f64) -> (f64, f64) {
        let t = &self.transition;
        // a(y) = p(y | z) for a real z ≠ y; with a single real token and y real there is no such z,
        // and then δ is always 1, so a = 0, b = p(y | y) is exact.
        let z = (0..self.tokens).find(|&z| z != y);
        let a = z.map_or(0.0, |z| t(z, y, sigma_bar));
        let b = if y < self.tokens {
            t(y, y, sigma_bar) - a
        } else {
            0.0
        };
        (a, b)
    }
}

impl<E: Dtype, D: Device<E>> Tabular<E, D> {
    /// Builds the model for `graph` and sequences of length `seq_len` with the given logits (one per
    /// clean sequence, `num_tokens^seq_len` of them, lexicographic order).
    pub fn new<G: Graph>(graph: &G, seq_len: usize, logits: Vec<f64>, dev: &D) -> Result<Self> {
        crate::check::nonzero("seq_len", seq_len)?;
        let tokens = graph.num_tokens();
        let states = graph.num_states();
        let count = tokens
            .checked_pow(seq_len as u32)
            .filter(|&c| c <= MAX_SEQUENCES)
            .ok_or_else(|| {
                Error::invalid(
                    "seq_len",
                    seq_len,
                    format!("{tokens}^{seq_len} sequences exceed {MAX_SEQUENCES}"),
                )
            })?;
        if logits.len() != count {
            return Err(Error::ShapeMismatch {
                op: "Tabular::new (logits)",
                expected: vec![count],
                got: vec![logits.len()],
            });
        }
        if let Some(i) = logits.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                what: "logit",
                index: i,
                value: logits[i],
            });
        }
        let g = graph.clone();
        let kernel = KernelForm {
            transition: std::sync::Arc::new(move |a, b, s| g.transition(a, b, s)),
            tokens,
        };
        // The a + bδ structure is what the expansion relies on: verify it rather than assume it.
        for &s in &[0.3, 2.0] {
            for x in 0..tokens {
                for y in 0..states {
                    let (a, b) = kernel.ab(y, s);
                    let expect = a + if x == y { b } else { 0.0 };
                    if (graph.transition(x, y, s) - expect).abs() > 1e-12 {
                        return Err(Error::invalid(
                            "graph",
                            format!("{graph:?}"),
                            "Tabular needs a kernel of the form a(y) + b(y)·[x = y]",
                        ));
                    }
                }
            }
        }
        let rows = (tokens + 1).pow(seq_len as u32);
        let mut offsets = Vec::with_capacity(1 << seq_len);
        let mut acc = 0;
        for subset in 0..(1usize << seq_len) {
            offsets.push(acc);
            acc += tokens.pow(subset.count_ones());
        }
        debug_assert_eq!(acc, rows);
        let mut at = vec![0.0; count * rows];
        let mut seq = vec![0; seq_len];
        for x in 0..count {
            decode(x, tokens, &mut seq);
            for (subset, &offset) in offsets.iter().enumerate() {
                at[x * rows + offset + code_on(&seq, subset, tokens)] = 1.0;
            }
        }
        let marginals_t = dev
            .try_tensor_from_vec(from_f64s::<E>(&at), (count, rows))
            .map_err(Error::device("Tabular::new"))?;
        let mut params = ParamStore::new(dev, 0);
        let id = params.add("logits", &[count], Init::Zeros)?;
        params.set_values(id, from_f64s(&logits))?;
        Ok(Self {
            tokens,
            states,
            seq_len,
            logits: id,
            params,
            marginals_t,
            offsets,
            kernel,
        })
    }

    /// Sequence length `L`.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Number of clean sequences `V^L`.
    pub fn num_sequences(&self) -> usize {
        self.marginals_t.shape().0
    }

    /// Id of the logits parameter θ in [`ScoreModel::params`].
    pub fn logits_id(&self) -> ParamId {
        self.logits
    }

    /// `π_θ = softmax(θ)` in lexicographic order, in f64.
    pub fn probabilities(&self) -> Vec<f64> {
        probabilities_of(&crate::nn::to_f64s(
            &self.params.vector(self.logits).as_vec(),
        ))
    }

    /// `π` for the logits held in another store of the same layout (θ_old, a reference).
    pub fn probabilities_with(&self, params: &ParamStore<E, D>) -> Vec<f64> {
        probabilities_of(&crate::nn::to_f64s(&params.vector(self.logits).as_vec()))
    }

    /// Lexicographic index of a clean sequence (position 0 most significant).
    pub fn index_of(&self, seq: &[usize]) -> usize {
        seq.iter().fold(0, |acc, &t| acc * self.tokens + t)
    }

    /// The clean sequence at a lexicographic index.
    pub fn sequence_of(&self, index: usize) -> Vec<usize> {
        let mut seq = vec![0; self.seq_len];
        decode(index, self.tokens, &mut seq);
        seq
    }

    /// Exact `p_t(y)` (host, f64) of one noisy sequence `y` at total noise `σ̄`.
    pub fn noised_probability(&self, y: &[usize], sigma_bar: f64) -> f64 {
        let pi = self.probabilities();
        let count = self.num_sequences();
        let mut seq = vec![0; self.seq_len];
        (0..count)
            .map(|x| {
                decode(x, self.tokens, &mut seq);
                let k: f64 = seq
                    .iter()
                    .zip(y)
                    .map(|(&a, &b)| (self.kernel.transition)(a, b, sigma_bar))
                    .product();
                pi[x] * k
            })
            .sum()
    }
}

fn probabilities_of(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let z: f64 = w.iter().sum();
    w.into_iter().map(|x| x / z).collect()
}

fn decode(mut index: usize, tokens: usize, out: &mut [usize]) {
    for slot in out.iter_mut().rev() {
        *slot = index % tokens;
        index /= tokens;
    }
}

/// Lexicographic code of `seq` restricted to the positions in `subset` (bit `l` = position `l`).
fn code_on(seq: &[usize], subset: usize, tokens: usize) -> usize {
    seq.iter()
        .enumerate()
        .filter(|(l, _)| subset >> l & 1 == 1)
        .fold(0, |acc, (_, &t)| acc * tokens + t)
}

impl<E: Dtype, D: Device<E>> ScoreModel for Tabular<E, D> {
    type Elem = E;
    type Device = D;

    fn num_states(&self) -> usize {
        self.states
    }

    fn max_len(&self) -> Option<usize> {
        Some(self.seq_len)
    }

    fn params(&self) -> &ParamStore<E, D> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<E, D> {
        &mut self.params
    }

    /// As the trait's, and the length must be exactly the model's `L` (its table enumerates
    /// sequences of that length only).
    fn check_input(
        &self,
        tokens: &[usize],
        batch: usize,
        seq_len: usize,
        sigma_bar: &[f64],
    ) -> Result<()> {
        crate::check::tokens(tokens, batch, seq_len, self.states)?;
        crate::check::sigmas(sigma_bar, batch)?;
        if seq_len != self.seq_len {
            return Err(Error::ShapeMismatch {
                op: "Tabular::check_input (sequence length)",
                expected: vec![self.seq_len],
                got: vec![seq_len],
            });
        }
        Ok(())
    }

    fn exact_log_prob(
        &self,
        params: &ParamStore<E, D>,
        sequences: &[usize],
        batch: usize,
    ) -> Option<Vec<f64>> {
        let pi = self.probabilities_with(params);
        let l = sequences.len() / batch.max(1);
        if l != self.seq_len || sequences.iter().any(|&t| t >= self.tokens) {
            return None;
        }
        Some(
            sequences
                .chunks(l)
                .map(|s| pi[self.index_of(s)].ln())
                .collect(),
        )
    }

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> Result<LogScores<E, D, T>> {
        let (b, l) = *tokens.shape();
        assert_eq!(
            l, self.seq_len,
            "Tabular: sequence length {l} but the model has {}",
            self.seq_len
        );
        let (n, terms) = (self.states, 1usize << l);
        let rows = self.marginals_t.shape().1;
        let dev = tokens.device().clone();
        let x = tokens.as_vec();

        // Host: for every (sequence, position, value) neighbour y = x^{l←v} and every subset S, the
        // marginal index row(S, y_S) and the log-coefficient Σ_{l∉S} log a(y_l) + Σ_{l∈S} log b(y_l)
        // (`IMPOSSIBLE` where the term vanishes). Everything stays in log space: at large σ̄ the
        // coefficients underflow any fixed floor (e^{−σ̄L} ≈ 1e-35 at σ̄ = 20, L = 4).
        let mut index = Vec::with_capacity(b * l * n * terms);
        let mut log_coef = Vec::with_capacity(b * l * n * terms);
        let mut log_ab = vec![(0.0, 0.0); n];
        let mut y = vec![0; l];
        for bi in 0..b {
            for (v, slot) in log_ab.iter_mut().enumerate() {
                let (a, bb) = self.kernel.ab(v, sigma_bar[bi]);
                *slot = (a.ln(), bb.ln());
            }
            for li in 0..l {
                for v in 0..n {
                    y.copy_from_slice(&x[bi * l..(bi + 1) * l]);
                    y[li] = v;
                    for subset in 0..terms {
                        let mut c = 0.0;
                        let mut valid = true;
                        for (p, &yp) in y.iter().enumerate() {
                            if subset >> p & 1 == 1 {
                                valid &= yp < self.tokens;
                                c += log_ab[yp].1;
                            } else {
                                c += log_ab[yp].0;
                            }
                        }
                        if valid && c > IMPOSSIBLE {
                            index.push(self.offsets[subset] + code_on(&y, subset, self.tokens));
                            log_coef.push(from_f64::<E>(c));
                        } else {
                            index.push(0);
                            log_coef.push(from_f64::<E>(IMPOSSIBLE));
                        }
                    }
                }
            }
        }
        let total = b * l * n * terms;
        let index = upload(
            &dev,
            index,
            (total,),
            "Tabular::forward_with (marginal index)",
        )?;
        let log_coef = upload(
            &dev,
            log_coef,
            (b * l * n, terms),
            "Tabular::forward_with (coefficients)",
        )?;
        let count = self.num_sequences();

        // Device, differentiable in θ: π = softmax(θ), M = A π,
        // log p_t(y) = logsumexp_S (log coef_S + log M[row_S]). M is floored at the smallest positive
        // normal of E so that a marginal that underflowed to 0 gives a finite log and gradient.
        let pi = params
            .vector(self.logits)
            .put_tape(tape)
            .softmax::<Axis<0>>()
            .reshape_like(&(1, count));
        let floor = if from_f64::<E>(1e-300) > from_f64::<E>(0.0) {
            1e-300
        } else {
            1e-37
        };
        let log_marginals = pi
            .matmul(self.marginals_t.clone())
            .reshape_like(&(rows,))
            .clamp(floor, f64::MAX)
            .ln();
        let log_p = (log_marginals
            .gather(index)
            .reshape_like(&(b * l * n, terms))
            + log_coef)
            .logsumexp::<_, Axis<1>>();
        let self_index: Vec<usize> = (0..b * l).map(|i| i * n + x[i]).collect();
        let self_index = upload(
            &dev,
            self_index,
            (b * l,),
            "Tabular::forward_with (self index)",
        )?;
        let log_p_self = log_p
            .with_empty_tape()
            .gather(self_index)
            .reshape_like(&(b, l))
            .broadcast_like::<_, Axis<2>>(&(b, l, n));
        let log_s = log_p.reshape_like(&(b, l, n)) - log_p_self;
        // The ratio of a sequence to itself is exactly 1.
        let mut keep = Vec::with_capacity(b * l * n);
        for &xi in &x {
            for v in 0..n {
                keep.push(from_f64::<E>(if v == xi { 0.0 } else { 1.0 }));
            }
        }
        let keep = upload(&dev, keep, (b, l, n), "Tabular::forward_with (keep mask)")?
            .gt(from_f64::<E>(0.5));
        Ok(keep.choose(log_s, dev.zeros_like(&(b, l, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Absorbing, Uniform};
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn logits(count: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.5).unwrap();
        (0..count).map(|_| normal.sample(&mut rng)).collect()
    }

    /// Every ratio equals the brute-force `p_t(x^{l←v}) / p_t(x)` computed by enumeration.
    fn check_against_brute_force<G: Graph>(
        graph: &G,
        seq_len: usize,
        noisy: &[Vec<usize>],
        sigma: f64,
    ) {
        let dev = Cpu::default();
        let count = graph.num_tokens().pow(seq_len as u32);
        let model = Tabular::<f64, Cpu>::new(graph, seq_len, logits(count, 5), &dev).unwrap();
        let flat: Vec<usize> = noisy.iter().flatten().copied().collect();
        let sig = vec![sigma; noisy.len()];
        let out = model
            .log_scores_host(&flat, noisy.len(), seq_len, &sig)
            .unwrap();
        let n = graph.num_states();
        for (bi, x) in noisy.iter().enumerate() {
            let px = model.noised_probability(x, sigma);
            for l in 0..seq_len {
                for v in 0..n {
                    let mut y = x.clone();
                    y[l] = v;
                    let expect = (model.noised_probability(&y, sigma) / px).ln();
                    let got = out[(bi * seq_len + l) * n + v];
                    if expect.is_finite() {
                        assert!(
                            (got - expect).abs() < 1e-9,
                            "{graph:?} x={x:?} l={l} v={v}: {got} vs {expect}"
                        );
                    } else {
                        assert!(got < -30.0);
                    }
                }
            }
        }
    }

    #[test]
    fn scores_are_exact_ratios_for_both_graphs() {
        let g = Absorbing::new(4).unwrap();
        check_against_brute_force(&g, 3, &[vec![3, 3, 3], vec![0, 3, 2], vec![1, 2, 0]], 0.7);
        check_against_brute_force(&g, 3, &[vec![3, 1, 3]], 3.0);
        let u = Uniform::new(3).unwrap();
        check_against_brute_force(&u, 3, &[vec![0, 1, 2], vec![2, 2, 2]], 0.4);
        check_against_brute_force(&u, 3, &[vec![1, 0, 0]], 1e-3);
    }

    /// At large σ̄ every term of `p_t` is tiny (`e^{−σ̄L}`); in log space the rarest states keep their
    /// exact ratios (a linear-space floor at 1e-30 read a mask ratio of 7.17 nats for 20.52).
    #[test]
    fn scores_stay_exact_at_large_noise() {
        let g = Absorbing::new(4).unwrap();
        check_against_brute_force(&g, 4, &[vec![0, 1, 2, 0], vec![3, 2, 3, 1]], 20.0);
        let u = Uniform::new(3).unwrap();
        check_against_brute_force(&u, 4, &[vec![0, 1, 2, 0]], 20.0);
    }

    #[test]
    fn logit_gradients_match_finite_differences() {
        use crate::nn::gradcheck::{check_gradient, Objective};
        /// A fixed weighted sum of the ratios `s(x)_{l,v}` of two noisy sequences.
        struct WeightedRatios<'a>(&'a Tabular<f64, Cpu>);
        impl Objective for WeightedRatios<'_> {
            fn eval<T: Tape<f64, Cpu>>(
                &self,
                store: &ParamStore<f64, Cpu>,
                tape: T,
            ) -> Tensor<Rank0, f64, Cpu, T> {
                let dev = store.device();
                let x = dev.tensor_from_vec(vec![2, 0, 2, 1, 2, 2], (2, 3));
                let w: Vec<f64> = (0..18).map(|i| ((i * 7 % 5) as f64) / 5.0 - 0.3).collect();
                let w = dev.tensor_from_vec(w, (2, 3, 3));
                (self
                    .0
                    .forward_with(store, &x, &[0.5, 1.5], tape)
                    .unwrap()
                    .exp()
                    * w)
                    .sum()
            }
        }
        let dev = Cpu::default();
        let model = Tabular::new(&Absorbing::new(3).unwrap(), 3, logits(8, 1), &dev).unwrap();
        let mut store = model.params().clone();
        let err = check_gradient(&mut store, &WeightedRatios(&model), 1e-6);
        assert!(err < 1e-7, "relative error {err}");
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let dev = Cpu::default();
        let g = Absorbing::new(5).unwrap();
        assert!(matches!(
            Tabular::<f32, Cpu>::new(&g, 2, vec![0.0; 15], &dev),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            Tabular::<f32, Cpu>::new(&g, 20, vec![], &dev),
            Err(Error::InvalidParameter { .. })
        ));
        let m = Tabular::<f32, Cpu>::new(&g, 2, vec![0.0; 16], &dev).unwrap();
        assert!(matches!(
            m.log_scores_host(&[0, 5], 1, 2, &[0.1]),
            Err(Error::TokenOutOfVocab { token: 5, .. })
        ));
        assert!(matches!(
            m.log_scores_host(&[0, 1], 1, 2, &[f64::NAN]),
            Err(Error::NonFinite { .. })
        ));
        assert!(matches!(
            m.log_scores_host(&[0, 1, 2], 1, 3, &[0.1]),
            Err(Error::ShapeMismatch { .. })
        ));
        assert_eq!(m.index_of(&m.sequence_of(13)), 13);
    }
}
