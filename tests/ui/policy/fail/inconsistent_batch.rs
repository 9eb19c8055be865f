use sepo::prelude::*;

policy! {
    Uneven {
        reward: sepo::reward::GcContent::default(),
        batch: 60,
        group_size: 8,
    }
    FirstHittingUniform {
        graph: Uniform,
        sampler: FirstHitting,
        reward: sepo::reward::GcContent::default(),
    }
}

fn main() {}
