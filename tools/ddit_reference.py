"""The DDiT backbone that SEDD and MDLM publish, re-implemented in plain PyTorch on the CPU.

Written from the published model definitions' facts (louaaron/Score-Entropy-Discrete-Diffusion
`model/transformer.py`, `model/rotary.py`, `model/fused_add_dropout_scale.py`; kuleshov-group/mdlm
`models/dit.py`), without their CUDA-only pieces (flash-attention, TorchScript fusion, bf16 autocast):

- `vocab_embed.embedding [V, D]`, looked up by index (no positional embedding: RoPE only);
- `sigma_map`: 256 sinusoidal features of the scalar `sigma` (`cos` half first, frequencies
  `exp(-ln(10^4) j / 128)`), `mlp.0` (256 -> cond) + SiLU + `mlp.2` (cond -> cond); the model applies
  one more SiLU outside: `c = silu(sigma_map(sigma))`;
- `rotary_emb.inv_freq = 1 / 10000^(arange(0, d_h, 2) / d_h)`, a persistent buffer (it is in the
  state dict); `cos/sin` of `t * inv_freq` repeated over both halves; q and k rotated as
  `x cos + rotate_half(x) sin` with `rotate_half(x) = [-x2, x1]`; v unrotated;
- `DDiTBlock`: `adaLN_modulation` (cond -> 6D) chunked as shift/scale/gate for attention then MLP;
  `LayerNorm` without bias and eps 1e-5 (`F.layer_norm` defaults) times `weight`;
  `modulate(x) = x (1 + scale) + shift`; `attn_qkv` (D -> 3D, no bias) read as
  `(three h d)`; non-causal softmax attention with scale `1/sqrt(d_h)`; `attn_out` (no bias);
  residual `x + gate * out` (dropout off at inference); MLP `Linear(D, 4D) GELU(tanh) Linear(4D, D)`;
- `output_layer` (`DDitFinalLayer`): `norm_final`, `adaLN_modulation` (cond -> 2D: shift, scale),
  `linear` (D -> V, with bias).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class LayerNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones([dim]))
        self.dim = dim

    def forward(self, x):
        return F.layer_norm(x.float(), [self.dim]) * self.weight[None, None, :]


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size, frequency_embedding_size=256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    @staticmethod
    def features(t, dim, max_period=10000):
        half = dim // 2
        freqs = torch.exp(
            -math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half
        )
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t):
        return self.mlp(self.features(t, self.frequency_embedding_size))


class Rotary(nn.Module):
    def __init__(self, dim, base=10_000):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, seq_len):
        t = torch.arange(seq_len).type_as(self.inv_freq)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()  # [L, d_h]


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class DDiTBlock(nn.Module):
    def __init__(self, dim, n_heads, cond_dim, mlp_ratio=4):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim, bias=True),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * dim, dim, bias=True),
        )
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim, bias=True)

    def forward(self, x, cos_sin, c):
        b, s, dim = x.shape
        h = self.n_heads
        d = dim // h
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        skip = x
        x = modulate(self.norm1(x), shift1, scale1)
        qkv = self.attn_qkv(x).view(b, s, 3, h, d)  # 'b s (three h d) -> b s three h d'
        cos, sin = cos_sin
        cos, sin = cos[None, :, None, :], sin[None, :, None, :]
        q = qkv[:, :, 0] * cos + rotate_half(qkv[:, :, 0]) * sin
        k = qkv[:, :, 1] * cos + rotate_half(qkv[:, :, 1]) * sin
        v = qkv[:, :, 2]
        q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))  # [b, h, s, d]
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        x = (att @ v).permute(0, 2, 1, 3).reshape(b, s, dim)
        x = skip + gate1 * self.attn_out(x)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class EmbeddingLayer(nn.Module):
    def __init__(self, dim, vocab_dim):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty((vocab_dim, dim)))
        torch.nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, x):
        return self.embedding[x]


class DDitFinalLayer(nn.Module):
    def __init__(self, hidden_size, out_channels, cond_dim):
        super().__init__()
        self.norm_final = LayerNorm(hidden_size)
        self.linear = nn.Linear(hidden_size, out_channels)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * hidden_size, bias=True)

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c)[:, None].chunk(2, dim=2)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DDiT(nn.Module):
    """The backbone: `(indices [B, L], sigma [B]) -> logits [B, L, V]`."""

    def __init__(self, vocab_size, hidden, n_heads, n_blocks, cond_dim):
        super().__init__()
        self.vocab_embed = EmbeddingLayer(hidden, vocab_size)
        self.sigma_map = TimestepEmbedder(cond_dim)
        self.rotary_emb = Rotary(hidden // n_heads)
        self.blocks = nn.ModuleList(
            [DDiTBlock(hidden, n_heads, cond_dim) for _ in range(n_blocks)]
        )
        self.output_layer = DDitFinalLayer(hidden, vocab_size, cond_dim)

    def forward(self, indices, sigma):
        x = self.vocab_embed(indices)
        c = F.silu(self.sigma_map(sigma))
        cos_sin = self.rotary_emb(x.shape[1])
        for block in self.blocks:
            x = block(x, cos_sin, c)
        return self.output_layer(x, c)


def randomise_(model, generator, scale=0.3):
    """Every parameter drawn N(0, scale^2/fan) so that no path is the zero-initialised identity
    (the adaLN and output layers start at 0 in training) and the outputs depend on every weight;
    norm scales drawn around 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm_final.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator))
            else:
                fan = p.shape[-1] if p.dim() > 1 else 1
                std = scale if p.dim() == 1 else max(scale, 1.0) / math.sqrt(fan)
                p.copy_(std * torch.randn(p.shape, generator=generator))


def absorbing_inputs(generator, batch, length, tokens, mask_id, sigmas):
    """Token rows masked independently with probability 1 - e^{-sigma} (the absorbing forward
    process at total noise sigma), each row holding at least one masked and one clean position."""
    rows = []
    for i, s in enumerate(sigmas):
        x = torch.randint(0, tokens, (length,), generator=generator)
        masked = torch.rand(length, generator=generator) < 1 - math.exp(-s)
        masked[i % length] = True
        masked[(i + 1) % length] = False
        rows.append(torch.where(masked, torch.full_like(x, mask_id), x))
    return torch.stack(rows)


def write_expected(path, family, tokens, sigma, outputs, note):
    import json

    data = {
        "family": family,
        "note": note,
        "batch": tokens.shape[0],
        "length": tokens.shape[1],
        "states": outputs.shape[2],
        "tokens": tokens.reshape(-1).tolist(),
        "sigma_bar": [float(s) for s in sigma.tolist()],
        "outputs": [float(v) for v in outputs.reshape(-1).tolist()],
    }
    with open(path, "w") as f:
        json.dump(data, f)
        f.write("\n")
