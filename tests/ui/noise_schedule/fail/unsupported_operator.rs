use sepo::prelude::*;

noise_schedule! {
    pub Power(k: f64 = 2.0) = t ^ 2 + t % k;
}

fn main() {}
