use sepo::prelude::*;

policy! {
    Scalar {
        reward: 3.0,
    }
}

fn main() {}
