use sepo::prelude::*;

noise_schedule! {
    pub LogLinear(eps: f64 = 1e-3) = -ln(1.0 - (1.0 - epsilon) * t) + tau;
    pub Plain = std::f64::consts::PI * t;
}

fn main() {}
