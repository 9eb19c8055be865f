//! sepo's CPU kernels (`sepo::nn::kernels`) against the composed dfdx ops they replace, at the `dna`
//! side-by-side configuration's shapes (D = 128, 4 heads of 32, MLP 512, L = 200) with a batch of 16.
//! Each kernel is timed forward only (`NoneTape`) and forward + backward (a leaky tape, the output
//! summed).
//!
//! ```sh
//! cargo bench --bench kernels                 # all
//! cargo bench --bench kernels -- attention    # one kernel
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sepo::dfdx::prelude::*;
use sepo::nn::kernels::{with_composed_ops, Kernels};

const B: usize = 16;
const L: usize = 200;
const D: usize = 128;
const H: usize = 4;
const FF: usize = 512;

type Act = Tensor<(usize, usize, usize), f32, Cpu>;

fn normal<S: Shape>(dev: &Cpu, shape: S) -> Tensor<S, f32, Cpu> {
    dev.sample_normal_like(&shape)
}

/// Times `f` with the host kernels and with the composed ops.
fn both(c: &mut Criterion, name: &str, mut f: impl FnMut()) {
    let mut group = c.benchmark_group(name);
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("host", ""), |b| b.iter(&mut f));
    group.bench_function(BenchmarkId::new("composed", ""), |b| {
        b.iter(|| with_composed_ops(&mut f))
    });
    group.finish();
}

fn gelu(c: &mut Criterion) {
    let dev = Cpu::default();
    let x: Act = normal(&dev, (B, L, FF));
    both(c, "gelu/forward", || {
        let _ = Cpu::gelu(x.clone()).as_vec();
    });
    both(c, "gelu/forward+backward", || {
        let y = Cpu::gelu(x.leaky_trace());
        let _ = y.sum::<Rank0, _>().backward();
    });
}

fn norm_modulate(c: &mut Criterion) {
    let dev = Cpu::default();
    let x: Act = normal(&dev, (B, L, D));
    let gamma = normal(&dev, (D,));
    let (shift, scale) = (normal(&dev, (B, D)), normal(&dev, (B, D)));
    both(c, "norm_modulate/forward", || {
        let y = Cpu::norm_modulate(x.clone(), gamma.clone(), shift.clone(), scale.clone(), 1e-5);
        let _ = y.as_vec();
    });
    both(c, "norm_modulate/forward+backward", || {
        let y = Cpu::norm_modulate(
            x.leaky_trace(),
            gamma.clone(),
            shift.leaky_trace(),
            scale.leaky_trace(),
            1e-5,
        );
        let _ = y.sum::<Rank0, _>().backward();
    });
}

fn rope(c: &mut Criterion) {
    let dev = Cpu::default();
    let x = normal(&dev, (B, L, H, D / H));
    let (cos, sin) = (normal(&dev, (L, D / H)), normal(&dev, (L, D / H)));
    both(c, "rope/forward", || {
        let _ = Cpu::rope(x.clone(), &cos, &sin).as_vec();
    });
    both(c, "rope/forward+backward", || {
        let y = Cpu::rope(x.leaky_trace(), &cos, &sin);
        let _ = y.sum::<Rank0, _>().backward();
    });
}

fn attention(c: &mut Criterion) {
    let dev = Cpu::default();
    let shape = (B, L, H, D / H);
    let (q, k, v) = (
        normal(&dev, shape),
        normal(&dev, shape),
        normal(&dev, shape),
    );
    let alpha = 1.0 / ((D / H) as f64).sqrt();
    both(c, "attention/forward", || {
        let _ = Cpu::attention(q.clone(), k.clone(), v.clone(), alpha).as_vec();
    });
    both(c, "attention/forward+backward", || {
        let y = Cpu::attention(q.leaky_trace(), k.leaky_trace(), v.leaky_trace(), alpha);
        let _ = y.sum::<Rank0, _>().backward();
    });
}

criterion_group!(kernels, gelu, norm_modulate, rope, attention);
criterion_main!(kernels);
