use sepo::prelude::*;

policy! {
    Typos {
        reward: sepo::reward::GcContent::default(),
        iteratons: 100,
        learning_rate: 1e-4,
        sede: 7,
        gard_clip: 1.0,
    }
}

fn main() {
    let _ = Typos::config(8);
}
