use sepo::prelude::*;

// Leave-one-out subtracts the mean of the other draws of a group: groups of 1 have none.
policy! {
    Lonely {
        reward: sepo::reward::GcContent::default(),
        estimator: reinforce(baseline = leave_one_out),
        group_size: 1,
    }

    OwnGroup {
        reward: sepo::reward::GcContent::default(),
        estimator: ppo(baseline = leave_one_out, group = 1),
    }
}

fn main() {}
