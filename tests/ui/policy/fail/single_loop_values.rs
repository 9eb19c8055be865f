use sepo::prelude::*;

policy! {
    /// Two-loop values in a single loop, at the value.
    Sampled {
        mode: SingleLoop,
        reward: sepo::reward::GcContent::default(),
        sampler: Tweedie(steps = 64),
        log_prob: ConcreteScore(weights = Conditional),
    }

    /// `Trajectory` too.
    Traced {
        mode: SingleLoop,
        reward: sepo::reward::GcContent::default(),
        log_prob: Trajectory,
    }

    /// Single-loop values in a two-loop policy, at the value.
    Flowing {
        reward: sepo::reward::GcContent::default(),
        sampler: Flow(steps = 2),
        log_prob: Ift(h = Energy),
    }

    /// And with the mode written out.
    Explicit {
        mode: TwoLoop,
        reward: sepo::reward::GcContent::default(),
        sampler: Flow,
    }
}

fn main() {}
