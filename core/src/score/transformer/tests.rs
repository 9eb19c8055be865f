use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use super::*;
use super::{Transformer, TransformerConfig};
use crate::nn::gradcheck::check_gradient;
use crate::score::head::log_expm1;
use crate::score::testing::{perturb, WeightedScores};

/// dim 8, 2 heads (head width 4), L = 3, N = 5: small enough for finite differences over every weight.
fn micro(layers: usize, head: ScoreHead) -> TransformerConfig {
    TransformerConfig {
        vocab: 5,
        max_len: 3,
        dim: 8,
        heads: 2,
        layers,
        cond_dim: 8,
        mlp_ratio: 4,
        freq_dim: 8,
        head,
        // The one-layer variant also exercises (and gradient-checks) the learned position table.
        learned_positions: layers == 1,
    }
}

/// Moves every parameter off its init (adaLN-Zero and the zero output layer would otherwise make most
/// gradients vanish) by adding `N(0, scale²)` noise.
fn scores(model: &Transformer<f64, Cpu>, tokens: &[usize], b: usize, sigma: &[f64]) -> Vec<f64> {
    let l = tokens.len() / b;
    model.log_scores_host(tokens, b, l, sigma).unwrap()
}

#[test]
fn shape_pinned_zeros_and_finite_for_both_heads() {
    let dev = Cpu::default();
    let (n, l) = (5, 3);
    let tokens = [0, 4, 2, 4, 4, 1, 3, 3, 0];
    for head in [ScoreHead::Absorbing, ScoreHead::Uniform] {
        let mut model = Transformer::<f64, Cpu>::new(micro(2, head), &dev, 3).unwrap();
        perturb(model.params_mut(), 4, 0.5);
        for sigma in [1e-4, 0.5, 10.0] {
            let ids = dev.tensor_from_vec(tokens.to_vec(), (3, l));
            let out = model.forward(&ids, &[sigma; 3], NoneTape).unwrap();
            assert_eq!(*out.shape(), (3, l, n));
            let s = out.as_vec();
            for (i, &x) in tokens.iter().enumerate() {
                let row = &s[i * n..(i + 1) * n];
                assert!(row.iter().all(|v| v.is_finite()), "{head:?} σ̄={sigma}");
                assert_eq!(row[x], 0.0);
                if head == ScoreHead::Absorbing {
                    assert_eq!(row[n - 1], 0.0);
                }
            }
        }
    }
}

#[test]
fn absorbing_scores_at_masked_positions_are_normalised_conditionals() {
    let dev = Cpu::default();
    let mut model = Transformer::<f64, Cpu>::new(micro(1, ScoreHead::Absorbing), &dev, 5).unwrap();
    perturb(model.params_mut(), 6, 0.5);
    let (n, mask) = (5, 4);
    let tokens = [mask, 1, mask, 2, mask, mask];
    for sigma in [1e-4, 0.5, 10.0] {
        let s = scores(&model, &tokens, 2, &[sigma, sigma]);
        for (i, &x) in tokens.iter().enumerate() {
            if x == mask {
                let total: f64 = s[i * n..i * n + n - 1].iter().map(|v| v.exp()).sum();
                approx::assert_relative_eq!(
                    total * log_expm1(sigma).exp(),
                    1.0,
                    max_relative = 1e-10
                );
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let dev = Cpu::default();
    for (layers, head, tokens) in [
        (2, ScoreHead::Absorbing, vec![4, 1, 4, 0, 3, 4]),
        (1, ScoreHead::Uniform, vec![2, 1, 0, 0, 3, 4]),
    ] {
        let model = Transformer::<f64, Cpu>::new(micro(layers, head), &dev, 11).unwrap();
        let mut store = model.params().clone();
        perturb(&mut store, 12, 0.5);
        let objective = WeightedScores {
            model,
            tokens,
            sigma: vec![0.3, 1.7],
        };
        let err = check_gradient(&mut store, &objective, 1e-6);
        assert!(err < 1e-6, "{head:?}: max relative error {err}");
    }
}

#[test]
fn rope_makes_scores_depend_on_position() {
    // Without positional information, attention is permutation-equivariant: swapping tokens 0 and 1
    // would leave the scores at positions 2 and 3 unchanged. RoPE must break that.
    let dev = Cpu::default();
    let mut config = micro(1, ScoreHead::Uniform);
    config.max_len = 4;
    let mut model = Transformer::<f64, Cpu>::new(config, &dev, 7).unwrap();
    perturb(model.params_mut(), 8, 0.5);
    let n = 5;
    let a = scores(&model, &[0, 1, 2, 3], 1, &[0.5]);
    let b = scores(&model, &[1, 0, 2, 3], 1, &[0.5]);
    let diff: f64 = a[2 * n..]
        .iter()
        .zip(&b[2 * n..])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(diff > 1e-6, "scores at positions 2, 3 unchanged: {diff}");
}

#[test]
fn rope_is_a_rotation_with_relative_inner_products() {
    let dev = Cpu::default();
    let rope = Rope::<f64, Cpu>::new(&dev, 6, 4).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let q: Vec<f64> = (0..4).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let k: Vec<f64> = (0..4).map(|_| rng.gen_range(-1.0..1.0)).collect();
    // The same q and k at every position: ⟨RoPE_p q, RoPE_r k⟩ must depend on p − r only.
    let at_all = |v: &[f64]| {
        let x = dev.tensor_from_vec(v.repeat(6), (1, 6, 1, 4));
        rope.apply(x).as_vec()
    };
    let (rq, rk) = (at_all(&q), at_all(&k));
    let dot = |p: usize, r: usize| -> f64 { (0..4).map(|j| rq[p * 4 + j] * rk[r * 4 + j]).sum() };
    approx::assert_relative_eq!(dot(3, 1), dot(5, 3), max_relative = 1e-12);
    approx::assert_relative_eq!(dot(0, 2), dot(2, 4), max_relative = 1e-12);
    let norm = |v: &[f64]| -> f64 { v.iter().map(|x| x * x).sum::<f64>() };
    approx::assert_relative_eq!(norm(&rq[16..20]), norm(&q), max_relative = 1e-12);
}

#[test]
fn same_seed_same_parameters_and_untrained_scores_are_flat() {
    let dev = Cpu::default();
    let config = TransformerConfig::tiny(5, 8, ScoreHead::Uniform);
    let a = Transformer::<f32, Cpu>::new(config, &dev, 42).unwrap();
    let b = Transformer::<f32, Cpu>::new(config, &dev, 42).unwrap();
    let c = Transformer::<f32, Cpu>::new(config, &dev, 43).unwrap();
    assert_eq!(a.params().flat_f64(), b.params().flat_f64());
    assert_ne!(a.params().flat_f64(), c.params().flat_f64());
    assert_eq!(a.params().num_elements(), config.num_params());
    // Zero output layer: every log-score of the uniform head starts at 0.
    let s = a.log_scores_host(&[0, 1, 2, 3], 1, 4, &[1.0]).unwrap();
    assert!(s.iter().all(|&v| v == 0.0));
}

#[test]
fn num_params_is_exact_and_sedd_small_is_in_range() {
    let mid = TransformerConfig::mid(7, 16, ScoreHead::Absorbing);
    let model = Transformer::<f32, Cpu>::new(mid, &Cpu::default(), 0).unwrap();
    assert_eq!(model.params().num_elements(), mid.num_params());

    let small = TransformerConfig::sedd_small();
    small.check().unwrap();
    // Embedding 50258·768 = 38_598_144; σ map 49_408; 12 blocks × 7_677_696 = 92_132_352; output layer
    // 768 + 128·1536 + 1536 + 768·50258 + 50258 = 38_847_314. The 12 blocks are SEDD-small's ≈ 92M
    // "non-embedding" parameters; with the untied input and output embeddings the total is 169_627_218.
    assert_eq!(DitBlock::num_params(768, 128, 3072), 7_677_696);
    assert_eq!(small.num_params(), 169_627_218);
}

#[test]
fn invalid_configs_name_the_field() {
    let ok = micro(1, ScoreHead::Uniform);
    ok.check().unwrap();
    TransformerConfig { heads: 4, ..ok }.check().unwrap(); // head width 2 is fine
    let cases = [
        (TransformerConfig { heads: 3, ..ok }, "heads"), // 8 % 3 ≠ 0
        (TransformerConfig { heads: 8, ..ok }, "heads"), // head width 1 is odd
        (TransformerConfig { layers: 0, ..ok }, "layers"),
        (TransformerConfig { dim: 0, ..ok }, "dim"),
        (TransformerConfig { vocab: 1, ..ok }, "vocab"),
        (TransformerConfig { freq_dim: 7, ..ok }, "freq_dim"),
    ];
    for (config, field) in cases {
        assert!(
            matches!(
                Transformer::<f32, Cpu>::new(config, &Cpu::default(), 0),
                Err(Error::InvalidParameter { name, .. }) if name == field
            ),
            "{config:?} should fail on {field}"
        );
    }
}

#[test]
fn input_longer_than_max_len_is_refused_and_config_round_trips() {
    let config = micro(1, ScoreHead::Absorbing);
    let model = Transformer::<f32, Cpu>::new(config, &Cpu::default(), 0).unwrap();
    assert!(matches!(
        model.log_scores_host(&[0; 4], 1, 4, &[1.0]),
        Err(Error::ShapeMismatch { .. })
    ));
    // Shorter sequences are fine (RoPE has no length limit).
    assert_eq!(
        model.log_scores_host(&[0, 1], 1, 2, &[1.0]).unwrap().len(),
        10
    );
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(
        serde_json::from_str::<TransformerConfig>(&json).unwrap(),
        config
    );
}

#[test]
fn dfdx_cpu_slice_backward_assigns_instead_of_adding() {
    // Pins the dfdx 0.13 behaviour that `nn::kernels::composed::rope` and `chunk` work around: a slice's backward
    // overwrites the gradient that ops recorded *after* it wrote into the sliced region. The true
    // gradient of `x₀ + 3(x₀ + x₁)` is [4, 3]; dfdx's CPU kernel gives [1, 3]. If this test fails, dfdx
    // was fixed and the ordering comments can go.
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(vec![1.0f64, 2.0], (2usize,));
    let traced = x.leaky_trace();
    let first = traced.with_empty_tape().slice((0..1,));
    let loss = first.sum::<Rank0, _>() + (traced * 3.0).sum::<Rank0, _>();
    let grads = loss.backward();
    assert_eq!(grads.get(&x).as_vec(), vec![1.0, 3.0]);
}

/// `max |a − b| / max |b|` (norm-wise relative error).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Log-scores and the DWDSE gradient of `model` on a fixed corrupted batch, with the host kernels
/// and with the composed dfdx ops (`with_composed_ops`): `(score error, gradient error)`.
fn kernel_parity<E: Dtype>(model: &Transformer<E, Cpu>, b: usize, l: usize) -> (f64, f64)
where
    Cpu: crate::nn::kernels::Kernels<E>,
{
    use crate::graph::Absorbing;
    use crate::loss::{dwdse_loss, Dwdse};
    use crate::nn::kernels::with_composed_ops;
    use crate::nn::Grads;
    use crate::schedule::LogLinear;

    let graph = Absorbing::with_tokens(4).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let x0: Vec<usize> = (0..b * l).map(|_| rng.gen_range(0..4)).collect();
    let batch = Dwdse::default()
        .corrupt(&graph, &LogLinear::default(), &x0, b, l, &mut rng)
        .unwrap();
    let run = || {
        let s = model
            .log_scores_host(&batch.x_t, b, l, &batch.sigma_bar)
            .unwrap();
        let loss = dwdse_loss(model, &graph, &batch).unwrap();
        let g = Grads::collect(model.params(), &mut loss.backward()).unwrap();
        (s, g.flat_f64())
    };
    let (host, composed) = (run(), with_composed_ops(run));
    assert!(host.0.iter().all(|v| v.is_finite()));
    (rel_err(&host.0, &composed.0), rel_err(&host.1, &composed.1))
}

#[test]
fn cpu_kernels_match_composed_ops_on_scores_and_dwdse_gradient() {
    let dev = Cpu::default();
    let mut model = Transformer::<f64, Cpu>::new(micro(2, ScoreHead::Absorbing), &dev, 21).unwrap();
    perturb(model.params_mut(), 22, 0.5);
    let (scores, grads) = kernel_parity(&model, 4, 3);
    assert!(
        scores < 1e-12 && grads < 1e-12,
        "f64: {scores:e}, {grads:e}"
    );

    let config = TransformerConfig::tiny(5, 24, ScoreHead::Absorbing);
    let mut model = Transformer::<f32, Cpu>::new(config, &dev, 23).unwrap();
    // adaLN-Zero and the zero output layer start flat: move every weight (deterministically).
    let theta: Vec<f64> = (model.params().flat_f64().iter().enumerate())
        .map(|(i, t)| t + 0.1 * (0.7 * i as f64).sin())
        .collect();
    model.params_mut().set_flat_f64(&theta).unwrap();
    let (scores, grads) = kernel_parity(&model, 3, 24);
    assert!(scores < 1e-5 && grads < 1e-5, "f32: {scores:e}, {grads:e}");
}
