use sepo::prelude::*;

policy! {
    NoReward {
        graph: Absorbing,
        kl: 0.05,
    }
}

fn main() {
    let _ = NoReward::config(8);
}
