use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use super::*;
use crate::nn::gradcheck::check_gradient;
use crate::nn::AdamW;
use crate::score::testing::{perturb, WeightedScores};
use crate::score::{ScoreHead, Transformer, TransformerConfig};

/// dim 8, 2 heads, 2 layers, MLP 32 wide, L = 3, N = 5 (small enough for finite differences).
fn micro() -> TransformerConfig {
    TransformerConfig {
        vocab: 5,
        max_len: 3,
        dim: 8,
        heads: 2,
        layers: 2,
        cond_dim: 8,
        mlp_ratio: 4,
        freq_dim: 8,
        head: ScoreHead::Absorbing,
        learned_positions: false,
    }
}

/// A transformer moved off its zero init (adaLN-Zero and the zero output layer would hide the blocks).
fn base<E: Dtype>(config: TransformerConfig, seed: u64) -> Transformer<E, Cpu>
where
    Cpu: crate::nn::kernels::Kernels<E>,
{
    base_with(config, seed, 0.5)
}

/// [`base`] with `U(±scale)` noise.
fn base_with<E: Dtype>(config: TransformerConfig, seed: u64, scale: f64) -> Transformer<E, Cpu>
where
    Cpu: crate::nn::kernels::Kernels<E>,
{
    let mut m = Transformer::<f64, Cpu>::new(config, &Cpu::default(), seed).unwrap();
    perturb(m.params_mut(), seed + 1, scale);
    let values = m.params().flat_f64();
    let mut out = Transformer::<E, Cpu>::new(config, &Cpu::default(), seed).unwrap();
    out.params_mut().set_flat_f64(&values).unwrap();
    out
}

/// Random adapter values (B ≠ 0, so the adapters change the scores and every gradient is alive).
fn randomise<M: ScoreModel>(lora: &mut Lora<M>, seed: u64, scale: f64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let flat: Vec<f64> = (0..lora.trainable())
        .map(|_| scale * rng.gen_range(-1.0..1.0))
        .collect();
    lora.params_mut().set_flat_f64(&flat).unwrap();
}

const TOKENS: [usize; 9] = [0, 4, 2, 4, 4, 1, 3, 3, 0];
const SIGMA: [f64; 3] = [0.3, 1.2, 4.0];

/// `Σ_targets r·(d_in + d_out)` written out for the DiT: per block `qkv: D → 3D`, `out: D → D`,
/// `mlp.0: D → hD`, `mlp.2: hD → D`.
fn lora_arithmetic(c: &TransformerConfig, r: usize) -> usize {
    let (d, h) = (c.dim, c.mlp_ratio * c.dim);
    c.layers * r * ((d + 3 * d) + (d + d) + (d + h) + (h + d))
}

#[test]
fn trainable_count_and_optimiser_state_follow_the_arithmetic() {
    for (config, rank) in [
        (micro(), 1),
        (micro(), 3),
        (TransformerConfig::tiny(5, 32, ScoreHead::Absorbing), 4),
    ] {
        let base = Transformer::<f32, Cpu>::new(config, &Cpu::default(), 0).unwrap();
        let total = base.params().num_elements();
        let lora = Lora::new(base, LoraConfig::dit(rank, 8.0), 1).unwrap();
        let expected = lora_arithmetic(&config, rank);
        assert_eq!(lora.trainable(), expected, "{config:?}, r = {rank}");
        assert_eq!(lora.params().num_elements(), expected);
        assert_eq!(lora.frozen(), total);
        assert_eq!(lora.targets().len(), 4 * config.layers);
        // The optimiser's state is built from `params()` alone: two moments per trainable scalar.
        let state = AdamW::default().init(lora.params());
        let moments: usize = state.m.iter().chain(&state.v).map(|t| t.shape().0).sum();
        assert_eq!(moments, 2 * expected);
    }
    // D = 64, hidden 256, 2 blocks, r = 4: 2·4·(256 + 128 + 320 + 320) = 8192.
    assert_eq!(
        lora_arithmetic(&TransformerConfig::tiny(5, 32, ScoreHead::Absorbing), 4),
        8192
    );
}

#[test]
fn freezing_trains_exactly_the_named_subset() {
    let base = Transformer::<f32, Cpu>::new(micro(), &Cpu::default(), 0).unwrap();
    let c = micro();
    let lora = Lora::freeze_all_but(base, &DIT_SIGMA_PATH).unwrap();
    // σ map: f·c + c + c·c + c; per block adaLN c·6D + 6D; final adaLN c·2D + 2D.
    let (d, cd, f) = (c.dim, c.cond_dim, c.freq_dim);
    let expected =
        (f * cd + cd + cd * cd + cd) + c.layers * (cd * 6 * d + 6 * d) + (cd * 2 * d + 2 * d);
    assert_eq!(lora.trainable(), expected);
    let state = AdamW::default().init(lora.params());
    let moments: usize = state.m.iter().chain(&state.v).map(|t| t.shape().0).sum();
    assert_eq!(moments, 2 * expected);
    // The trained copies start at the base values, so the wrapped model scores as the base does.
    let plain = Transformer::<f32, Cpu>::new(micro(), &Cpu::default(), 0).unwrap();
    assert_eq!(
        lora.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap(),
        plain.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap()
    );
}

#[test]
fn fresh_adapters_leave_the_scores_unchanged() {
    let plain = base::<f32>(micro(), 3);
    let before = plain.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap();
    let lora = Lora::new(base::<f32>(micro(), 3), LoraConfig::dit(2, 4.0), 5).unwrap();
    // B = 0: W + (α/r)·A·0 = W exactly.
    assert_eq!(lora.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap(), before);
}

fn merged_gap<E: Dtype>() -> (f64, f64)
where
    Cpu: crate::nn::kernels::Kernels<E>,
{
    // Weights of the size a trained network has (±0.2 beside the N(0, 1/d_in) init), so that the
    // comparison measures the rounding of W', not the gain of an arbitrarily perturbed network.
    let mut lora = Lora::new(base_with::<E>(micro(), 3, 0.2), LoraConfig::dit(2, 4.0), 5).unwrap();
    randomise(&mut lora, 9, 0.4);
    let adapted = lora.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap();
    let unadapted = base_with::<E>(micro(), 3, 0.2)
        .log_scores_host(&TOKENS, 3, 3, &SIGMA)
        .unwrap();
    let merged = lora.merged().unwrap();
    let folded = merged.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap();
    // Relative to the entry's size (`max(|b|, 1)`), as the importer tests compare: an f32 log-score
    // of size 10 carries rounding of 10·2⁻²⁴ ≈ 6e-7 whatever the weights.
    let gap = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f64::max)
    };
    eprintln!(
        "largest |log s| = {:.2}",
        adapted.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    );
    (gap(&adapted, &folded), gap(&adapted, &unadapted))
}

#[test]
fn merged_and_unmerged_adapters_give_the_same_scores() {
    // Unmerged: W' = W + (α/r)·A B as a tensor op in the element type, inside every forward. Merged:
    // W' summed on the host in f64 and rounded once. The two differ by rounding only.
    let (gap32, moved32) = merged_gap::<f32>();
    let (gap64, moved64) = merged_gap::<f64>();
    // The adapters do move the scores (so equality is not vacuous).
    assert!(moved32 > 1e-2 && moved64 > 1e-2, "{moved32} {moved64}");
    eprintln!("merged vs unmerged, relative: f32 {gap32:.1e}, f64 {gap64:.1e}");
    assert!(gap32 <= 1e-6, "f32: {gap32:e}");
    assert!(gap64 <= 1e-12, "f64: {gap64:e}");
}

#[test]
fn adapter_gradients_match_finite_differences() {
    for config in [
        LoraConfig::dit(2, 4.0),
        LoraConfig {
            train: vec!["output_layer.adaLN_modulation.bias".into()],
            ..LoraConfig::dit(1, 1.0)
        },
    ] {
        let mut lora = Lora::new(base::<f64>(micro(), 3), config.clone(), 5).unwrap();
        randomise(&mut lora, 11, 0.3);
        let mut store = lora.params().clone();
        let f = WeightedScores {
            model: lora,
            tokens: TOKENS.to_vec(),
            sigma: SIGMA.to_vec(),
        };
        let err = check_gradient(&mut store, &f, 1e-6);
        assert!(err < 1e-6, "{config:?}: relative error {err:e}");
    }
}

#[test]
fn adapters_round_trip_through_a_file() {
    let mut lora = Lora::new(base::<f32>(micro(), 3), LoraConfig::dit(2, 4.0), 5).unwrap();
    randomise(&mut lora, 9, 0.4);
    let dir = std::env::temp_dir().join(format!("sepo-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("adapters.safetensors");
    lora.save_adapters(&path).unwrap();
    // The file holds the adapters alone: 2·4·(32 + 16 + 40 + 40) f32 values plus a header.
    let bytes = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(bytes >= 4 * lora.trainable() && bytes < 4 * lora.trainable() + 8192);
    let back = Lora::load_adapters(base::<f32>(micro(), 3), &path).unwrap();
    assert_eq!(back.config(), lora.config());
    assert_eq!(back.params().flat_f64(), lora.params().flat_f64());
    assert_eq!(
        back.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap(),
        lora.log_scores_host(&TOKENS, 3, 3, &SIGMA).unwrap()
    );
    // A base whose layout differs is refused with a typed error, as is a file that is not adapters.
    let other = TransformerConfig {
        dim: 12,
        heads: 2,
        ..micro()
    };
    assert!(Lora::load_adapters(base::<f32>(other, 3), &path).is_err());
    let plain = dir.join("plain.safetensors");
    base::<f32>(micro(), 3)
        .params()
        .save(&plain, &Default::default())
        .unwrap();
    assert!(matches!(
        Lora::load_adapters(base::<f32>(micro(), 3), &plain),
        Err(Error::CorruptCheckpoint { .. })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_configurations_are_typed_errors() {
    let make = || Transformer::<f32, Cpu>::new(micro(), &Cpu::default(), 0).unwrap();
    let bad = [
        LoraConfig::dit(0, 1.0),
        LoraConfig::dit(2, f64::NAN),
        LoraConfig {
            targets: vec!["blocks.*.attn_qvk.weight".into()],
            ..LoraConfig::dit(2, 1.0)
        },
        // A vector is not a matrix.
        LoraConfig {
            targets: vec!["blocks.0.norm1.weight".into()],
            ..LoraConfig::dit(2, 1.0)
        },
        // Adapted and trained at once.
        LoraConfig {
            train: vec!["blocks.0.attn_out.weight".into()],
            ..LoraConfig::dit(2, 1.0)
        },
        LoraConfig {
            targets: vec![],
            ..LoraConfig::dit(2, 1.0)
        },
    ];
    for config in bad {
        assert!(
            matches!(
                Lora::new(make(), config.clone(), 0),
                Err(Error::InvalidParameter { .. })
            ),
            "{config:?}"
        );
    }
}
