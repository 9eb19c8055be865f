use sepo::prelude::*;

policy! {
    /// Every two-loop key is refused in a single loop, at the key.
    Flow {
        mode: SingleLoop,
        reward: sepo::reward::GcContent::default(),
        estimator: grpo(clip = 0.2),
        epochs: 2,
        minibatch: 8,
        groups: 2,
        group_size: 4,
        kl_mode: Path,
        kl_last_steps: 4,
        eval_reward: sepo::reward::GcContent::default(),
        prompts: vec![vec![0]],
        allocation: Uniform,
    }
}

fn main() {}
