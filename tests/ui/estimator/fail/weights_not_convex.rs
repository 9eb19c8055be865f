use sepo::prelude::*;

estimator! {
    Short = 0.5 * grpo + 0.4 * reinforce;
    Negative = 1.2 * grpo + -0.2 * reinforce;
    Subtracted = grpo - 0.2 * reinforce;
    Variable = W * grpo;
    Unweighted = 0.5 * grpo + reinforce;
}

const W: f64 = 1.0;

fn main() {}
