//! Interim exact oracle with the API of `crate::score::Tabular` (being written on `main`): the exact
//! concrete score of `p_t = π·exp(σ̄Q)^{⊗L}` for a table `π` over all clean sequences.
//! Replaced by `Tabular` once it lands.

use std::collections::HashMap;

use dfdx::prelude::*;

use crate::error::Result;
use crate::graph::Graph;
use crate::nn::{from_f64s, ParamStore};
use crate::score::{LogScores, ScoreModel, Tokens};

type Kernel = Box<dyn Fn(usize, usize, f64) -> f64 + Send + Sync>;

pub(crate) struct Tabular<E: Dtype, D: Device<E>> {
    params: ParamStore<E, D>,
    probs: Vec<f64>,
    states: usize,
    tokens: usize,
    seq_len: usize,
    kernel: Kernel,
}

impl<E: Dtype, D: Device<E>> Tabular<E, D> {
    pub(crate) fn new<G: Graph>(
        graph: &G,
        seq_len: usize,
        logits: Vec<f64>,
        dev: &D,
    ) -> Result<Self> {
        let tokens = graph.num_tokens();
        assert_eq!(logits.len(), tokens.pow(seq_len as u32));
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let z: f64 = w.iter().sum();
        let g = graph.clone();
        Ok(Self {
            params: ParamStore::new(dev, 0),
            probs: w.iter().map(|x| x / z).collect(),
            states: graph.num_states(),
            tokens,
            seq_len,
            kernel: Box::new(move |a, b, s| g.transition(a, b, s)),
        })
    }

    pub(crate) fn probabilities(&self) -> Vec<f64> {
        self.probs.clone()
    }

    pub(crate) fn index_of(&self, x: &[usize]) -> usize {
        x.iter().fold(0, |acc, &t| acc * self.tokens + t)
    }

    fn digits(&self, mut c: usize, base: usize) -> Vec<usize> {
        let mut d = vec![0; self.seq_len];
        for slot in d.iter_mut().rev() {
            *slot = c % base;
            c /= base;
        }
        d
    }

    /// `p_t` over all `N^L` noisy sequences at total noise `s`.
    fn table(&self, s: f64) -> Vec<f64> {
        let (n, l) = (self.states, self.seq_len);
        let mut p = vec![0.0; n.pow(l as u32)];
        for (c, &pi) in self.probs.iter().enumerate() {
            let idx = self
                .digits(c, self.tokens)
                .iter()
                .fold(0, |acc, &t| acc * n + t);
            p[idx] = pi;
        }
        let k: Vec<f64> = (0..n * n).map(|i| (self.kernel)(i / n, i % n, s)).collect();
        for pos in 0..l {
            let stride = n.pow((l - 1 - pos) as u32);
            let mut out = vec![0.0; p.len()];
            for (i, o) in out.iter_mut().enumerate() {
                let b = (i / stride) % n;
                let base = i - b * stride;
                *o = (0..n).map(|a| p[base + a * stride] * k[a * n + b]).sum();
            }
            p = out;
        }
        p
    }

    /// Log-scores of one sequence from a table.
    fn from_table(&self, table: &[f64], x: &[usize], out: &mut [f64]) {
        let n = self.states;
        let idx = x.iter().fold(0, |acc, &t| acc * n + t);
        let lp = table[idx].ln();
        for (pos, &xl) in x.iter().enumerate() {
            let stride = n.pow((self.seq_len - 1 - pos) as u32);
            for v in 0..n {
                out[pos * n + v] = if v == xl {
                    0.0
                } else {
                    table[idx - xl * stride + v * stride].ln() - lp
                };
            }
        }
    }

    /// Log-scores of one sequence directly: `p(x^{l←v}) = Σ_{x0} π(x0) Π_{l'≠l} K(x0_l', x_l') K(x0_l, v)`.
    fn direct(&self, s: f64, x: &[usize], out: &mut [f64]) {
        let (n, l) = (self.states, self.seq_len);
        let kern: Vec<f64> = (0..n * n).map(|i| (self.kernel)(i / n, i % n, s)).collect();
        let mut nb = vec![0.0; l * n];
        let mut px = 0.0;
        let mut k = vec![0.0; l];
        for (c, &pi) in self.probs.iter().enumerate() {
            let mut rest = c;
            for p in (0..l).rev() {
                k[p] = kern[(rest % self.tokens) * n + x[p]];
                rest /= self.tokens;
            }
            let mut rest = c;
            for p in (0..l).rev() {
                let d = rest % self.tokens;
                rest /= self.tokens;
                let others: f64 = pi * (0..l).filter(|&q| q != p).map(|q| k[q]).product::<f64>();
                if others != 0.0 {
                    for v in 0..n {
                        nb[p * n + v] += others * kern[d * n + v];
                    }
                }
            }
            px += pi * k.iter().product::<f64>();
        }
        for p in 0..l {
            for v in 0..n {
                out[p * n + v] = if v == x[p] {
                    0.0
                } else {
                    nb[p * n + v].ln() - px.ln()
                };
            }
        }
    }
}

impl<E: Dtype, D: Device<E>> ScoreModel<E, D> for Tabular<E, D> {
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

    fn forward_with<T: Tape<E, D>>(
        &self,
        params: &ParamStore<E, D>,
        tokens: &Tokens<D>,
        sigma_bar: &[f64],
        tape: T,
    ) -> LogScores<E, D, T> {
        let (b, l) = *tokens.shape();
        let n = self.states;
        let ids = tokens.as_vec();
        let mut out = vec![0.0; b * l * n];
        let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in sigma_bar.iter().enumerate() {
            groups.entry(s.to_bits()).or_default().push(i);
        }
        for (bits, rows) in groups {
            let s = f64::from_bits(bits);
            let table = (rows.len() >= 8).then(|| self.table(s));
            for r in rows {
                let x = &ids[r * l..(r + 1) * l];
                let o = &mut out[r * l * n..(r + 1) * l * n];
                match &table {
                    Some(t) => self.from_table(t, x, o),
                    None => self.direct(s, x, o),
                }
            }
        }
        params
            .device()
            .tensor_from_vec(from_f64s::<E>(&out), (b, l, n))
            .put_tape(tape)
    }
}
