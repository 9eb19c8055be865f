//! Every host kernel against finite differences (f64) and against the composed dfdx ops it replaces
//! (f32 and f64, values and gradients, taped and untaped), on odd shapes (L = 1, one head, d_h = 2) and
//! on shapes large enough to split across rayon tasks.

use dfdx::prelude::*;

use super::{with_composed_ops, Kernels};
use crate::nn::gradcheck::{check_gradient, Objective};
use crate::nn::{from_f64s, Grads, Init, ParamId, ParamStore};

/// One kernel call with its input sizes; its inputs are the parameters of a store.
#[derive(Debug, Clone, Copy)]
enum Case {
    /// `gelu` on `[B, L, D]`.
    Gelu(usize, usize, usize),
    /// `norm_modulate` on `x [B, L, D]`, `γ [D]`, `shift, scale [B, D]`.
    NormModulate(usize, usize, usize),
    /// `rope` on `[B, L, H, d_h]` with fixed arbitrary (not rotary) tables `[L, d_h]`.
    Rope(usize, usize, usize, usize),
    /// `attention` on `q, k, v [B, L, H, d_h]`, `α = 1/√d_h`.
    Attention(usize, usize, usize, usize),
}

/// `Σ_i w_i out_i` with fixed weights `w_i = sin(1.3 i + 0.7)`, so every output gets its own gradient.
struct Weighted {
    case: Case,
    ids: Vec<ParamId>,
}

impl Weighted {
    /// Registers the case's inputs, `N(0, 1)` (scale, shift at 0.5) from `seed`.
    fn new<E: Dtype, D: Device<E>>(case: Case, store: &mut ParamStore<E, D>) -> Self {
        let mut add = |name: &str, shape: &[usize], std: f64| {
            store.add(name, shape, Init::Normal { std }).unwrap()
        };
        let ids = match case {
            Case::Gelu(b, l, d) => vec![add("x", &[b, l, d], 2.0)],
            Case::NormModulate(b, l, d) => vec![
                add("x", &[b, l, d], 1.0),
                add("gamma", &[d], 1.0),
                add("shift", &[b, d], 0.5),
                add("scale", &[b, d], 0.5),
            ],
            Case::Rope(b, l, h, dh) => vec![add("x", &[b, l, h, dh], 1.0)],
            Case::Attention(b, l, h, dh) => vec![
                add("q", &[b, l, h, dh], 1.0),
                add("k", &[b, l, h, dh], 1.0),
                add("v", &[b, l, h, dh], 1.0),
            ],
        };
        Self { case, ids }
    }

    fn eval<E: Dtype, D: Kernels<E>, T: Tape<E, D>>(
        &self,
        store: &ParamStore<E, D>,
        tape: T,
    ) -> Tensor<Rank0, E, D, T> {
        let p = |i: usize| store.vector(self.ids[i]);
        let out: Vec<Tensor<(usize,), E, D, T>> = match self.case {
            Case::Gelu(b, l, d) => {
                let x = p(0).reshape_like(&(b, l, d)).put_tape(tape);
                vec![D::gelu(x).reshape_like(&(b * l * d,))]
            }
            Case::NormModulate(b, l, d) => {
                let x = p(0).reshape_like(&(b, l, d)).put_tape(tape);
                let shift = p(2).reshape_like(&(b, d)).put_tape(T::default());
                let scale = p(3).reshape_like(&(b, d)).put_tape(T::default());
                let y = D::norm_modulate(x, p(1), shift, scale, 1e-5);
                vec![y.reshape_like(&(b * l * d,))]
            }
            Case::Rope(b, l, h, dh) => {
                let x = p(0).reshape_like(&(b, l, h, dh)).put_tape(tape);
                // Constant tables (no gradient), arbitrary rather than rotary: the kernel reads both halves.
                let table = |phase: f64| {
                    let v: Vec<f64> = (0..l * dh)
                        .map(|i| (0.37 * i as f64 + phase).sin())
                        .collect();
                    store.device().tensor_from_vec(from_f64s::<E>(&v), (l, dh))
                };
                let (cos, sin) = (table(0.3), table(1.9));
                vec![D::rope(x, &cos, &sin).reshape_like(&(b * l * h * dh,))]
            }
            Case::Attention(b, l, h, dh) => {
                let shape = (b, l, h, dh);
                let q = p(0).reshape_like(&shape).put_tape(tape);
                let k = p(1).reshape_like(&shape).put_tape(T::default());
                let v = p(2).reshape_like(&shape).put_tape(T::default());
                let alpha = 1.0 / (dh as f64).sqrt();
                vec![D::attention(q, k, v, alpha).reshape_like(&(b * l * h * dh,))]
            }
        };
        let out = out.into_iter().next().unwrap();
        let n = out.shape().0;
        let w: Vec<f64> = (0..n).map(|i| (1.3 * i as f64 + 0.7).sin()).collect();
        let w = store.device().tensor_from_vec(from_f64s::<E>(&w), (n,));
        (out * w).sum::<Rank0, _>()
    }

    /// `(untaped outputs, taped outputs, gradient over every input)` as f64, `Σ w ⊙ out` being the loss.
    fn run<E: Dtype, D: Kernels<E>>(&self, store: &ParamStore<E, D>) -> [Vec<f64>; 3] {
        let untaped = self.eval(store, NoneTape).as_vec()[0].to_f64().unwrap();
        let taped = self.eval(store, OwnedTape::default());
        let value = taped.as_vec()[0].to_f64().unwrap();
        let grads = Grads::collect(store, &mut taped.backward()).unwrap();
        [vec![untaped], vec![value], grads.flat_f64()]
    }
}

impl Objective for Weighted {
    fn eval<T: Tape<f64, Cpu>>(
        &self,
        store: &ParamStore<f64, Cpu>,
        tape: T,
    ) -> Tensor<Rank0, f64, Cpu, T> {
        Weighted::eval(self, store, tape)
    }
}

/// Small and odd shapes (finite differences over every input); L = 1, one head, d_h = 2 included.
const SMALL: [Case; 11] = [
    Case::Gelu(2, 3, 5),
    Case::Gelu(1, 1, 1),
    Case::NormModulate(2, 3, 5),
    Case::NormModulate(1, 1, 2),
    Case::NormModulate(3, 1, 4),
    Case::Rope(2, 3, 2, 4),
    Case::Rope(1, 1, 1, 2),
    Case::Attention(2, 3, 2, 4),
    Case::Attention(1, 1, 1, 2),
    Case::Attention(2, 5, 1, 6),
    Case::Attention(3, 4, 3, 2),
];

/// Shapes that split across several rayon tasks, with task boundaries inside a batch row.
const LARGE: [Case; 4] = [
    Case::Gelu(4, 64, 130),
    Case::NormModulate(4, 50, 200),
    Case::Rope(3, 70, 2, 64),
    Case::Attention(5, 33, 3, 16),
];

/// `max |a − b| / max |b|` (norm-wise relative error).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn parity<E: Dtype>(case: Case, seed: u64, tol: f64)
where
    Cpu: Kernels<E>,
{
    let mut store = ParamStore::<E, Cpu>::new(&Cpu::default(), seed);
    let objective = Weighted::new(case, &mut store);
    let host = objective.run(&store);
    let composed = with_composed_ops(|| objective.run(&store));
    for (what, (a, b)) in ["untaped value", "taped value", "gradient"]
        .iter()
        .zip(host.iter().zip(&composed))
    {
        let err = rel_err(a, b);
        assert!(
            err <= tol,
            "{case:?} {}: {what} differs by {err:e}",
            std::any::type_name::<E>()
        );
    }
    // The untaped branch computes the same numbers as the taped one.
    assert_eq!(host[0], host[1], "{case:?}");
}

#[test]
fn host_kernels_match_finite_differences() {
    for (i, case) in SMALL.into_iter().enumerate() {
        let mut store = ParamStore::<f64, Cpu>::new(&Cpu::default(), 100 + i as u64);
        let objective = Weighted::new(case, &mut store);
        let err = check_gradient(&mut store, &objective, 1e-6);
        assert!(err < 1e-7, "{case:?}: max relative error {err:e}");
    }
}

#[test]
fn host_kernels_match_composed_ops_in_f64() {
    for (i, case) in SMALL.into_iter().chain(LARGE).enumerate() {
        parity::<f64>(case, 200 + i as u64, 1e-12);
    }
}

#[test]
fn host_kernels_match_composed_ops_in_f32() {
    for (i, case) in SMALL.into_iter().chain(LARGE).enumerate() {
        parity::<f32>(case, 300 + i as u64, 1e-5);
    }
}

#[test]
fn gelu_is_the_tanh_form_and_the_composed_switch_nests() {
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(vec![-3.0f64, -0.5, 0.0, 0.5, 3.0], (1usize, 1usize, 5usize));
    // gelu(x) = x·σ(2u) against ½x(1 + tanh u) in f64; the latter loses ~1e-14 to the cancellation in
    // 1 + tanh u at x = −3.
    let y = <Cpu as Kernels<f64>>::gelu(x.clone()).as_vec();
    for (v, x) in y.iter().zip(x.as_vec()) {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        approx::assert_relative_eq!(
            *v,
            0.5 * x * (1.0 + u.tanh()),
            max_relative = 1e-13,
            epsilon = 1e-300
        );
    }
    assert!(super::host_enabled());
    let inner = with_composed_ops(|| with_composed_ops(|| !super::host_enabled()));
    assert!(inner && super::host_enabled());
}
