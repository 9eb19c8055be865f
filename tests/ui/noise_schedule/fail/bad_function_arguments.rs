use sepo::prelude::*;

noise_schedule! {
    pub RealPower = powi(t, 1.5) + t.powf() + ln(t, 2.0);
}

fn main() {}
