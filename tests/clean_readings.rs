//! Every clean-end reading that an estimator or a metric takes from a pretrained absorbing network is a
//! proper ratio of the network's own per-position distribution (issue #14 §3).
//!
//! A reading `log s_{l,·}` of a clean `x` (0 at `x_l`) claims `s_{l,v} = q_l(v)/q_l(x_l)` for a
//! distribution `q_l` over the real tokens. Its implied conditionals `p̂_l(v) = s_{l,v}·q_l(x_l)` sum to 1
//! exactly when it is. `q_l` is read here from the network's raw logits (`Mlp::logits_with`, before the
//! score head): the softmax over the real tokens at position `l` of `x` with `l` masked for the masked
//! reads (the clean conditional `p_θ(v | x_{−l})` DWDSE trains), of `x` itself for `Unmasked`. The former
//! head read `Unmasked` as `q_l(v)/(e^{σ̄} − 1)`, whose implied sum at `t₀ = 1e-5` is about
//! `q_l(x_l)·(1 − q_l(x_l))·1e5`: far from 1.
//!
//! Tolerance 1e-5: the network runs in f32 (relative rounding 6e-8 per operation, a few dozen operations
//! per entry), well inside it.

use rand::SeedableRng;
use sepo::dfdx::prelude::TensorFromVec;
use sepo::graph::Absorbing;
use sepo::policy::{all_positions, clean_entropy, clean_log_scores, log_conditionals, CleanScores};
use sepo::prelude::*;
use sepo::sample::categorical;

const L: usize = 4;
const V: usize = 4;
const MASK: usize = V;
const N: usize = V + 1;
const TOL: f64 = 1e-5;

/// A correlated law over the 4^4 sequences (random logits, seed 7).
fn data_law() -> Vec<f64> {
    let dev = Cpu::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let logits: Vec<f64> = (0..V.pow(L as u32))
        .map(|_| {
            1.5 * rand_distr::Distribution::<f64>::sample(&rand_distr::StandardNormal, &mut rng)
        })
        .collect();
    Tabular::<f64, Cpu>::new(&Absorbing::with_tokens(V).unwrap(), L, logits, &dev)
        .unwrap()
        .probabilities()
}

fn decode(i: usize) -> Vec<usize> {
    (0..L).rev().map(|p| (i / V.pow(p as u32)) % V).collect()
}

fn draws(p: &[f64], n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| decode(categorical::draw(p, &mut rng)))
        .collect()
}

/// A tiny absorbing MLP pretrained with DWDSE for 400 steps of batch 128 (a few seconds).
fn pretrained() -> Mlp<f32, Cpu> {
    let corpus = Corpus::new(&draws(&data_law(), 20_000, 1), V).unwrap();
    let model = Mlp::new(
        MlpConfig::tiny(N, L, ScoreHead::Absorbing),
        &Cpu::default(),
        3,
    )
    .unwrap();
    let config = PretrainConfig {
        batch_size: 128,
        optimizer: AdamW::with_lr(3e-3),
        lr_schedule: LrSchedule::WarmupCosine {
            warmup: 50,
            total: 400,
            min_ratio: 0.1,
        },
        ..PretrainConfig::default()
    };
    let graph = Absorbing::with_tokens(V).unwrap();
    let mut trainer = Pretrainer::new(model, graph, LogLinear::default(), config).unwrap();
    trainer.fit(&corpus, 400, false, None).unwrap();
    trainer.model
}

/// `log q_l(·)` over the real tokens from the raw logits of `tokens [rows, L]`, `[rows·L·V]`.
fn own_log_q(model: &Mlp<f32, Cpu>, tokens: &[usize], sigma: f64) -> Vec<f64> {
    let rows = tokens.len() / L;
    let dev = Cpu::default();
    let ids = dev.tensor_from_vec(tokens.to_vec(), (rows, L));
    let logits = model
        .logits_with(model.params(), &ids, &vec![sigma; rows], NoneTape)
        .unwrap();
    let logits: Vec<f64> = logits.as_vec().iter().map(|&v| v as f64).collect();
    let mut out = Vec::with_capacity(rows * L * V);
    for row in logits.chunks(N) {
        let real = &row[..V];
        let max = real.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + real.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        out.extend(real.iter().map(|v| v - lse));
    }
    out
}

/// `log p_θ(· | x_{b,−p})` for every (b, p): the raw logits of `x_b` with `p` masked, `[B·L·V]`.
fn masked_log_q(model: &Mlp<f32, Cpu>, x: &[usize], sigma: f64) -> Vec<f64> {
    let batch = x.len() / L;
    let mut out = Vec::with_capacity(batch * L * V);
    for b in 0..batch {
        for p in 0..L {
            let mut t = x[b * L..(b + 1) * L].to_vec();
            t[p] = MASK;
            let q = own_log_q(model, &t, sigma);
            out.extend_from_slice(&q[p * V..(p + 1) * V]);
        }
    }
    out
}

/// Largest `|Σ_v p̂_l(v) − 1|` and largest `|p̂_l(v) − q_l(v)|` over the positions a reading covers
/// (`covered[i]`), with `p̂_l(v) = exp(log s_{l,v})·q_l(x_l)`.
fn implied_errors(
    log_s: &[f64],
    log_q: &[f64],
    x: &[usize],
    covered: impl Fn(usize) -> bool,
) -> (f64, f64, usize) {
    let (mut sum_err, mut entry_err, mut count) = (0.0f64, 0.0f64, 0);
    for (i, &xi) in x.iter().enumerate() {
        if !covered(i) {
            continue;
        }
        count += 1;
        let q = &log_q[i * V..(i + 1) * V];
        let s = &log_s[i * N..(i + 1) * N];
        assert_eq!(s[xi], 0.0, "the current token's ratio is 1");
        assert_eq!(s[MASK], 0.0, "the mask column is pinned");
        let q_own = q[xi].exp();
        let implied: Vec<f64> = (0..V).map(|v| s[v].exp() * q_own).collect();
        sum_err = sum_err.max((implied.iter().sum::<f64>() - 1.0).abs());
        for v in 0..V {
            entry_err = entry_err.max((implied[v] - q[v].exp()).abs());
        }
    }
    (sum_err, entry_err, count)
}

#[test]
fn clean_end_readings_of_a_pretrained_absorbing_network_are_proper_ratios() {
    let model = pretrained();
    let graph = Absorbing::with_tokens(V).unwrap();
    let sigma0 = LogLinear::default().total(1e-5);
    let batch = 16;
    let x: Vec<usize> = draws(&data_law(), batch, 99).concat();
    let masked_q = masked_log_q(&model, &x, sigma0);
    let host = |mode: CleanScores, seed: u64| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (ls, w) = clean_log_scores(
            &Policy::current(&model),
            &graph,
            Sequences::new(&x, batch).unwrap(),
            sigma0,
            mode,
            NoneTape,
            &mut rng,
        )
        .unwrap();
        let ls: Vec<f64> = ls.as_vec().iter().map(|&v| v as f64).collect();
        (ls, w)
    };

    // The PPO ratio's readings (and `Conditional` weights, which normalise them).
    let (ls, _) = host(CleanScores::Masked, 0);
    let (sum, entry, count) = implied_errors(&ls, &masked_q, &x, |_| true);
    eprintln!(
        "Masked: max |Σ p̂ − 1| = {sum:.2e}, max |p̂ − q| = {entry:.2e} over {count} positions"
    );
    assert!(sum < TOL && entry < TOL && count == batch * L);

    let (ls, w) = host(CleanScores::MaskedSubset { positions: 2 }, 1);
    let (sum, entry, count) = implied_errors(&ls, &masked_q, &x, |i| w[i] > 0.0);
    eprintln!("MaskedSubset(2): max |Σ p̂ − 1| = {sum:.2e}, max |p̂ − q| = {entry:.2e} over {count}");
    assert!(sum < TOL && entry < TOL && count == batch * 2);

    let unmasked_q = own_log_q(&model, &x, sigma0);
    let (ls, _) = host(CleanScores::Unmasked, 2);
    let (sum, entry, count) = implied_errors(&ls, &unmasked_q, &x, |_| true);
    eprintln!(
        "Unmasked: max |Σ p̂ − 1| = {sum:.2e}, max |p̂ − q| = {entry:.2e} over {count} positions"
    );
    assert!(sum < TOL && entry < TOL && count == batch * L);

    // The conditionals SNIS draws its proposal from (every position of every neighbour y) and reads at
    // its draws, the entropy's conditionals: `log_conditionals`, checked on x and on its neighbours.
    let mut ys = Vec::new();
    for b in 0..batch {
        for p in 0..L {
            for v in (0..V).filter(|&v| v != x[b * L + p]) {
                let mut y = x[b * L..(b + 1) * L].to_vec();
                y[p] = v;
                ys.extend(y);
            }
        }
    }
    for (name, seqs) in [("x", &x), ("neighbours", &ys)] {
        let rows = seqs.len() / L;
        let lc = log_conditionals(
            &model,
            model.params(),
            &graph,
            seqs,
            rows,
            &all_positions(rows, L),
            sigma0,
        )
        .unwrap();
        let truth = masked_log_q(&model, seqs, sigma0);
        let (mut sum, mut entry) = (0.0f64, 0.0f64);
        for i in 0..rows * L {
            let c = &lc[i * N..(i + 1) * N];
            assert_eq!(c[MASK], f64::NEG_INFINITY);
            sum = sum.max((c[..V].iter().map(|v| v.exp()).sum::<f64>() - 1.0).abs());
            for v in 0..V {
                entry = entry.max((c[v].exp() - truth[i * V + v].exp()).abs());
            }
        }
        eprintln!(
            "log_conditionals on {name}: max |Σ p − 1| = {sum:.2e}, max |p − q| = {entry:.2e}"
        );
        assert!(sum < TOL && entry < TOL);
    }

    // The entropy metric: the mean entropy of the masked-read clean conditionals.
    let h = clean_entropy(&model, model.params(), &graph, &x, batch, sigma0).unwrap();
    let expect = -masked_q.iter().map(|v| v.exp() * v).sum::<f64>() / (batch * L) as f64;
    eprintln!("entropy {h:.6} nats, masked conditionals {expect:.6}");
    assert!((h - expect).abs() < TOL, "{h} vs {expect}");
    // Pretraining taught the network something: its conditionals are far from uniform (ln 4 = 1.386).
    assert!(expect < 1.3, "entropy {expect}");
}
