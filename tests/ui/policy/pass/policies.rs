use sepo::prelude::*;
use sepo::reward::GcContent;
use sepo::train::{Adaptive, Allocation, Sequential};

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
        lr_schedule: Warmup(warmup = 50),
        grad_clip: 0.5,
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

    /// Prompts with an adaptive allocation of 16 draws a round.
    Prompted {
        reward: GcContent::default(),
        prompts: vec![vec![0], vec![1, 2]],
        group_size: 4,
        allocation: Adaptive(budget = 16, cap = 8),
        lr_schedule: WarmupCosine(warmup = 10, total = 100),
        grad_clip: None,
        iterations: 1,
        epochs: 1,
        sampler: FirstHitting,
        progress: false,
    }

    /// The default sampler, by name.
    Named {
        reward: GcContent::default(),
        sampler: Tweedie,
    }

    /// Values from expressions: `grad_clip` takes an `f64` or an `Option<f64>`.
    Computed {
        reward: GcContent::default(),
        prompts: PROMPTS,
        grad_clip: CLIP,
        allocation: Sequential(chunk = 2),
    }
}

const PROMPTS: [Vec<usize>; 0] = [];
const CLIP: Option<f64> = Some(0.3);

pub fn main() {
    let full = Full::config(32).unwrap();
    assert_eq!((full.groups, full.group_size), (4, 16));
    assert_eq!(Minimal::config(8).unwrap(), FinetuneConfig::new(8));
    // Both modes' `schedule()`: the type's `Default` with the fields given.
    assert_eq!(Full::schedule(), Cosine { eps: 1e-2 });
    assert_eq!(Minimal::schedule(), LogLinear::default());
    // Naming the default sampler without options is the default sampler.
    assert_eq!(Named::config(8).unwrap().sampler, FinetuneConfig::new(8).sampler);
    assert_eq!(full.lr_schedule, LrSchedule::Warmup { warmup: 50 });
    assert_eq!(full.grad_clip, Some(0.5));
    let prompted = Prompted::config(4).unwrap();
    assert_eq!(
        prompted.allocation,
        Allocation::Adaptive(Adaptive { budget: 16, cap: 8, ..Adaptive::new(16) })
    );
    assert_eq!(prompted.grad_clip, None);
    assert_eq!(
        prompted.lr_schedule,
        LrSchedule::WarmupCosine { warmup: 10, total: 100, min_ratio: 0.0 }
    );
    let computed = Computed::config(4).unwrap();
    assert_eq!(computed.grad_clip, Some(0.3));
    assert_eq!(computed.allocation, Allocation::Sequential(Sequential::new(2, 16)));
    // `prompts` is wired to `with_prompts`: one group per prompt, then an adaptive round.
    let model = Mlp::<f32, Cpu>::new(MlpConfig::tiny(5, 4, ScoreHead::Absorbing), &Cpu::default(), 0).unwrap();
    let mut run = Prompted::build_with(model).unwrap();
    assert_eq!(run.finetuner.prompts(), vec![vec![0], vec![1, 2]]);
    assert_eq!(run.finetuner.config().groups, 2);
    let history = run.fit().unwrap();
    assert!(history[0].reward_calls <= 16);
    // An empty prompt list is a typed error when the run is built, not a panic.
    let model = Mlp::<f32, Cpu>::new(MlpConfig::tiny(5, 4, ScoreHead::Absorbing), &Cpu::default(), 0).unwrap();
    assert!(Computed::build_with(model).is_err());
    // Generic over the device: the constructors name `D`.
    let _build: fn(&Cpu) -> sepo::Result<_> = Full::build::<Cpu>;
}
