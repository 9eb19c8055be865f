use sepo::prelude::*;

policy! {
    /// Options of the single loop's values, each checked at its span.
    Options {
        mode: SingleLoop,
        reward: sepo::reward::GcContent::default(),
        sampler: Flow(rates = Sqrt, step = 2, init = Tweedy),
        log_prob: Ift(h = Neighbor, t0 = 2.0, ratio = Exactly),
        lr_schedule: InvSqrt(scale = 0),
        batch: 1,
    }

    /// Unknown modes and decays, with "did you mean".
    Typos {
        mode: Singleloop,
        reward: sepo::reward::GcContent::default(),
        lr_schedule: Linaer,
    }

    /// Zero steps, and the other unbounded rates.
    Counts {
        mode: SingleLoop,
        reward: sepo::reward::GcContent::default(),
        sampler: Flow(steps = 0, rates = Corrector),
    }

    /// A first-hitting `init` on a uniform graph.
    Hitting {
        mode: SingleLoop,
        graph: Uniform,
        reward: sepo::reward::GcContent::default(),
        sampler: Flow(init = FirstHitting),
    }
}

fn main() {}
