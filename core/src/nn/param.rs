//! Runtime-shaped parameters: a named, ordered store of flat tensors.
//!
//! dfdx 0.13's layers are const-generic in their widths and its `TensorCollection` cannot describe a
//! runtime shape, so sepo keeps its own store. Every parameter is one flat `Tensor<(usize,), E, D>`
//! with a logical shape beside it; [`ParamStore::matrix`] reshapes a contiguous tensor, which in dfdx
//! keeps the tensor's id, so gradients recorded against the matrix view land on the flat parameter.
//! Optimisers, clipping, EMA, snapshots and checkpoint I/O all work on the flat list.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::nn::{from_f64, to_f64s};

/// Index of a parameter in its [`ParamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    /// Position of the parameter in the store's order.
    pub fn index(self) -> usize {
        self.0
    }
}

/// How a new parameter is filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Independent `N(0, std²)`.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Independent `U(−a, a)`.
    Uniform {
        /// Half-width.
        bound: f64,
    },
}

/// One named parameter: a flat tensor and its logical shape.
#[derive(Debug, Clone)]
pub struct Param<E: Dtype, D: Storage<E>> {
    /// Unique name, used as the safetensors key (`blocks.0.attn.qkv.weight`).
    pub name: String,
    /// Logical shape; the tensor holds `shape.iter().product()` elements, row-major.
    pub shape: Vec<usize>,
    /// The values.
    pub tensor: Tensor<(usize,), E, D>,
}

/// A named, ordered collection of runtime-shaped parameters on one device.
#[derive(Debug, Clone)]
pub struct ParamStore<E: Dtype, D: Device<E>> {
    dev: D,
    params: Vec<Param<E, D>>,
    rng: rand::rngs::StdRng,
}

impl<E: Dtype, D: Device<E>> ParamStore<E, D> {
    /// An empty store whose random initialisation is seeded by `seed` (host RNG, so initial values are
    /// the same on every device).
    pub fn new(dev: &D, seed: u64) -> Self {
        Self {
            dev: dev.clone(),
            params: Vec::new(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Adds a parameter. Names must be unique and every dimension positive.
    pub fn add(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> Result<ParamId> {
        let name = name.into();
        if self.params.iter().any(|p| p.name == name) {
            return Err(Error::invalid(
                "parameter name",
                name,
                "already used in this store",
            ));
        }
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::invalid(
                "parameter shape",
                format!("{shape:?}"),
                "every dimension must be positive",
            ));
        }
        let dims: Vec<(&'static str, usize)> = shape.iter().map(|&d| ("dimension", d)).collect();
        let n = crate::check::size(
            "a parameter",
            &dims,
            crate::check::MAX_ELEMENTS.saturating_sub(self.num_elements()),
        )?;
        let mut values: Vec<E> = Vec::new();
        values.try_reserve_exact(n).map_err(|e| Error::Device {
            op: "ParamStore::add (host buffer)",
            message: format!("{n} elements: {e}"),
        })?;
        match init {
            Init::Zeros => values.resize(n, from_f64(0.0)),
            Init::Ones => values.resize(n, from_f64(1.0)),
            Init::Normal { std } => values.extend((0..n).map(|_| {
                let z: f64 = StandardNormal.sample(&mut self.rng);
                from_f64::<E>(std * z)
            })),
            Init::Uniform { bound } => {
                values.extend((0..n).map(|_| from_f64::<E>(self.rng.gen_range(-bound..=bound))))
            }
        }
        let tensor = self
            .dev
            .try_tensor_from_vec(values, (n,))
            .map_err(Error::device("ParamStore::add"))?;
        self.params.push(Param {
            name,
            shape: shape.to_vec(),
            tensor,
        });
        Ok(ParamId(self.params.len() - 1))
    }

    /// Number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalar parameters.
    pub fn num_elements(&self) -> usize {
        self.params.iter().map(|p| p.tensor.shape().0).sum()
    }

    /// The parameters in order.
    pub fn params(&self) -> &[Param<E, D>] {
        &self.params
    }

    /// One parameter.
    pub fn param(&self, id: ParamId) -> &Param<E, D> {
        &self.params[id.0]
    }

    /// Looks a parameter up by name.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.params.iter().position(|p| p.name == name).map(ParamId)
    }

    /// The flat tensor of a parameter (shares its id, so gradients reach it).
    pub fn vector(&self, id: ParamId) -> Tensor<(usize,), E, D> {
        self.params[id.0].tensor.clone()
    }

    /// A rank-2 view `[rows, cols]` of a parameter (same id; no copy).
    ///
    /// Panics only on a sepo bug (a layer asking for a view its own constructor did not create).
    pub fn matrix(&self, id: ParamId) -> Tensor<(usize, usize), E, D> {
        let p = &self.params[id.0];
        let (r, c) = match p.shape[..] {
            [r, c] => (r, c),
            [n] => (1, n),
            _ => panic!("parameter {} has shape {:?}, not a matrix", p.name, p.shape),
        };
        p.tensor.clone().reshape_like(&(r, c))
    }

    /// Replaces the values of a parameter (fresh tensor id). The length must match.
    pub fn set_values(&mut self, id: ParamId, values: Vec<E>) -> Result<()> {
        let p = &mut self.params[id.0];
        let n = p.tensor.shape().0;
        if values.len() != n {
            return Err(Error::ShapeMismatch {
                op: "ParamStore::set_values",
                expected: p.shape.clone(),
                got: vec![values.len()],
            });
        }
        p.tensor = self
            .dev
            .try_tensor_from_vec(values, (n,))
            .map_err(Error::device("ParamStore::set_values"))?;
        Ok(())
    }

    /// Replaces a parameter's tensor (used by optimisers). Shapes are checked.
    pub(crate) fn replace(&mut self, index: usize, tensor: Tensor<(usize,), E, D>) {
        debug_assert_eq!(tensor.shape().0, self.params[index].tensor.shape().0);
        self.params[index].tensor = tensor;
    }

    /// A copy whose tensors have **new ids**: safe to use on the same tape as `self` (a frozen
    /// `θ_old` or reference model). `clone()` would share ids and mix gradients (DFDX_NOTES §10).
    pub fn snapshot(&self) -> Self {
        let mut out = self.clone();
        for p in &mut out.params {
            p.tensor = stop_gradient_vec(&p.tensor);
        }
        out
    }

    /// Copies every value from `other` (same names and shapes), giving fresh ids.
    pub fn copy_from(&mut self, other: &Self) -> Result<()> {
        self.check_same_layout(other, "ParamStore::copy_from")?;
        for (p, q) in self.params.iter_mut().zip(&other.params) {
            p.tensor = stop_gradient_vec(&q.tensor);
        }
        Ok(())
    }

    /// Errors unless `other` has the same parameter names and shapes in the same order.
    pub fn check_same_layout(&self, other: &Self, op: &'static str) -> Result<()> {
        if self.params.len() != other.params.len() {
            return Err(Error::ShapeMismatch {
                op,
                expected: vec![self.params.len()],
                got: vec![other.params.len()],
            });
        }
        for (p, q) in self.params.iter().zip(&other.params) {
            if p.name != q.name || p.shape != q.shape {
                return Err(Error::ShapeMismatch {
                    op,
                    expected: p.shape.clone(),
                    got: q.shape.clone(),
                });
            }
        }
        Ok(())
    }

    /// All values on the host, in order, as `(name, shape, values)`.
    pub fn to_host(&self) -> Vec<(String, Vec<usize>, Vec<E>)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone(), p.tensor.as_vec()))
            .collect()
    }

    /// All values flattened into one `f64` vector (tests, finite differences).
    pub fn flat_f64(&self) -> Vec<f64> {
        self.params
            .iter()
            .flat_map(|p| to_f64s(&p.tensor.as_vec()))
            .collect()
    }

    /// Sets all values from one flat `f64` vector laid out as [`ParamStore::flat_f64`].
    pub fn set_flat_f64(&mut self, values: &[f64]) -> Result<()> {
        if values.len() != self.num_elements() {
            return Err(Error::ShapeMismatch {
                op: "ParamStore::set_flat_f64",
                expected: vec![self.num_elements()],
                got: vec![values.len()],
            });
        }
        let mut offset = 0;
        for i in 0..self.params.len() {
            let n = self.params[i].tensor.shape().0;
            let v = values[offset..offset + n]
                .iter()
                .map(|&x| from_f64(x))
                .collect();
            self.set_values(ParamId(i), v)?;
            offset += n;
        }
        Ok(())
    }
}

/// A copy of `t` with a new id and no tape: a true stop-gradient (DFDX_NOTES §3: `retaped::<NoneTape>()`
/// keeps the id and still passes gradient).
pub fn stop_gradient_vec<E: Dtype, D: Device<E>>(
    t: &Tensor<(usize,), E, D>,
) -> Tensor<(usize,), E, D> {
    t.clone() * from_f64::<E>(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_view_shares_gradient_with_flat_parameter() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 0);
        let w = store.add("w", &[2, 3], Init::Normal { std: 1.0 }).unwrap();
        let x = dev.tensor_from_vec(vec![1.0, 2.0, 3.0], (3usize, 1usize));
        // loss = sum(W x) ⇒ dloss/dW[i, j] = x[j].
        let y = store
            .matrix(w)
            .put_tape(OwnedTape::<f64, Cpu>::default())
            .matmul(x);
        let grads = y.sum::<Rank0, _>().backward();
        let g = grads.get(&store.vector(w)).as_vec();
        assert_eq!(g, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn duplicate_names_and_empty_shapes_are_refused() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f32, Cpu>::new(&dev, 0);
        store.add("a", &[2], Init::Zeros).unwrap();
        assert!(matches!(
            store.add("a", &[2], Init::Zeros),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            store.add("b", &[0, 2], Init::Zeros),
            Err(Error::InvalidParameter { .. })
        ));
    }

    #[test]
    fn snapshot_has_new_ids_and_blocks_gradient() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 1);
        let w = store.add("w", &[3], Init::Normal { std: 1.0 }).unwrap();
        let frozen = store.snapshot();
        assert_eq!(store.flat_f64(), frozen.flat_f64());
        // f(w) = sum(w * w_frozen): the true gradient is w_frozen, not 2 w.
        let y = store.vector(w).put_tape(OwnedTape::<f64, Cpu>::default()) * frozen.vector(w);
        let grads = y.sum::<Rank0, _>().backward();
        assert_eq!(
            grads.get(&store.vector(w)).as_vec(),
            frozen.vector(w).as_vec()
        );
    }
}
