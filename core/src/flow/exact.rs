//! Test fixture (compiled for tests or with the `testing` feature). Dense ground truth on an enumerated space (docs/gradient_flow.md): the generator `Q_θ`, its
//! stationary law, the Onsager operator, KL and discrete Fisher information, the objective
//! `J = E_μ[r] − β·KL(μ‖p_ref)` and its gradient twice, by the closed-form IFT and by the fundamental
//! matrix. Everything is `O(|X|²)` memory and up to `O(|X|³)` time: test fixtures only.

use crate::error::{Error, Result};
use crate::flow::linalg::Dense;
use crate::flow::potential::{LogPotential, Space};
use crate::flow::rates::LocallyBalanced;

/// Consistent clean log-scores `log s(x)_{l,v} = φ(x^{l←v}) − φ(x)`, flat `[|X|, L, V]`.
pub fn log_score_table(space: Space, phi: &[f64]) -> Vec<f64> {
    let (l, v) = (space.seq_len, space.tokens);
    let mut out = vec![0.0; space.size() * l * v];
    for x in 0..space.size() {
        for p in 0..l {
            for t in 0..v {
                out[(x * l + p) * v + t] = phi[space.neighbour(x, p, t)] - phi[x];
            }
        }
    }
    out
}

/// The generator `Q(x, x^{l←v}) = λ·g(s(x)_{l,v})` (heat bath: `λ·c_l(v|x)`), diagonal
/// `Q(x, x) = −Σ_{y≠x} Q(x, y)`, from a log-score table `[|X|, L, V]`.
pub fn generator(
    space: Space,
    kind: LocallyBalanced,
    lambda: f64,
    log_scores: &[f64],
) -> Result<Dense> {
    let (l, v, n) = (space.seq_len, space.tokens, space.size());
    if log_scores.len() != n * l * v {
        return Err(Error::ShapeMismatch {
            op: "exact::generator",
            expected: vec![n, l, v],
            got: vec![log_scores.len()],
        });
    }
    crate::check::positive("lambda", lambda)?;
    let mut q = Dense::zeros(n);
    let mut rates = vec![0.0; v];
    for x in 0..n {
        let seq = space.sequence(x);
        for p in 0..l {
            kind.rates(
                &log_scores[(x * l + p) * v..(x * l + p + 1) * v],
                seq[p],
                &mut rates,
            );
            for (t, &r) in rates.iter().enumerate() {
                if t != seq[p] {
                    let y = space.neighbour(x, p, t);
                    *q.at_mut(x, y) += lambda * r;
                    *q.at_mut(x, x) -= lambda * r;
                }
            }
        }
    }
    Ok(q)
}

/// The stationary law `μQ = 0, Σμ = 1`, by solving `Qᵀμ = 0` with the last equation replaced by the
/// normalisation (unique for an irreducible `Q`).
pub fn stationary(q: &Dense) -> Result<Vec<f64>> {
    let n = q.n;
    let mut a = q.transpose();
    for j in 0..n {
        *a.at_mut(n - 1, j) = 1.0;
    }
    let mut b = vec![0.0; n];
    b[n - 1] = 1.0;
    a.solve(&b)
}

/// The logarithmic mean `Λ(a, b) = (a − b)/(log a − log b)`, `Λ(a, a) = a` (a second-order expansion
/// near the diagonal, relative error below 1e-12 there).
pub fn log_mean(a: f64, b: f64) -> f64 {
    let r = a / b - 1.0;
    if r.abs() < 1e-4 {
        // Λ(b(1+r), b) = b·r/ln(1+r) = b(1 + r/2 − r²/12 + r³/24 + …).
        b * (1.0 + r / 2.0 - r * r / 12.0 + r * r * r / 24.0)
    } else {
        (a - b) / (a.ln() - b.ln())
    }
}

/// The Onsager operator `(K(μ)ψ)(x) = Σ_y π(x)Q(x, y)·Λ(ρ(x), ρ(y))·(ψ(x) − ψ(y))`, `ρ = μ/π`.
pub fn onsager(q: &Dense, pi: &[f64], mu: &[f64], psi: &[f64]) -> Vec<f64> {
    let n = q.n;
    (0..n)
        .map(|x| {
            let rx = mu[x] / pi[x];
            (0..n)
                .filter(|&y| y != x && q.at(x, y) != 0.0)
                .map(|y| pi[x] * q.at(x, y) * log_mean(rx, mu[y] / pi[y]) * (psi[x] - psi[y]))
                .sum()
        })
        .collect()
}

/// `KL(μ‖π) = Σ μ log(μ/π)`.
pub fn kl(mu: &[f64], pi: &[f64]) -> f64 {
    mu.iter()
        .zip(pi)
        .filter(|(m, _)| **m > 0.0)
        .map(|(m, p)| m * (m / p).ln())
        .sum()
}

/// The discrete Fisher information `⟨log ρ, K(μ) log ρ⟩ = ½ Σ_{x,y} π(x)Q(x,y)(ρ(x) − ρ(y))(log ρ(x) −
/// log ρ(y))`, so that `dKL(μ_t‖π)/dt = −I(μ_t)` along `dμ/dt = μQ`.
pub fn fisher_information(q: &Dense, pi: &[f64], mu: &[f64]) -> f64 {
    let n = q.n;
    let mut s = 0.0;
    for x in 0..n {
        for y in 0..n {
            if y != x && q.at(x, y) != 0.0 {
                let (rx, ry) = (mu[x] / pi[x], mu[y] / pi[y]);
                s += pi[x] * q.at(x, y) * (rx - ry) * (rx.ln() - ry.ln());
            }
        }
    }
    0.5 * s
}

/// The uniformised kernel `P = I + Q/Λ` (a stochastic matrix when `Λ ≥ max_x −Q(x, x)`).
pub fn uniformised(q: &Dense, big_lambda: f64) -> Dense {
    let mut p = q.clone();
    for v in &mut p.a {
        *v /= big_lambda;
    }
    for i in 0..q.n {
        *p.at_mut(i, i) += 1.0;
    }
    p
}

/// The objective `J(μ) = Σ μ r − β Σ μ log(μ/p_ref)`.
pub fn objective(mu: &[f64], reward: &[f64], beta: f64, log_ref: &[f64]) -> f64 {
    mu.iter()
        .zip(reward)
        .zip(log_ref)
        .map(|((m, r), lr)| {
            m * r
                - if *m > 0.0 {
                    beta * m * (m.ln() - lr)
                } else {
                    0.0
                }
        })
        .sum()
}

/// `ρ(x) = r(x) − β·log(μ(x)/p_ref(x))`, the IFT advantage before centring.
pub fn advantage(mu: &[f64], reward: &[f64], beta: f64, log_ref: &[f64]) -> Vec<f64> {
    mu.iter()
        .zip(reward)
        .zip(log_ref)
        .map(|((m, r), lr)| r - beta * (m.ln() - lr))
        .collect()
}

/// The closed-form IFT gradient at a fixed point `μ*`:
/// `∇J = Cov_{x∼μ*}(ρ(x), ∂_θ φ_θ(x)) = Σ_x μ*(x)(ρ(x) − E ρ) ∂_θ φ_θ(x)`.
pub fn ift_gradient<P: LogPotential>(
    model: &P,
    theta: &[f64],
    mu: &[f64],
    reward: &[f64],
    beta: f64,
    log_ref: &[f64],
) -> Vec<f64> {
    let rho = advantage(mu, reward, beta, log_ref);
    let mean: f64 = mu.iter().zip(&rho).map(|(m, r)| m * r).sum();
    let mut g = vec![0.0; model.num_params()];
    for (x, (&m, &r)) in mu.iter().zip(&rho).enumerate() {
        let w = m * (r - mean);
        for (gi, fi) in g.iter_mut().zip(model.gradient(theta, x)) {
            *gi += w * fi;
        }
    }
    g
}

/// `J(θ)` at the fixed point of the chain `Q_θ` built from the model's consistent scores.
pub fn objective_at_fixed_point<P: LogPotential>(
    model: &P,
    theta: &[f64],
    kind: LocallyBalanced,
    reward: &[f64],
    beta: f64,
    log_ref: &[f64],
) -> Result<f64> {
    let space = model.space();
    let q = generator(
        space,
        kind,
        1.0,
        &log_score_table(space, &model.table(theta)),
    )?;
    Ok(objective(&stationary(&q)?, reward, beta, log_ref))
}

/// The stationarity IFT, for any irreducible `Q_θ`: `πQ = 0` gives `∂π = π(∂Q)Z` with the fundamental
/// matrix `Z = (1πᵀ − Q)⁻¹`, hence `∇_i J = Σ_x ∂_iπ(x) ρ(x) = π (∂_iQ) w` with `w = Zρ` (one dense
/// solve), `(π ∂Q w) = Σ_x π(x) Σ_{y≠x} ∂Q(x, y)(w(y) − w(x))`. `∂Q` comes from the rates' derivatives
/// and `∂ log s(x)_y = ∂φ(y) − ∂φ(x)`. The `+1` of `∂KL` drops because `Σ ∂π = 0`.
pub fn stationarity_ift_gradient<P: LogPotential>(
    model: &P,
    theta: &[f64],
    kind: LocallyBalanced,
    reward: &[f64],
    beta: f64,
    log_ref: &[f64],
) -> Result<Vec<f64>> {
    let space = model.space();
    let (l, v, n, np) = (
        space.seq_len,
        space.tokens,
        space.size(),
        model.num_params(),
    );
    let scores = log_score_table(space, &model.table(theta));
    let q = generator(space, kind, 1.0, &scores)?;
    let pi = stationary(&q)?;
    let rho = advantage(&pi, reward, beta, log_ref);
    let mut m = Dense::zeros(n);
    for x in 0..n {
        for (y, &p) in pi.iter().enumerate() {
            *m.at_mut(x, y) = p - q.at(x, y);
        }
    }
    let w = m.solve(&rho)?;
    let features: Vec<Vec<f64>> = (0..n).map(|x| model.gradient(theta, x)).collect();
    let mut grad = vec![0.0; np];
    let (mut d, mut dq) = (vec![0.0; v], vec![0.0; v]);
    for x in 0..n {
        let seq = space.sequence(x);
        for p in 0..l {
            let row = &scores[(x * l + p) * v..(x * l + p + 1) * v];
            let ys: Vec<usize> = (0..v).map(|t| space.neighbour(x, p, t)).collect();
            for (i, gi) in grad.iter_mut().enumerate() {
                for t in 0..v {
                    d[t] = features[ys[t]][i] - features[x][i];
                }
                kind.rate_derivatives(row, &d, seq[p], &mut dq);
                for t in (0..v).filter(|&t| t != seq[p]) {
                    *gi += pi[x] * dq[t] * (w[ys[t]] - w[x]);
                }
            }
        }
    }
    Ok(grad)
}

/// `log PL(x) = Σ_l log c_l(x_l | x)`, the pseudo-log-likelihood of every sequence under `φ`.
pub fn log_pseudo_likelihood(space: Space, phi: &[f64]) -> Vec<f64> {
    (0..space.size())
        .map(|x| {
            (0..space.seq_len)
                .map(|p| {
                    let lse = crate::weight::importance::log_sum_exp(
                        &(0..space.tokens)
                            .map(|t| phi[space.neighbour(x, p, t)])
                            .collect::<Vec<_>>(),
                    );
                    phi[x] - lse
                })
                .sum()
        })
        .collect()
}
