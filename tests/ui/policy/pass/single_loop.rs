use sepo::flow::LocallyBalanced;
use sepo::policy::{Ift, StateGradient};
use sepo::prelude::*;
use sepo::reward::GcContent;
use sepo::train::{LrSchedule, FlowRun, RatioMode, SingleLoopConfig};

noise_schedule! {
    Cosine(eps: f64 = 1e-3) = -ln(cos(PI / 2.0 * (1.0 - eps) * t));
}

policy! {
    /// Every key a single loop reads, every value spelt out.
    pub Full {
        mode: SingleLoop,
        model: Transformer(checkpoint = "runs/pretrain"),
        graph: Absorbing,
        schedule: Cosine(eps = 1e-2),
        sampler: Flow(rates = Barker, steps = 2, init = Euler(steps = 64, eps = 1e-4), max_batch = 256),
        reward: GcContent::default(),
        log_prob: Ift(h = Energy, clean = MaskedSubset(positions = 3), t0 = 1e-4, ratio = Exact),
        kl: 1,
        optimizer: Adam(lr = 3e-4, weight_decay = 0.01),
        lr_schedule: InvSqrt(scale = 50),
        grad_clip: 0.5,
        batch: 64,
        iterations: 200,
        seq_len: 32,
        seed: 7,
        metrics: "runs/flow/metrics.jsonl",
        progress: false,
    }

    /// Only the mode and the reward: every other value is the core's default.
    Minimal {
        mode: SingleLoop,
        reward: GcContent::default(),
    }

    /// The other values of each option.
    Others {
        mode: SingleLoop,
        sampler: Flow(rates = Metropolis, init = FirstHitting),
        log_prob: Ift(h = Conditional, clean = Unmasked, ratio = Tracked),
        reward: GcContent::default(),
        lr_schedule: Linear,
        iterations: 40,
        grad_clip: None,
    }

    /// `HeatBath` and `Masked` by name, a constant rate, neighbour weights, the path log-ratio on a
    /// subset.
    Named {
        mode: SingleLoop,
        sampler: Flow(rates = HeatBath, steps = 1, init = Tweedie(steps = 16)),
        log_prob: Ift(
            h = Neighbour(weights = Snis(draws = 3)),
            clean = Masked,
            ratio = PathSubset(positions = 2),
        ),
        reward: GcContent::default(),
        lr_schedule: Constant,
    }

    /// SEPO's neighbour weights with their default, the full path log-ratio.
    Neighbours {
        mode: SingleLoop,
        log_prob: Ift(h = Neighbour, ratio = Path),
        reward: GcContent::default(),
    }

    /// `mode: TwoLoop` is today's default, written out.
    TwoLoops {
        mode: TwoLoop,
        reward: GcContent::default(),
    }
}

pub fn main() {
    let full = Full::config(32).unwrap();
    assert_eq!(full.rates, LocallyBalanced::Barker);
    assert_eq!((full.steps_per_update, full.max_batch, full.seed), (2, 256, 7));
    assert_eq!(full.estimator.state_gradient, StateGradient::Energy);
    assert_eq!(full.estimator.clean, CleanScores::MaskedSubset { positions: 3 });
    // `t0` is a time: the estimator reads the schedule's σ̄ there.
    assert_eq!(full.estimator.sigma0, Full::schedule().total(1e-4));
    assert_eq!(Full::schedule(), Cosine { eps: 1e-2 });
    assert_eq!(full.ratio, RatioMode::Exact);
    assert_eq!(full.kl, 1.0);
    assert_eq!(full.optimizer, AdamW { lr: 3e-4, weight_decay: 0.01, ..AdamW::with_lr(1e-3) });
    assert_eq!(full.lr_schedule, LrSchedule::InvSqrt { scale: 50.0 });
    assert_eq!(full.grad_clip, Some(0.5));

    // The defaults are the core's, with `sigma0 = σ̄(1e-5)` under the default schedule.
    let minimal = Minimal::config(4).unwrap();
    let defaults = SingleLoopConfig {
        estimator: Ift { sigma0: LogLinear::default().total(1e-5), ..Ift::default() },
        ..SingleLoopConfig::default()
    };
    assert_eq!(minimal, defaults);

    let others = Others::config(4).unwrap();
    assert_eq!(others.rates, LocallyBalanced::Metropolis);
    assert_eq!(others.estimator.state_gradient, StateGradient::Conditional);
    assert_eq!(others.estimator.clean, CleanScores::Unmasked);
    assert_eq!(others.ratio, RatioMode::Tracked);
    assert_eq!(others.lr_schedule, LrSchedule::Linear { total: 40 });
    assert_eq!(others.grad_clip, None);
    let named = Named::config(4).unwrap();
    assert_eq!((named.rates, named.lr_schedule), (LocallyBalanced::HeatBath, LrSchedule::Constant));
    assert_eq!(named.estimator.clean, CleanScores::Masked);
    assert_eq!(named.ratio, RatioMode::PathSubset { positions: 2 });
    assert_eq!(
        named.estimator.state_gradient,
        StateGradient::Neighbour(NeighbourWeights::Snis { draws: 3 })
    );
    let neighbours = Neighbours::config(4).unwrap();
    assert_eq!(
        neighbours.estimator.state_gradient,
        StateGradient::Neighbour(NeighbourWeights::Conditional)
    );
    assert_eq!(neighbours.ratio, RatioMode::Path);
    assert_eq!(TwoLoops::config(8).unwrap(), FinetuneConfig::new(8));

    // `build_with` draws `batch` particles (default 32) with the `init` sampler; `fit` runs the updates.
    let model = Mlp::<f32, Cpu>::new(MlpConfig::tiny(5, 4, ScoreHead::Absorbing), &Cpu::default(), 0).unwrap();
    let mut run: FlowRun<Mlp<f32, Cpu>, Absorbing> = Others::build_with(model).unwrap();
    assert_eq!(run.single_loop.particles().len(), 32 * 4);
    run.options.rounds = 2;
    let history = run.fit().unwrap();
    assert_eq!(history.len(), 2);
    // Generic over the device: the constructors name `D`.
    type Run = FlowRun<Transformer<f32, Cpu>, Absorbing>;
    let _build: fn(&Cpu) -> sepo::Result<Run> = Full::build::<Cpu>;
}
