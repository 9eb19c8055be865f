use sepo::prelude::*;

policy! {
    NoCheckpoint {
        model: Transformer,
        reward: sepo::reward::GcContent::default(),
    }
    OtherModel {
        model: Gpt2(checkpoint = "runs/gpt"),
        reward: sepo::reward::GcContent::default(),
    }
}

fn main() {}
