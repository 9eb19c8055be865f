"""sepo's SEDD-style diffusion transformer in eager PyTorch, op for op.

Mirrors core/src/score/transformer/ (mod.rs, cond.rs, block.rs) and core/src/score/head.rs:

    c = silu(W2 silu(W1 phi(sigma_bar) + b1) + b2)         phi: 256 (or freq_dim) sinusoids of sigma_bar
    x = E[tokens]
    per block (adaLN-Zero, SEDD's DDiTBlock):
        shift1, scale1, gate1, shift2, scale2, gate2 = W_ada c + b_ada
        h = LN1(x) * (1 + scale1) + shift1
        q, k, v = split(h W_qkv)                          head-major, RoPE (rotate-half) on q and k
        x = x + gate1 * (softmax(q k^T / sqrt(d_h)) v) W_o
        h = LN2(x) * (1 + scale2) + shift2
        x = x + gate2 * (gelu_tanh(h W1 + b1) W2 + b2)
    logits = (LN(x) * (1 + scale) + shift) W_out + b_out   final adaLN layer
    log s = head(logits)                                   sepo's absorbing head (below)

Facts carried over from SEDD's published model (Lou, Meng & Ermon 2024) that sepo also follows: layer
norms without bias, a scale only; GELU in its tanh form; no biases on the attention projections; rotary
embeddings with base 1e4 in the rotate-half layout, v left unrotated; the conditioning vector is the
sinusoidal embedding of the total noise itself (max period 1e4) through a two-layer SiLU MLP and an outer
SiLU; adaLN modulation and the output layer zero-initialised. Where sepo departs from SEDD the reference
follows sepo (the point is the same computation): the absorbing head normalises the real tokens with a
softmax (SEDD subtracts log(N - 1) instead) and clean positions read log q_v - log q_{x_l}; attention is
written out (SEDD calls flash-attention on GPU); no dropout. Parameter names are sepo's (and SEDD's);
sepo stores matrices [d_in, d_out], the transpose of torch's nn.Linear.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    """Sizes of the network (sepo's TransformerConfig) and of the workloads."""

    vocab: int
    dim: int
    heads: int
    layers: int
    cond_dim: int
    freq_dim: int
    batch: int
    len: int
    mlp_ratio: int = 4

    @property
    def head_dim(self):
        return self.dim // self.heads


# The side-by-side configurations (examples/side_by_side/mod.rs `shape`): vocabulary 4 + mask except
# SEDD-small's GPT-2 vocabulary + mask.
CONFIGS = {
    "tiny": Config(vocab=5, dim=64, heads=4, layers=2, cond_dim=64, freq_dim=64, batch=64, len=128),
    "dna": Config(vocab=5, dim=128, heads=4, layers=2, cond_dim=64, freq_dim=256, batch=64, len=200),
    "mid": Config(vocab=5, dim=384, heads=6, layers=6, cond_dim=128, freq_dim=256, batch=64, len=200),
    "sedd-small": Config(
        vocab=50258, dim=768, heads=12, layers=12, cond_dim=128, freq_dim=256, batch=8, len=128
    ),
}

MAX_PERIOD = 10_000.0
ROPE_BASE = 10_000.0


def sinusoidal_features(sigma_bar, dim):
    """[cos(t w_0..w_{h-1}), sin(t w_0..w_{h-1})], w_j = P^(-j/h), computed in float64 like sepo."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float64) / half)
    args = sigma_bar.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(torch.float32)


def log_expm1(x):
    """log(e^x - 1) per element (float64), accurate for small and large x (sepo's head.rs)."""
    x = x.to(torch.float64)
    return torch.where(x > 30.0, x + torch.log1p(-torch.exp(-x)), torch.log(torch.expm1(x)))


class Rope:
    """cos, sin tables [L, d_h], the angles p * base^(-2j/d_h) repeated over both halves."""

    def __init__(self, length, head_dim):
        half = head_dim // 2
        theta = ROPE_BASE ** (-2.0 * torch.arange(half, dtype=torch.float64) / head_dim)
        angles = torch.arange(length, dtype=torch.float64)[:, None] * theta[None]
        angles = torch.cat([angles, angles], dim=-1)
        self.cos = angles.cos().to(torch.float32)[None, :, None, :]
        self.sin = angles.sin().to(torch.float32)[None, :, None, :]

    def apply(self, x):
        """x [B, L, H, d_h] -> x cos + rotate_half(x) sin."""
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.cos + rotated * self.sin


def layer_norm(x, gamma):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-5) * gamma


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class Block(nn.Module):
    def __init__(self, dim, heads, cond_dim, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.Parameter(torch.ones(dim))
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = nn.Parameter(torch.ones(dim))
        self.mlp_in = nn.Linear(dim, hidden)
        self.mlp_out = nn.Linear(hidden, dim)
        self.ada = nn.Linear(cond_dim, 6 * dim)

    def forward(self, x, c, rope, sdpa):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=1)
        h = modulate(layer_norm(x, self.norm1), shift1, scale1)
        x = x + self.attn_out(self.attention(h, rope, sdpa)) * gate1[:, None]
        h = modulate(layer_norm(x, self.norm2), shift2, scale2)
        h = self.mlp_out(F.gelu(self.mlp_in(h), approximate="tanh"))
        return x + h * gate2[:, None]

    def attention(self, h, rope, sdpa):
        b, l, dim = h.shape
        head_dim = dim // self.heads
        q, k, v = self.attn_qkv(h).split(dim, dim=-1)
        split = (b, l, self.heads, head_dim)
        q = rope.apply(q.reshape(split))
        k = rope.apply(k.reshape(split))
        v = v.reshape(split).permute(0, 2, 1, 3)
        if sdpa:
            out = F.scaled_dot_product_attention(q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v)
        else:
            # As sepo: 1/sqrt(d_h) folded into q, scores [B, H, L, L], softmax, then V.
            q = (q * (1.0 / math.sqrt(head_dim))).permute(0, 2, 1, 3)
            k = k.permute(0, 2, 3, 1)
            out = torch.softmax(q @ k, dim=-1) @ v
        return out.permute(0, 2, 1, 3).reshape(b, l, dim)


class Transformer(nn.Module):
    """The network and sepo's absorbing score head (mask = last state)."""

    def __init__(self, cfg, sdpa=False):
        super().__init__()
        self.cfg = cfg
        self.sdpa = sdpa
        d = cfg.dim
        self.vocab_embed = nn.Parameter(torch.empty(cfg.vocab, d).uniform_(-(d**-0.5), d**-0.5))
        self.sigma1 = nn.Linear(cfg.freq_dim, cfg.cond_dim)
        self.sigma2 = nn.Linear(cfg.cond_dim, cfg.cond_dim)
        self.blocks = nn.ModuleList(
            Block(d, cfg.heads, cfg.cond_dim, cfg.mlp_ratio * d) for _ in range(cfg.layers)
        )
        self.norm_final = nn.Parameter(torch.ones(d))
        self.final_ada = nn.Linear(cfg.cond_dim, 2 * d)
        self.final_linear = nn.Linear(d, cfg.vocab)
        for lin in self.modules():
            if isinstance(lin, nn.Linear):
                nn.init.normal_(lin.weight, std=lin.in_features**-0.5)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
        for lin in [*(blk.ada for blk in self.blocks), self.final_ada, self.final_linear]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self._ropes = {}

    def rope(self, length):
        if length not in self._ropes:
            self._ropes[length] = Rope(length, self.cfg.head_dim)
        return self._ropes[length]

    def forward(self, tokens, sigma_bar):
        """Log concrete scores [B, L, N] of tokens [B, L] (int64) at total noise sigma_bar [B]."""
        c = F.silu(self.sigma2(F.silu(self.sigma1(sinusoidal_features(sigma_bar, self.cfg.freq_dim)))))
        x = self.vocab_embed[tokens]
        rope = self.rope(tokens.shape[1])
        for block in self.blocks:
            x = block(x, c, rope, self.sdpa)
        shift, scale = self.final_ada(c).chunk(2, dim=1)
        logits = self.final_linear(modulate(layer_norm(x, self.norm_final), shift, scale))
        return absorbing_head(logits, tokens, sigma_bar)

    def sepo_names(self):
        """(sepo parameter name, torch parameter, transposed?) for every parameter."""
        out = [("vocab_embed.embedding", self.vocab_embed, False)]
        lin = lambda name, m: [(f"{name}.weight", m.weight, True)] + (
            [(f"{name}.bias", m.bias, False)] if m.bias is not None else []
        )
        out += lin("sigma_map.mlp.0", self.sigma1) + lin("sigma_map.mlp.2", self.sigma2)
        for i, blk in enumerate(self.blocks):
            p = f"blocks.{i}"
            out += [(f"{p}.norm1.weight", blk.norm1, False)] + lin(f"{p}.attn_qkv", blk.attn_qkv)
            out += lin(f"{p}.attn_out", blk.attn_out) + [(f"{p}.norm2.weight", blk.norm2, False)]
            out += lin(f"{p}.mlp.0", blk.mlp_in) + lin(f"{p}.mlp.2", blk.mlp_out)
            out += lin(f"{p}.adaLN_modulation", blk.ada)
        out += [("output_layer.norm_final.weight", self.norm_final, False)]
        out += lin("output_layer.adaLN_modulation", self.final_ada)
        out += lin("output_layer.linear", self.final_linear)
        return out

    def load_sepo(self, tensors, prefix=""):
        """Copies sepo-layout host arrays {name: ndarray} into the parameters."""
        with torch.no_grad():
            for name, param, transposed in self.sepo_names():
                value = torch.as_tensor(tensors[prefix + name], dtype=torch.float32)
                param.copy_(value.T if transposed else value)


def absorbing_head(logits, tokens, sigma_bar):
    """sepo's ScoreHead::Absorbing: q = softmax over the real tokens (mask column at -1e9);
    masked position: log q_v - log(e^sigma_bar - 1); unmasked: log q_v - log q_{x_l}; 0 at v = x_l
    and on the mask column."""
    b, l, n = logits.shape
    mask = n - 1
    bias = torch.zeros(n)
    bias[mask] = -1e9
    masked = tokens == mask
    unmasked = (~masked).to(logits.dtype)[..., None]
    shift = torch.where(masked, -log_expm1(sigma_bar)[:, None], 0.0).to(logits.dtype)[..., None]
    log_q = torch.log_softmax(logits + bias, dim=-1)
    own = log_q.gather(-1, tokens[..., None])
    scores = log_q - own * unmasked + shift
    columns = torch.arange(n)
    pinned = (columns == tokens[..., None]) | (columns == mask)
    return torch.where(pinned, torch.zeros(()), scores)
