use sepo::prelude::*;
use sepo::policy::Reweight;

estimator! {
    /// The example.
    pub Mixed = 0.8 * grpo(group = 16, clip = 0.2) + 0.2 * reinforce(baseline = leave_one_out);
    /// A lone component has weight 1; options have defaults.
    Plain = grpo;
    Three = 0.5 * ppo(baseline = mean, clip = 0.1) + 0.3 * reinforce + grpo(delta = 1e-6) * 0.2;
    /// The reweighting components, with and without options.
    Weighted = 0.5 * snis(temperature = 0.5, clip = 0.2) + 0.5 * control_variate(baseline = leave_one_out);
    Tilted = snis;
    Controlled = control_variate;
}

pub fn main() {
    let mixed = Mixture::of(&Mixed).unwrap();
    assert_eq!(mixed.components[0].group, Some(16));
    assert_eq!(Mixture::from(Plain), Mixture::grpo(0.2));
    assert_eq!(Mixture::of(&Three).unwrap().components.len(), 3);
    let weighted = Mixture::of(&Weighted).unwrap();
    assert_eq!(weighted.components[0].reweight, Reweight::Snis { temperature: 0.5 });
    assert_eq!(weighted.components[0].clip, Some(0.2));
    assert_eq!(weighted.components[1].reweight, Reweight::ControlVariate);
    assert_eq!(weighted.components[1].baseline, Baseline::LeaveOneOut);
    assert_eq!(Mixture::from(Tilted), Mixture::snis(1.0));
    assert_eq!(Mixture::from(Controlled), Mixture::control_variate(Baseline::Mean));
}
