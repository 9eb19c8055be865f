use sepo::prelude::*;

// Literal values get the core's run-time range checks at compile time, each at the literal.
policy! {
    Optimiser {
        reward: sepo::reward::GcContent::default(),
        optimizer: Adam(lr = -1e-3, beta2 = 1.0),
    }

    Schedule {
        reward: sepo::reward::GcContent::default(),
        schedule: LogLinear(eps = 2.0),
        sampler: Tweedie(steps = 0),
    }

    Sampler {
        reward: sepo::reward::GcContent::default(),
        schedule: Geometric(sigma_min = 1.0, sigma_max = 0.5),
        sampler: Euler(eps = 1.5),
        log_prob: ConcreteScore(t0 = 1.5, weights = Snis(draws = 0)),
    }
}

fn main() {}
