"""DWDSE, the Tweedie grid sampler and one SEPO round, op for op with sepo (absorbing graph only).

Sources in sepo: core/src/loss/score_entropy.rs, core/src/schedule/loglinear.rs, core/src/graph/absorbing.rs,
core/src/sample/{grid,step,tweedie}.rs, core/src/policy/{concrete,neighbour,clean}.rs,
core/src/loss/ppo_clip.rs, core/src/weight/advantage.rs, core/src/train/finetune/{round,gradients}.rs.
Host-side constants are float64 as in sepo; tensors are float32.
"""

import copy
import math
import time

import torch

EPS_SCHEDULE = 1e-3  # LogLinear::default()
EPS_SAMPLER = 1e-5  # SamplerConfig::default().eps
FORWARD_TOKENS = 1 << 16  # score/mod.rs: rows per tape-free chunk = FORWARD_TOKENS / L
GRAD_TOKENS = 1 << 14  # policy/concrete.rs
ENTROPY_SAMPLES = 4  # train/finetune/gradients.rs, absorbing graph


def total(t):
    """Log-linear total noise sigma_bar(t) = -log(1 - (1 - eps) t)."""
    return -math.log1p(-(1.0 - EPS_SCHEDULE) * t)


def rate(t):
    return (1.0 - EPS_SCHEDULE) / (1.0 - (1.0 - EPS_SCHEDULE) * t)


# ---------------------------------------------------------------------------------------------------
# DWDSE


def bench_clean_tokens(b, l):
    """The bench's fixed clean sequences x0[i] = (7 i + i // 13) mod 4."""
    i = torch.arange(b * l)
    return ((i * 7 + i // 13) % 4).reshape(b, l)


def corrupt(x0, n, generator):
    """Stratified times t_i = eps + (1 - eps)((u + i/B) mod 1), sigma_bar(t), sigma(t); each token
    masked with probability 1 - e^(-sigma_bar)."""
    b = x0.shape[0]
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    t = [EPS_SCHEDULE + (1 - EPS_SCHEDULE) * ((u + i / b) % 1.0) for i in range(b)]
    sigma_bar = torch.tensor([total(x) for x in t], dtype=torch.float64)
    sigma_rate = torch.tensor([rate(x) for x in t], dtype=torch.float64)
    p_mask = -torch.expm1(-sigma_bar)[:, None]
    masked = torch.rand(x0.shape, generator=generator, dtype=torch.float64) < p_mask
    return {
        "x0": x0,
        "x_t": torch.where(masked, n - 1, x0),
        "sigma_bar": sigma_bar,
        "sigma_rate": sigma_rate,
    }


def dwdse_loss(model, batch):
    """Mean over the batch of sigma(t) * sum_{l, y} Q(y, x_t) [s_y - r_y log s_y + r_y (log r_y - 1)],
    with the absorbing graph's weights (1 for a real y at a masked position) and ratios
    r_y = [y = x0] e^(-sigma_bar) / (1 - e^(-sigma_bar)), laid out as [B, L, N] like sepo."""
    x_t, x0, sigma_bar = batch["x_t"], batch["x0"], batch["sigma_bar"]
    log_scores = model(x_t, sigma_bar)
    b, l, n = log_scores.shape
    masked = x_t == n - 1
    columns = torch.arange(n)
    weight = (masked[..., None] & (columns < n - 1)).to(torch.float64)
    r = (torch.exp(-sigma_bar) / -torch.expm1(-sigma_bar))[:, None, None]
    ratio = torch.where(columns == x0[..., None], r, 0.0) * weight
    constant = (ratio * (torch.log(torch.where(ratio > 0, ratio, 1.0)) - 1.0)).sum((1, 2))
    active = weight > 0
    log_s = torch.where(active, log_scores, 0.0)
    positive = (log_s.exp() * weight.float()).sum(2).sum(1)
    negative = (log_s * (weight * ratio).float()).sum(2).sum(1)
    per_seq = positive - negative + constant.float()
    return (per_seq * batch["sigma_rate"].float()).mean()


def train_step(model, batch, opt):
    """Forward, backward, global-norm clip 1.0, AdamW."""
    opt.zero_grad(set_to_none=True)
    loss = dwdse_loss(model, batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def adamw(model):
    """sepo's AdamW::with_lr(1e-4): betas (0.9, 0.999), eps 1e-8, no weight decay."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


# ---------------------------------------------------------------------------------------------------
# Sampler


def grid(steps):
    dt = (1.0 - EPS_SAMPLER) / steps
    return [EPS_SAMPLER if k == steps else 1.0 - k * dt for k in range(steps + 1)]


def step_probs(model, x, sigma_bar, dsigma, denoise):
    """Tweedie / denoising probabilities [B, L, N]: P(x -> y) ∝ relu(s~_y exp(dsigma Q)(y, x)) with the
    absorbing staggered score s~_y = e^dsigma s_y (real y), s~_mask = s_mask + (1 - e^dsigma) sum_real s;
    the mask column of the kernel dropped when denoising. One sigma_bar and dsigma for the whole batch."""
    b, l = x.shape
    log_scores = model(x, torch.full((b,), sigma_bar, dtype=torch.float64))
    n = log_scores.shape[-1]
    mask = n - 1
    real_col = torch.ones(n)
    real_col[mask] = 0.0
    scale = torch.full((n,), math.exp(dsigma))
    scale[mask] = 1.0
    mask_col = torch.zeros(n)
    mask_col[mask] = -math.expm1(dsigma)
    s = log_scores.exp()
    real_sum = (s * real_col).sum(-1, keepdim=True)
    staggered = s * scale + real_sum * mask_col
    # kernel[x, y] = exp(dsigma Q)(y, x) = p_dsigma(x | y): from a real y, stay e^-d or mask 1 - e^-d.
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for y in range(n):
        for xx in range(n):
            if denoise and y == mask:
                continue
            if y == mask:
                kernel[xx, y] = 1.0 if xx == mask else 0.0
            elif xx == y:
                kernel[xx, y] = math.exp(-dsigma)
            elif xx == mask:
                kernel[xx, y] = -math.expm1(-dsigma)
    weight = torch.relu(staggered * kernel.float()[x])
    return weight / weight.sum(-1, keepdim=True)


def draw(probs, x, generator):
    """Inverse-CDF draw per position in float64; positions that stay with probability 1 keep their token
    (sepo's step::take), and the taken transition's log-probability per sequence."""
    n = probs.shape[-1]
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, dtype=torch.float64)
    cdf = probs.double().cumsum(-1)
    drawn = (cdf < u).sum(-1).clamp(max=n - 1)
    stay = probs.gather(-1, x[..., None])[..., 0] == 1.0
    after = torch.where(stay, x, drawn)
    log_prob = probs.gather(-1, after[..., None])[..., 0].log().sum(1)
    return after, log_prob


@torch.no_grad()
def sample(model, b, l, steps, generator):
    """steps Tweedie steps on the grid t_k = 1 - k (1 - eps)/steps, then the denoising step at eps."""
    times = grid(steps)
    n = model.cfg.vocab
    x = torch.full((b, l), n - 1, dtype=torch.int64)
    for k in range(steps + 1):
        if k < steps:
            sb, sb_next, denoise = total(times[k]), total(times[k + 1]), False
        else:
            sb, sb_next, denoise = total(times[k]), 0.0, True
        probs = step_probs(model, x, sb, sb - sb_next, denoise)
        x, _ = draw(probs, x, generator)
    return x


# ---------------------------------------------------------------------------------------------------
# SEPO round


def motif_count(x, motif=(3, 0, 3, 0)):
    """Overlapping occurrences of the motif per sequence (MotifCount, per = 1)."""
    windows = x.unfold(1, len(motif), 1)
    return (windows == torch.tensor(motif)).all(-1).sum(-1).to(torch.float64)


def grpo(rewards, group_size, delta=1e-8):
    """(r - mean_g) / (unbiased std_g + delta) per contiguous group; 0 for a constant group."""
    g = rewards.reshape(-1, group_size)
    mean = g.mean(1, keepdim=True)
    std = g.std(1, unbiased=True, keepdim=True)
    constant = (g == g[:, :1]).all(1, keepdim=True)
    return torch.where(constant, 0.0, (g - mean) / (std + delta)).reshape(-1)


def conditional_log_weights(log_scores, x):
    """log c_l(v): log-softmax of clean log-scores over the real tokens, -inf at the mask and at v = x_l
    (neighbour.rs), float64."""
    ls = log_scores.double()
    n = ls.shape[-1]
    ls = ls.clone()
    ls[..., n - 1] = -math.inf
    out = torch.log_softmax(ls, dim=-1)
    return out.scatter(-1, x[..., None], -math.inf)


def surrogate_loss(model, old, x, adv, sigma0, clip=0.2):
    """ConcreteScore (Conditional weights, Unmasked clean scores) PPO-clip loss -J for one chunk:
    J = (1/B) sum_{b,l,v} w min(rho A, clip(rho) A), rho = (c_theta/c_old) e^(log s_old - log s_theta),
    w = c_theta (constants); as in sepo the minimum is resolved on the host and the loss is
    sum kappa e^(Delta) with Delta = log s_old - log s_theta taped."""
    b, l = x.shape
    sig = torch.full((b,), sigma0, dtype=torch.float64)
    ls_theta = model(x, sig)
    with torch.no_grad():
        ls_old = old(x, sig)
        lw_theta = conditional_log_weights(ls_theta, x)
        lw_old = conditional_log_weights(ls_old, x)
        finite = torch.isfinite(lw_theta) & torch.isfinite(lw_old)
        weight = torch.where(finite, lw_theta.exp(), 0.0)
        log_offset = torch.where(finite, lw_theta - lw_old, 0.0)
    delta = (-ls_theta + ls_old).reshape(b, -1)
    with torch.no_grad():
        d = delta.double()
        w, lo = weight.reshape(b, -1), log_offset.reshape(b, -1)
        a = adv[:, None]
        rho = (lo + d).exp()
        unclipped = rho * a
        clipped = rho.clamp(1 - clip, 1 + clip) * a
        active = ~(clipped < unclipped)
        coeff = torch.where(active, -w * a * lo.exp() / b, 0.0)
        value = -torch.where(active, w * unclipped, w * clipped).sum() / b
    return (delta.exp() * coeff.float()).sum(), value.item()


@torch.no_grad()
def clean_entropy(model, x, sigma0):
    """Mean entropy of the clean conditionals p(v | x_{-l}) over every position of x: one masked copy
    per (sequence, position), forwards in chunks of FORWARD_TOKENS / L rows (clean.rs)."""
    b, l = x.shape
    n = model.cfg.vocab
    rows = x.repeat_interleave(l, dim=0)
    pos = torch.arange(l).repeat(b)
    rows[torch.arange(b * l), pos] = n - 1
    chunk = max(1, FORWARD_TOKENS // l)
    h = 0.0
    for start in range(0, b * l, chunk):
        r = rows[start : start + chunk]
        p = pos[start : start + chunk]
        scores = model(r, torch.full((r.shape[0],), sigma0, dtype=torch.float64))
        read = scores[torch.arange(r.shape[0]), p].double()
        read[:, n - 1] = -math.inf
        log_p = torch.log_softmax(read, dim=-1)[:, : n - 1]
        h += -(log_p.exp() * log_p).sum().item()
    return h / (b * l)


class Round:
    """sepo's Finetuner::round with groups x group_size samples, `epochs` passes over minibatches,
    GRPO (eps 0.2), Conditional weights on Unmasked clean scores at t0 = 1e-5, clip 1.0, AdamW 1e-4,
    no KL, no entropy bonus; then the entropy metric on the first 4 samples."""

    def __init__(self, model, length, groups, group_size, minibatch, epochs, steps, seed=0):
        self.model, self.length = model, length
        self.old = copy.deepcopy(model)
        self.opt = adamw(model)
        self.groups, self.group_size = groups, group_size
        self.minibatch, self.epochs, self.steps = minibatch, epochs, steps
        self.generator = torch.Generator().manual_seed(seed)
        self.sigma0 = total(1e-5)
        self.sigma_entropy = total(1e-5)

    def run(self):
        parts = {}
        clock = time.perf_counter()
        self.old.load_state_dict(self.model.state_dict())  # θ_old snapshot
        batch = self.groups * self.group_size
        x = sample(self.old, batch, self.length, self.steps, self.generator)
        parts["sample"] = time.perf_counter() - clock
        clock = time.perf_counter()
        rewards = motif_count(x)
        parts["reward"] = time.perf_counter() - clock
        adv = grpo(rewards, self.group_size)
        clock = time.perf_counter()
        chunks = -(-batch // self.minibatch)
        per_chunk = max(1, min(GRAD_TOKENS // x.shape[1], self.minibatch))
        for _ in range(self.epochs):
            for c in torch.randperm(chunks, generator=self.generator).tolist():
                rows = slice(c * self.minibatch, min((c + 1) * self.minibatch, batch))
                xb, ab = x[rows], adv[rows]
                self.opt.zero_grad(set_to_none=True)
                # Chunks bounded by GRAD_TOKENS tokens, each loss scaled by its share (concrete.rs).
                for s in range(0, xb.shape[0], per_chunk):
                    share = min(per_chunk, xb.shape[0] - s) / xb.shape[0]
                    part = slice(s, s + per_chunk)
                    loss, _ = surrogate_loss(self.model, self.old, xb[part], ab[part], self.sigma0)
                    (loss * share).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.opt.step()
        parts["optimise"] = time.perf_counter() - clock
        clock = time.perf_counter()
        clean_entropy(self.model, x[:ENTROPY_SAMPLES], self.sigma_entropy)
        parts["rest"] = time.perf_counter() - clock
        return parts
