//! TRL-named metrics of a round (issue 17, item 4): `clip_ratio/low_mean` and `/high_mean` split
//! `clip_ratio/region_mean`, and a reward that is a sum of named terms reports
//! `rewards/<term>/mean` and `/std` per term, whose means add up to the round's `reward`.

use sepo::graph::Absorbing;
use sepo::prelude::*;
use sepo::reward::FnReward;
use sepo::train::Finetuner;

#[path = "support/tiny_run.rs"]
mod tiny_run;

#[test]
fn a_round_reports_clip_sides_and_reward_components() {
    let model = Mlp::<f32, Cpu>::new(
        MlpConfig::tiny(5, 3, ScoreHead::Absorbing),
        &Cpu::default(),
        1,
    )
    .unwrap();
    let zeros = FnReward::new("zeros", |s: &[usize]| {
        s.iter().filter(|&&t| t == 0).count() as f64
    });
    let reward = tiny_run::twos().scaled(2.0).plus(zeros);
    // The resume tests' configuration (2 epochs of 2 minibatches: later ones may leave the clip
    // region; the split itself is checked against a closed form in `loss::ppo_clip`).
    let config = tiny_run::config();
    let mut ft = Finetuner::new(
        model,
        Absorbing::with_tokens(4).unwrap(),
        LogLinear::default(),
        reward,
        config,
    )
    .unwrap();
    let history = ft.fit(3, false, None).unwrap();
    for m in &history {
        let json = serde_json::to_value(m).unwrap();
        let low = json["clip_ratio/low_mean"].as_f64().unwrap();
        let high = json["clip_ratio/high_mean"].as_f64().unwrap();
        let region = json["clip_ratio/region_mean"].as_f64().unwrap();
        assert!(
            (low + high - region).abs() < 1e-12,
            "{low} + {high} vs {region}"
        );
        let twos = json["rewards/2*twos/mean"].as_f64().unwrap();
        let zeros = json["rewards/zeros/mean"].as_f64().unwrap();
        assert!(
            (twos + zeros - m.reward).abs() < 1e-12,
            "{twos} + {zeros} vs {}",
            m.reward
        );
        assert!(json["rewards/2*twos/std"].as_f64().unwrap() >= 0.0);
        // Each sequence has 3 positions: 2·twos ∈ [0, 6], zeros ∈ [0, 3].
        assert!((0.0..=6.0).contains(&twos) && (0.0..=3.0).contains(&zeros));
    }
}
