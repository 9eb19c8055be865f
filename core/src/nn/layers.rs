//! Runtime-width layers over a [`ParamStore`]: each layer holds parameter ids, not tensors, so one store
//! can be optimised, snapshotted and checkpointed as a whole.
//!
//! Inputs are rank-2 `[n, d]` (flatten batch and sequence first: a contiguous reshape is free in dfdx).

use dfdx::prelude::*;

use crate::error::Result;
use crate::nn::{Init, ParamId, ParamStore};

/// Affine map `y = x W + b` with `W: [d_in, d_out]`, `b: [d_out]`.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    /// Weight id, shape `[d_in, d_out]`.
    pub weight: ParamId,
    /// Bias id, shape `[d_out]` (absent for bias-free layers).
    pub bias: Option<ParamId>,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

impl Linear {
    /// Registers `<name>.weight` (`N(0, 1/d_in)` unless `init` says otherwise) and, if `bias`,
    /// `<name>.bias` (zeros).
    pub fn new<E: Dtype, D: Device<E>>(
        store: &mut ParamStore<E, D>,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        init: Option<Init>,
    ) -> Result<Self> {
        let init = init.unwrap_or(Init::Normal {
            std: (1.0 / d_in as f64).sqrt(),
        });
        let weight = store.add(format!("{name}.weight"), &[d_in, d_out], init)?;
        let bias = if bias {
            Some(store.add(format!("{name}.bias"), &[d_out], Init::Zeros)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            d_in,
            d_out,
        })
    }

    /// `x [n, d_in] → x W + b [n, d_out]`.
    pub fn forward<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        x: Tensor<(usize, usize), E, D, T>,
    ) -> Tensor<(usize, usize), E, D, T> {
        let n = x.shape().0;
        let y = x.matmul(store.matrix(self.weight));
        match self.bias {
            Some(b) => {
                y + store
                    .vector(b)
                    .broadcast_like::<_, Axis<0>>(&(n, self.d_out))
            }
            None => y,
        }
    }
}

/// Layer normalisation over the last axis: `y = (x − mean)/sqrt(var + ε)·γ + β` (γ, β optional).
#[derive(Debug, Clone, Copy)]
pub struct LayerNorm {
    /// Scale γ `[d]`, if affine.
    pub gamma: Option<ParamId>,
    /// Shift β `[d]`, if affine.
    pub beta: Option<ParamId>,
    /// Width.
    pub dim: usize,
    /// ε inside the square root.
    pub eps: f64,
}

impl LayerNorm {
    /// Registers `<name>.weight` (ones) and `<name>.bias` (zeros) when `affine`.
    pub fn new<E: Dtype, D: Device<E>>(
        store: &mut ParamStore<E, D>,
        name: &str,
        dim: usize,
        affine: bool,
    ) -> Result<Self> {
        let (gamma, beta) = if affine {
            (
                Some(store.add(format!("{name}.weight"), &[dim], Init::Ones)?),
                Some(store.add(format!("{name}.bias"), &[dim], Init::Zeros)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            gamma,
            beta,
            dim,
            eps: 1e-5,
        })
    }

    /// Normalises each row of `x [n, d]`.
    pub fn forward<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        x: Tensor<(usize, usize), E, D, T>,
    ) -> Tensor<(usize, usize), E, D, T> {
        let shape = *x.shape();
        let y = x.normalize::<Axis<1>>(self.eps);
        let y = match self.gamma {
            Some(g) => y * store.vector(g).broadcast_like::<_, Axis<0>>(&shape),
            None => y,
        };
        match self.beta {
            Some(b) => y + store.vector(b).broadcast_like::<_, Axis<0>>(&shape),
            None => y,
        }
    }
}

/// Token embedding: a table `[vocab, dim]` looked up by index.
#[derive(Debug, Clone, Copy)]
pub struct Embedding {
    /// Table id, shape `[vocab, dim]`.
    pub table: ParamId,
    /// Number of rows.
    pub vocab: usize,
    /// Width.
    pub dim: usize,
}

impl Embedding {
    /// Registers `<name>.weight` with `N(0, std²)` entries.
    pub fn new<E: Dtype, D: Device<E>>(
        store: &mut ParamStore<E, D>,
        name: &str,
        vocab: usize,
        dim: usize,
        std: f64,
    ) -> Result<Self> {
        let table = store.add(
            format!("{name}.weight"),
            &[vocab, dim],
            Init::Normal { std },
        )?;
        Ok(Self { table, vocab, dim })
    }

    /// Looks up `ids [n]` (already checked to be `< vocab`) and starts the tape `tape` there:
    /// the embedding is the first op of a network, so this is where gradients begin to be recorded.
    pub fn forward<E: Dtype, D: Device<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        ids: Tensor<(usize,), usize, D>,
        tape: T,
    ) -> Tensor<(usize, usize), E, D, T> {
        store.matrix(self.table).put_tape(tape).gather(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_gradient, Objective};

    struct Net {
        emb: Embedding,
        lin: Linear,
        ln: LayerNorm,
        ids: Vec<usize>,
        target: Vec<f64>,
    }

    impl Objective for Net {
        fn eval<T: Tape<f64, Cpu>>(
            &self,
            store: &ParamStore<f64, Cpu>,
            tape: T,
        ) -> Tensor<Rank0, f64, Cpu, T> {
            let dev = store.device();
            let ids = dev.tensor_from_vec(self.ids.clone(), (self.ids.len(),));
            let h = self.emb.forward(store, ids, tape);
            let h = self.ln.forward(store, h).tanh();
            let y = self.lin.forward(store, h);
            let target = dev.tensor_from_vec(self.target.clone(), *y.shape());
            (y - target).square().sum()
        }
    }

    #[test]
    fn embedding_layernorm_linear_gradients_match_finite_differences() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 7);
        let emb = Embedding::new(&mut store, "emb", 5, 4, 1.0).unwrap();
        let ln = LayerNorm::new(&mut store, "ln", 4, true).unwrap();
        let lin = Linear::new(&mut store, "lin", 4, 3, true, None).unwrap();
        // Move γ, β and the bias off their initial values so their gradients are generic.
        let flat: Vec<f64> = store
            .flat_f64()
            .iter()
            .enumerate()
            .map(|(i, x)| x + 0.1 * ((i * 7 % 5) as f64 - 2.0))
            .collect();
        store.set_flat_f64(&flat).unwrap();
        let net = Net {
            emb,
            lin,
            ln,
            ids: vec![0, 3, 3, 1],
            target: (0..12).map(|i| (i as f64 * 0.37).sin()).collect(),
        };
        let err = check_gradient(&mut store, &net, 1e-6);
        assert!(err < 1e-7, "max relative error {err}");
    }
}
