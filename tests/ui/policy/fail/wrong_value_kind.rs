use sepo::prelude::*;

policy! {
    Wrong {
        graph: 3,
        sampler: "tweedie",
        reward: sepo::reward::GcContent::default(),
        kl: -0.1,
        progress: 1,
        batch: 0,
        epochs: 2.5,
        optimizer: Adam(lr = "fast"),
        log_prob: ConcreteScore(weights = Conditonal),
    }
}

fn main() {}
