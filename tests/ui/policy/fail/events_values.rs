use sepo::prelude::*;

policy! {
    /// No event read.
    Zero {
        reward: sepo::reward::GcContent::default(),
        log_prob: Events(positions = 0),
    }

    /// Not a count.
    Fraction {
        reward: sepo::reward::GcContent::default(),
        log_prob: Events(positions = 2.5),
    }

    /// Not an option of `Events`.
    Misspelt {
        reward: sepo::reward::GcContent::default(),
        log_prob: Events(position = 8),
    }

    /// Not an estimator.
    Unknown {
        reward: sepo::reward::GcContent::default(),
        log_prob: Event(positions = 8),
    }
}

fn main() {}
