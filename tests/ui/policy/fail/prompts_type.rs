use sepo::prelude::*;

policy! {
    Flat {
        reward: sepo::reward::GcContent::default(),
        prompts: vec![0, 1, 2],
    }
}

fn main() {}
