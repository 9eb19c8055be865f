use sepo::prelude::*;

#[reward]
async fn remote_score(seq: &[usize]) -> f64 {
    seq.len() as f64
}

fn main() {
    // The type is still generated (as a stub), so uses of it add no errors.
    let _reward = 0.5 * RemoteScore;
}
