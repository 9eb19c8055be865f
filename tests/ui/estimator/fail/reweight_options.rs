use sepo::prelude::*;

estimator! {
    Frozen = snis(temperature = 0.0);
    Borrowed = control_variate(temperature = 1.0);
    Baselined = snis(baseline = mean, temperature = 2.0, temperature = 3.0);
    Unclipped = control_variate(clip = 1.0);
}

fn main() {}
