use sepo::prelude::*;

noise_schedule! {
    pub Shifted(t: f64 = 0.0, scale: f32 = 1.0, offset: f64, scale: f64 = 2.0) = scale * t + offset;
}

fn main() {}
