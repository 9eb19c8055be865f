use sepo::prelude::*;

policy! {
    Typos {
        reward: sepo::reward::GcContent::default(),
        iteratons: 100,
        learning_rate: 1e-4,
    }
}

fn main() {
    let _ = Typos::config(8);
}
