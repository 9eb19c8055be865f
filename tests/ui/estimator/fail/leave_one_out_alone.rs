use sepo::prelude::*;

estimator! {
    // Leave-one-out in groups of one: no other draw to average.
    pub Lonely = reinforce(baseline = leave_one_out, group = 1);
}

fn main() {}
