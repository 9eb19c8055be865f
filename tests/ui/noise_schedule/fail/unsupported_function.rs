use sepo::prelude::*;

noise_schedule! {
    pub Hyperbolic(k: f64 = 1.0) = tanh(k * t) + t.abs() + ln1p(t);
}

fn main() {
    // The struct is still generated (as a stub), so uses of it add no errors.
    let _ = Hyperbolic::default().total(0.5);
}
