use sepo::prelude::*;

estimator! {
    Bad = 0.5 * ppo(clip = 1.5, clp = 0.1) + 0.5 * grpo(group = 0, clip = 0.1, clip = 0.2);
    Baseline = reinforce(baseline = leave_on_out, clip = 0.2);
}

fn main() {}
