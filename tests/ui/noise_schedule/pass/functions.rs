// Every supported function, as a call and as a method, with `PI`, `E` and integer literals.
use sepo::prelude::*;

noise_schedule! {
    Calls(a: f64 = 2, b: f64 = -0.5) =
        exp(a * t) + ln(1.0 + t) + sqrt(1 + t) + sin(t) + cos(t) + tan(t / 2.0) + exp_m1(t) + ln_1p(t)
        + powi(1.0 + t, 3) + powf(E, b * t) - PI;
    Methods(a: f64 = 2, b: f64 = -0.5) =
        (a * t).exp() + (1.0 + t).ln() + (1 + t).sqrt() + t.sin() + t.cos() + (t / 2.0).tan() + t.exp_m1()
        + t.ln_1p() + (1.0 + t).powi(3) + E.powf(b * t) - PI;
    /// No parameters: a unit struct.
    pub Linear = t;
}

pub fn main() {
    for t in [0.0, 0.3, 1.0] {
        assert_eq!(Calls::default().total(t), Methods::default().total(t));
        assert_eq!(Calls::default().rate(t), Methods::default().rate(t));
    }
    assert_eq!(Linear.rate(0.5), 1.0);
}
