use sepo::prelude::*;

// A literal beyond f64's range is an error at the literal (the macro used to panic on the whole
// invocation).
policy! {
    Huge {
        reward: sepo::reward::GcContent::default(),
        kl: 1e400,
        optimizer: Adam(lr = 1e400),
    }
}

fn main() {}
