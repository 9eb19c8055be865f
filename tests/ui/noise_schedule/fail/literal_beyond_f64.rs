use sepo::prelude::*;

noise_schedule! {
    // `1e400` is infinite in f64: an error at the literal (the macro used to panic).
    pub Huge = 1e400 * t;
}

fn main() {}
