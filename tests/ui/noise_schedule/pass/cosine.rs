// A schedule with a parameter: pub fields, `Default` from the defaults, serde, and σ = dσ̄/dt.
use sepo::prelude::*;

noise_schedule! {
    /// A cosine schedule.
    pub Cosine(
        /// Keeps σ̄(1) finite.
        eps: f64 = 1e-3,
    ) = -ln(cos(PI / 2.0 * (1.0 - eps) * t));
}

pub fn main() {
    let cosine = Cosine::default();
    assert_eq!(cosine, Cosine { eps: 1e-3 });
    let copy = cosine;
    assert_eq!(format!("{copy:?}"), "Cosine { eps: 0.001 }");
    let a = std::f64::consts::FRAC_PI_2 * (1.0 - cosine.eps);
    assert!((cosine.rate(0.5) - a * (a * 0.5).tan()).abs() < 1e-12);
    fn serde<T: sepo::__private::serde::Serialize + for<'de> sepo::__private::serde::Deserialize<'de>>() {}
    serde::<Cosine>();
}
