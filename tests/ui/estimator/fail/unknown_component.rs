use sepo::prelude::*;

estimator! {
    Typo = reinforc(baseline = mean);
    Later = 0.5 * grpo + 0.5 * snis(draws = 2);
}

fn main() {
    let _ = Mixture::of(&Typo);
}
