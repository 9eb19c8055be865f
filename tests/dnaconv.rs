//! The `dnaconv` backbone of the DRAKES/SEPO DNA enhancer models (issue 18, "Models in"): a tiny
//! checkpoint exported by `tools/export_dnaconv.py` (a re-implementation of the published module, 10
//! dilated conv layers, H = 16, L = 200) loads into sepo and reproduces the reference backbone logits
//! and concrete scores, computed by PyTorch in float64 from the same f32 weights, on 8 (tokens, σ̄)
//! inputs whose mask fraction runs from 0 to 1: to 1e-5 relative in f32, to 1e-9 in f64. MDLM's
//! "subs" log-probabilities at masked positions are the concrete scores shifted by log(e^σ̄ − 1).

use std::path::{Path, PathBuf};

use sepo::dfdx::prelude::TensorFromVec;
use sepo::nn::io::read_safetensors;
use sepo::prelude::*;
use sepo::score::dnaconv::{DnaConv, DnaConvConfig};

const MASK: usize = 4;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dnaconv")
}

struct Expected {
    tokens: Vec<usize>,
    sigma_bar: Vec<f64>,
    logits: Vec<f64>,
    subs: Vec<f64>,
    log_scores: Vec<f64>,
    batch: usize,
    len: usize,
}

fn expected() -> Expected {
    let (t, _) = read_safetensors(&fixture().join("expected.safetensors")).unwrap();
    let shape = &t["tokens"].shape;
    Expected {
        tokens: t["tokens"].values.iter().map(|&v| v as usize).collect(),
        sigma_bar: t["sigma_bar"].values.clone(),
        logits: t["logits"].values.clone(),
        subs: t["subs"].values.clone(),
        log_scores: t["log_scores"].values.clone(),
        batch: shape[0],
        len: shape[1],
    }
}

/// Largest `|got − want| / max(|want|, 1)`: relative where the value is away from zero, absolute
/// near it (a log-score of 0 is pinned exactly, and tiny logits carry no relative meaning).
fn worst_relative(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn check<E: Dtype>(tol: f64) -> (f64, f64)
where
    Cpu: Device<E>,
{
    let dev = Cpu::default();
    let model = DnaConv::<E, Cpu>::load(&fixture(), &dev).unwrap();
    assert_eq!(
        *model.config(),
        DnaConvConfig {
            vocab: 5,
            len: 200,
            hidden: 16,
            stacks: 2,
            time_conditioning: false,
        }
    );
    let e = expected();
    assert!(e.batch >= 8 && e.len == 200);
    let ids = dev.tensor_from_vec(e.tokens.clone(), (e.batch, e.len));
    let logits = sepo::nn::to_f64s(
        &model
            .logits_with(model.params(), &ids, &e.sigma_bar, NoneTape)
            .unwrap()
            .as_vec(),
    );
    let scores = model
        .log_scores_host(&e.tokens, e.batch, e.len, &e.sigma_bar)
        .unwrap();
    let (wl, ws) = (
        worst_relative(&logits, &e.logits),
        worst_relative(&scores, &e.log_scores),
    );
    assert!(wl <= tol, "logits: worst relative error {wl:.2e}");
    assert!(ws <= tol, "concrete scores: worst relative error {ws:.2e}");
    (wl, ws)
}

#[test]
fn the_exported_checkpoint_reproduces_the_reference_concrete_scores() {
    let (l32, s32) = check::<f32>(1e-5);
    let (l64, s64) = check::<f64>(1e-9);
    eprintln!(
        "worst relative error: f32 logits {l32:.2e}, scores {s32:.2e}; f64 logits {l64:.2e}, scores {s64:.2e}"
    );
}

/// The "subs" → concrete-score map, on the reference's own numbers: at a masked position
/// `log s_v = log p_θ(x₀ = v | x_t) − log(e^{σ̄} − 1)` for the four real tokens; MDLM's subs output
/// at an unmasked position is the carry-over (0 at the token, −10⁶ elsewhere).
#[test]
fn subs_log_probabilities_map_to_the_absorbing_concrete_score() {
    let e = expected();
    let n = 5;
    let (mut masked, mut clean) = (0, 0);
    for (i, &x) in e.tokens.iter().enumerate() {
        let row = i * n;
        let shift = e.sigma_bar[i / e.len].exp_m1().ln();
        if x == MASK {
            masked += 1;
            for v in 0..MASK {
                let want = e.subs[row + v] - shift;
                assert!((e.log_scores[row + v] - want).abs() < 1e-9 * want.abs().max(1.0));
            }
            assert_eq!(e.log_scores[row + MASK], 0.0);
        } else {
            clean += 1;
            for v in 0..n {
                let carry = if v == x { 0.0 } else { -1e6 };
                assert_eq!(e.subs[row + v], carry);
            }
        }
    }
    assert!(
        masked > 100 && clean > 100,
        "{masked} masked, {clean} clean"
    );
}

#[test]
fn save_then_load_is_bit_identical_and_bad_directories_are_typed_errors() {
    let dev = Cpu::default();
    let model = DnaConv::<f32, Cpu>::load(&fixture(), &dev).unwrap();
    let dir = std::env::temp_dir().join(format!("sepo-dnaconv-{}", std::process::id()));
    model.save(&dir).unwrap();
    let back = DnaConv::<f32, Cpu>::load(&dir, &dev).unwrap();
    let bits = |m: &DnaConv<f32, Cpu>| -> Vec<u32> {
        m.params()
            .to_host()
            .into_iter()
            .flat_map(|(_, _, v)| v)
            .map(f32::to_bits)
            .collect()
    };
    assert_eq!(bits(&model), bits(&back));
    assert_eq!(model.fourier(), back.fourier());

    // Another family in config.json.
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"dnaconv\"", "\"dit\""),
    )
    .unwrap();
    assert!(matches!(
        DnaConv::<f32, Cpu>::load(&dir, &dev),
        Err(sepo::Error::CheckpointMismatch { .. })
    ));
    // A config whose sizes disagree with the weights: a named tensor of the wrong shape.
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"hidden_dim\": 16", "\"hidden_dim\": 8"),
    )
    .unwrap();
    match DnaConv::<f32, Cpu>::load(&dir, &dev) {
        Err(sepo::Error::CheckpointMismatch { what, .. }) => assert!(what.contains("shape of")),
        other => panic!("{other:?}"),
    }
    // More stacks than the file holds: a missing tensor.
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"num_cnn_stacks\": 2", "\"num_cnn_stacks\": 3"),
    )
    .unwrap();
    match DnaConv::<f32, Cpu>::load(&dir, &dev) {
        Err(sepo::Error::CheckpointMismatch { what, .. }) => assert!(what.starts_with("tensor")),
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.join("config.json"), "{").unwrap();
    assert!(matches!(
        DnaConv::<f32, Cpu>::load(&dir, &dev),
        Err(sepo::Error::CorruptCheckpoint { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(
        DnaConv::<f32, Cpu>::load(&dir, &dev),
        Err(sepo::Error::Io { .. })
    ));
}

/// Bad input to the score model is a typed error: a token outside the 5 states, a length over 200.
#[test]
fn bad_input_is_a_typed_error() {
    let dev = Cpu::default();
    let model = DnaConv::<f32, Cpu>::load(&fixture(), &dev).unwrap();
    assert!(matches!(
        model.log_scores_host(&[0, 1, 5], 1, 3, &[0.5]),
        Err(sepo::Error::TokenOutOfVocab { token: 5, .. })
    ));
    assert!(matches!(
        model.log_scores_host(&vec![0; 201], 1, 201, &[0.5]),
        Err(sepo::Error::ShapeMismatch { .. })
    ));
}

mod conv {
    use rand::{Rng, SeedableRng};
    use sepo::dfdx::prelude::{PutTape, SumTo, TensorFromVec};
    use sepo::nn::gradcheck::{check_gradient, Objective};
    use sepo::nn::{Init, ParamStore};
    use sepo::prelude::*;
    use sepo::score::dnaconv::{Conv1d, DnaConv, DnaConvConfig};

    /// The convolution written as its defining sum, in f64 on the host:
    /// `y[b, l, o] = bias[o] + Σ_j Σ_c W[o, c, j]·x[b, l + (j − (K−1)/2)·d, c]`, zero outside.
    fn direct(
        w: &[f64],
        bias: &[f64],
        x: &[f64],
        (b, l, c, o, k, d): (usize, usize, usize, usize, usize, usize),
    ) -> Vec<f64> {
        let half = (k / 2) as isize;
        let mut y = vec![0.0; b * l * o];
        for s in 0..b {
            for p in 0..l {
                for oc in 0..o {
                    let mut acc = bias[oc];
                    for j in 0..k {
                        let q = p as isize + (j as isize - half) * d as isize;
                        if q < 0 || q >= l as isize {
                            continue;
                        }
                        for ic in 0..c {
                            acc += w[(oc * c + ic) * k + j] * x[(s * l + q as usize) * c + ic];
                        }
                    }
                    y[(s * l + p) * o + oc] = acc;
                }
            }
        }
        y
    }

    fn layer(store: &mut ParamStore<f64, Cpu>, c: usize, o: usize, k: usize, d: usize) -> Conv1d {
        Conv1d {
            weight: store
                .add(format!("w{k}_{d}"), &[o, c, k], Init::Normal { std: 1.0 })
                .unwrap(),
            bias: store
                .add(format!("b{k}_{d}"), &[o], Init::Normal { std: 1.0 })
                .unwrap(),
            c_in: c,
            c_out: o,
            kernel: k,
            dilation: d,
        }
    }

    #[test]
    fn the_im2col_convolution_is_the_defining_sum() {
        let dev = Cpu::default();
        for (k, d) in [(9, 1), (9, 4), (3, 5), (1, 1), (9, 64)] {
            let (b, l, c, o) = (2, 11, 3, 4);
            let mut store = ParamStore::<f64, Cpu>::new(&dev, 3);
            let conv = layer(&mut store, c, o, k, d);
            let x: Vec<f64> = (0..b * l * c)
                .map(|i| ((i * 7919) % 13) as f64 - 6.0)
                .collect();
            let y = conv
                .forward(&store, dev.tensor_from_vec(x.clone(), (b * l, c)), b, l)
                .unwrap();
            let w = store.vector(conv.weight).as_vec();
            let bias = store.vector(conv.bias).as_vec();
            let want = direct(&w, &bias, &x, (b, l, c, o, k, d));
            for (got, want) in y.as_vec().iter().zip(&want) {
                assert!((got - want).abs() < 1e-12, "k={k} d={d}: {got} vs {want}");
            }
        }
    }

    struct ConvNet {
        conv: Conv1d,
        x: Vec<f64>,
    }

    impl Objective for ConvNet {
        fn eval<T: Tape<f64, Cpu>>(
            &self,
            store: &ParamStore<f64, Cpu>,
            tape: T,
        ) -> sepo::dfdx::prelude::Tensor<sepo::dfdx::prelude::Rank0, f64, Cpu, T> {
            let x = store
                .device()
                .tensor_from_vec(self.x.clone(), (10, 2))
                .put_tape(tape);
            self.conv
                .forward(store, x, 2, 5)
                .unwrap()
                .tanh()
                .square()
                .sum()
        }
    }

    #[test]
    fn convolution_gradients_match_finite_differences() {
        let dev = Cpu::default();
        let mut store = ParamStore::<f64, Cpu>::new(&dev, 5);
        let conv = layer(&mut store, 2, 3, 3, 2);
        let x = (0..20).map(|i| (i as f64 * 0.37).sin()).collect();
        let worst = check_gradient(&mut store, &ConvNet { conv, x }, 1e-6);
        assert!(worst < 1e-6, "{worst}");
    }

    struct Net {
        model: DnaConv<f64, Cpu>,
    }

    impl Objective for Net {
        fn eval<T: Tape<f64, Cpu>>(
            &self,
            store: &ParamStore<f64, Cpu>,
            tape: T,
        ) -> sepo::dfdx::prelude::Tensor<sepo::dfdx::prelude::Rank0, f64, Cpu, T> {
            let ids = store
                .device()
                .tensor_from_vec(vec![0, 2, 1, 2, 0, 1, 2, 2, 0, 1, 1, 0], (2, 6));
            self.model
                .forward_with(store, &ids, &[0.3, 1.7], tape)
                .unwrap()
                .tanh()
                .sum()
        }
    }

    /// Every parameter of a micro `dnaconv` (time-conditioned, so the time path carries gradient too)
    /// gets the gradient central differences give.
    #[test]
    fn dnaconv_gradients_match_finite_differences() {
        let dev = Cpu::default();
        let config = DnaConvConfig {
            vocab: 3,
            len: 6,
            hidden: 2,
            stacks: 1,
            time_conditioning: true,
        };
        let model = DnaConv::<f64, Cpu>::new(config, &dev, 2).unwrap();
        let mut store = model.params().clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let flat: Vec<f64> = store
            .flat_f64()
            .iter()
            .map(|x| x + 0.5 * rng.gen_range(-1.0..1.0))
            .collect();
        store.set_flat_f64(&flat).unwrap();
        let worst = check_gradient(&mut store, &Net { model }, 1e-6);
        assert!(worst < 1e-5, "{worst}");
    }
}
