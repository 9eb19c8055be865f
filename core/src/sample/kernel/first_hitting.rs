//! The first-hitting step rule (absorbing graphs): at the position an event unmasks, the clean
//! conditional `P(y) = s_y / Σ_{y' real} s_{y'}` over real tokens; every other position stays. The
//! choice of the position itself, uniform among the `n_b` masked free positions, adds `−ln n_b`.

use dfdx::prelude::*;

use super::{constant, one_hot_where, StepProbs};
use crate::error::Result;
use crate::graph::Graph;
use crate::sample::trajectory::Step;
use crate::score::LogScores;

/// Log-weight given to the entries that are not drawn from before the exp in [`probs`] (finite, so that
/// the backward pass stays finite).
const OFF: f64 = 1e9;

/// First-hitting transition probabilities: at the chosen position of each sequence,
/// `P(y) = s_y / Σ_{y' real} s_{y'}` over real tokens (mask excluded); every other position stays.
pub(crate) fn probs<E, D, G, T>(
    graph: &G,
    log_scores: LogScores<E, D, T>,
    step: &Step,
) -> Result<StepProbs<E, D, T>>
where
    E: Dtype,
    D: Device<E>,
    G: Graph,
    T: Tape<E, D>,
{
    let shape = *log_scores.shape();
    let (_, l, n) = shape;
    let dev = log_scores.device().clone();
    let chosen = |i: usize| step.position[i / l] == Some(i % l);
    let mut select = vec![0.0; step.before.len() * n];
    for i in (0..step.before.len()).filter(|&i| chosen(i)) {
        for y in (0..n).filter(|&y| Some(y) != graph.mask()) {
            select[i * n + y] = 1.0;
        }
    }
    // Only the selected log-scores reach the exp: the others get a large finite negative value
    // (`−OFF`), and every row is shifted by its maximum (a constant: `P` is invariant to it). The
    // model's scores at positions that stay are unconstrained and were exponentiated before being
    // multiplied by 0: above ~88.7 in f32 that is `∞·0 = NaN`; and at a small `σ̄` the chosen
    // position's own scores (shifted by `−log(e^{σ̄} − 1)`) can overflow as well.
    let off: Vec<f64> = select.iter().map(|s| (s - 1.0) * OFF).collect();
    let select = constant::<E, D, _>(&dev, &select, shape)?;
    let off = constant::<E, D, _>(&dev, &off, shape)?;
    let stay = constant::<E, D, _>(&dev, &one_hot_where(&step.before, n, |i| !chosen(i)), shape)?;
    let z = log_scores * select.clone() + off;
    let top = z
        .retaped::<NoneTape>()
        .max::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    let weight = (z - top).exp() * select + stay;
    let norm = weight
        .with_empty_tape()
        .sum::<_, Axis<2>>()
        .broadcast_like::<_, Axis<2>>(&shape);
    Ok(weight / norm)
}

/// `−ln n_b` per sequence for the uniform choice of the unmasked position among the `n_b` free masked
/// positions of `step.before` (0 for idle sequences).
pub(crate) fn choice_log_prob<G: Graph>(graph: &G, step: &Step) -> Vec<f64> {
    let l = step.seq_len;
    (0..step.batch)
        .map(|b| {
            if step.position[b].is_none() {
                return 0.0;
            }
            let n = (b * l..(b + 1) * l)
                .filter(|&i| Some(step.before[i]) == graph.mask() && !step.fixed[i])
                .count();
            -(n.max(1) as f64).ln()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Absorbing;
    use crate::sample::StepKind;

    /// Large log-scores in f32 (the model's outputs are unconstrained at positions that stay, and
    /// shifted by `−log(e^{σ̄} − 1)` at the chosen one): `P` is still the closed-form softmax over the
    /// real tokens at the chosen position and one-hot elsewhere, and `∇ log P(y)` with respect to the
    /// chosen position's log-scores is `e_y − P`. Before the exp was restricted to the drawn entries,
    /// `e^{95}·0` made the staying position NaN (the 4^4 fine-tuning run of issue #14 died of it).
    #[test]
    fn large_log_scores_give_finite_probabilities_and_gradients() {
        let graph = Absorbing::with_tokens(2).unwrap(); // tokens 0, 1; mask 2
        let step = Step {
            kind: StepKind::FirstHitting,
            batch: 1,
            seq_len: 2,
            t: vec![1e-30],
            t_next: vec![1e-31],
            sigma_bar: vec![1e-30],
            sigma_bar_next: vec![1e-31],
            rate: vec![1.0],
            before: vec![2, 0],
            after: vec![1, 0],
            fixed: vec![false; 2],
            position: vec![Some(0)],
            log_prob: vec![0.0],
        };
        let dev = Cpu::default();
        // Chosen (masked) position: [100, 101, mask]; staying position (token 0): [0, 95, mask].
        let raw = [100.0f32, 101.0, -1e9, 0.0, 95.0, -1e9];
        let ls = dev.tensor_from_vec(raw.to_vec(), (1, 2, 3)).leaky_trace();
        let p = probs(&graph, ls.with_empty_tape(), &step).unwrap();
        let host = p.as_vec();
        let p1 = 1.0 / (1.0 + (-1.0f64).exp());
        let expect = [1.0 - p1, p1, 0.0, 1.0, 0.0, 0.0];
        for (i, (&got, want)) in host.iter().zip(expect).enumerate() {
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "P[{i}] = {got}, expected {want}"
            );
        }
        let log_p = taken_log_prob_of(p, &step);
        let g = log_p.backward().get(&ls).as_vec();
        let expect = [-(1.0 - p1), 1.0 - p1, 0.0, 0.0, 0.0, 0.0];
        for (i, (&got, want)) in g.iter().zip(expect).enumerate() {
            assert!(
                (f64::from(got) - want).abs() < 1e-6,
                "∂log P/∂ls[{i}] = {got}, expected {want}"
            );
        }
    }

    /// `Σ_l ln P[l, after_l]` of the single sequence, on `p`'s tape.
    fn taken_log_prob_of(
        p: StepProbs<f32, Cpu, OwnedTape<f32, Cpu>>,
        step: &Step,
    ) -> Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>> {
        let dev = Cpu::default();
        let ids = dev.tensor_from_vec(step.after.clone(), (1, 2));
        p.select(ids).ln().sum::<Rank0, _>()
    }
}
