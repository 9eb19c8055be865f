use sepo::prelude::*;
use sepo::reward::GcContent;

estimator! {
    Mixed = 0.8 * grpo(clip = 0.2) + 0.2 * reinforce(baseline = leave_one_out);
}

noise_schedule! {
    Cosine(eps: f64 = 1e-3) = -ln(cos(PI / 2.0 * (1.0 - eps) * t));
}

/// Every key.
#[reward(range = 0.0..=1.0)]
fn has_motif(seq: &[usize], #[param] motif: &[usize]) -> f64 {
    f64::from(u8::from(seq.windows(motif.len()).any(|w| w == motif)))
}

policy! {
    pub Full {
        model: Transformer(checkpoint = "runs/pretrain"),
        graph: Absorbing,
        schedule: Cosine(eps = 1e-2),
        sampler: Tweedie(steps = 128, eps = 1e-5, max_batch = 512),
        reward: GcContent::default(),
        eval_reward: 0.1 * HasMotif { motif: vec![1, 2, 2] },
        log_prob: ConcreteScore(weights = Snis(draws = 2), clean = Unmasked, t0 = 1e-4),
        estimator: Mixed,
        kl: 0.05,
        kl_mode: InReward,
        kl_last_steps: 8,
        optimizer: Adam(lr = 1e-4, weight_decay = 0.01),
        batch: 64,
        group_size: 16,
        iterations: 1_000,
        epochs: 2,
        minibatch: 32,
        seq_len: 32,
        seed: 7,
        metrics: "runs/policy/metrics.jsonl",
        checkpoint_dir: "runs/policy",
        progress: false,
    }

    /// Only the reward is required.
    Minimal {
        reward: GcContent::default(),
    }
}

fn main() {
    let full = Full::config(32).unwrap();
    assert_eq!((full.groups, full.group_size), (4, 16));
    assert_eq!(Minimal::config(8).unwrap(), FinetuneConfig::new(8));
    // Generic over the device: the constructors name `D`.
    let _build: fn(&Cpu) -> sepo::Result<_> = Full::build::<Cpu>;
}
