use sepo::prelude::*;

estimator! {
    /// The example.
    pub Mixed = 0.8 * grpo(group = 16, clip = 0.2) + 0.2 * reinforce(baseline = leave_one_out);
    /// A lone component has weight 1; options have defaults.
    Plain = grpo;
    Three = 0.5 * ppo(baseline = mean, clip = 0.1) + 0.3 * reinforce + grpo(delta = 1e-6) * 0.2;
}

fn main() {
    let mixed = Mixture::of(&Mixed).unwrap();
    assert_eq!(mixed.components[0].group, Some(16));
    assert_eq!(Mixture::from(Plain), Mixture::grpo(0.2));
    assert_eq!(Mixture::of(&Three).unwrap().components.len(), 3);
}
