use sepo::prelude::*;

policy! {
    Schedules {
        reward: sepo::reward::GcContent::default(),
        lr_schedule: Warmup,
        grad_clip: 0.0,
    }

    Cosine {
        reward: sepo::reward::GcContent::default(),
        lr_schedule: WarmupCosine(total = 100, min_ratio = 1.5),
        grad_clip: "big",
    }

    Backwards {
        reward: sepo::reward::GcContent::default(),
        lr_schedule: WarmupCosine(warmup = 100, total = 50),
    }

    Budgets {
        reward: sepo::reward::GcContent::default(),
        prompts: vec![vec![0], vec![1]],
        groups: 2,
        allocation: Adaptive(budget = 0, chunk = 4),
    }

    NoPrompts {
        reward: sepo::reward::GcContent::default(),
        allocation: Neyman(budget = 64),
    }

    Typos {
        reward: sepo::reward::GcContent::default(),
        allocation: Adaptve(budget = 64),
        lr_schedule: Cosine,
    }
}

fn main() {}
