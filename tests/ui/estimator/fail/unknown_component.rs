use sepo::prelude::*;

estimator! {
    Typo = reinforc(baseline = mean);
    Transposed = 0.5 * grpo + 0.5 * contorl_variate;
}

fn main() {
    let _ = Mixture::of(&Typo);
}
