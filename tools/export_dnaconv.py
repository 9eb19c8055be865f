"""Exports a tiny `dnaconv` checkpoint and its reference outputs (run once by hand).

`dnaconv` is the convolutional backbone of the DNA enhancer diffusion models of DRAKES (an MDLM over
200-bp sequences, "subs" parameterisation, not time-conditioned; the backbone itself comes from
Dirichlet flow matching). This script re-implements it from the published facts:

- vocabulary: A, C, G, T = 0..3 and the mask = 4 (`alphabet_size` 5, the mask included);
- input: one-hot of the 5 tokens, channels first; `linear` = Conv1d(5, H, 9, padding 4), then ReLU;
- time path (`clean_data: False`): `time_embedder` = Gaussian Fourier features of t (a fixed,
  non-trainable vector W of H/2 frequencies: [sin(2π t W), cos(2π t W)]) followed by Linear(H, H);
  time_emb = ReLU(time_embedder(t));
- 5·S conv layers (S = `num_cnn_stacks`), ordered layer-major: each of the five templates
  (kernel 9 with dilation 1, 1, 4, 16, 64 and "same" padding 4·dilation) repeated S times in a row;
  layer i: h = feat + time_layers[i](time_emb) (broadcast over positions), h = LayerNorm_i over
  channels, h = ReLU(conv_i(h)), feat = feat + h (dropout 0 at evaluation);
- `final_conv`: Conv1d(H, H, 1), ReLU, Conv1d(H, 5, 1) -> logits [B, L, 5];
- MDLM wrapper: σ is replaced by 0 before the backbone when `time_conditioning` is False (as in the
  DRAKES gosai config), so t = 0 always; "subs": add -1e6 to the mask logit, log-softmax, and at
  unmasked positions put 0 at the current token and -1e6 elsewhere (carry-over).

sepo's concrete score of the absorbing process (core/src/score/head.rs, ScoreHead::Absorbing), with
q = softmax of the logits over the 4 real tokens:
  masked position:    log s(x -> x^{l<-v}) = log q_v - log(e^{σ̄} - 1)   (= subs log p_θ(x₀=v | x_t) - log(e^{σ̄}-1))
  unmasked position:  log s_v = log q_v - log q_{x_l}  (the trunk's own ratio; MDLM's subs output is the
                      carry-over δ there, which no loss or sampler reads)
  0 at v = x_l and on the mask column.

Tiny sizes so the fixture stays small: H = 16, S = 2 (10 conv layers, dilations 1,1,1,1,4,4,16,16,64,64),
L = 200. Weights are perturbed away from PyTorch's initialisation (LayerNorm scales and every bias
non-trivial) so that each parameter matters.

Writes, under tests/fixtures/dnaconv/:
- config.json: {"name": "dnaconv", "vocab_size": 5, "length", "hidden_dim", "num_cnn_stacks",
  "time_conditioning": false, "parameterization": "subs"};
- model.safetensors: the backbone's state_dict (f32), names as in the published module
  (`linear.weight`, `time_embedder.0.W`, `convs.3.weight`, `norms.0.bias`, `final_conv.2.weight`, ...);
- expected.safetensors: `tokens` [8, L] and `sigma_bar` [8] (f64), and, computed in float64 from the
  f32 weights: `logits` [8, L, 5] (backbone), `subs` [8, L, 5] (MDLM's log p_θ(x₀ | x_t)) and
  `log_scores` [8, L, 5] (sepo's concrete score map above).

Usage: /work/venv-ref/bin/python tools/export_dnaconv.py [out_dir]
Converting a published Lightning checkpoint: `convert(ckpt, out)` below keeps `backbone.*` (EMA weights
when present) and writes the same safetensors layout.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

VOCAB = 5
MASK = 4
DILATIONS = [1, 1, 4, 16, 64]


class Fourier(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.W = nn.Parameter(torch.randn(dim // 2) * 30.0, requires_grad=False)

    def forward(self, t):
        angle = 2 * math.pi * t[:, None] * self.W[None, :]
        return torch.cat([angle.sin(), angle.cos()], dim=-1)


class Dense(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dense = nn.Linear(dim, dim)

    def forward(self, x):
        return self.dense(x)


class DnaConv(nn.Module):
    def __init__(self, hidden, stacks):
        super().__init__()
        self.linear = nn.Conv1d(VOCAB, hidden, 9, padding=4)
        self.time_embedder = nn.Sequential(Fourier(hidden), nn.Linear(hidden, hidden))
        n = 5 * stacks
        convs = []
        for d in DILATIONS:  # layer-major: each template `stacks` times in a row
            for _ in range(stacks):
                convs.append(nn.Conv1d(hidden, hidden, 9, dilation=d, padding=4 * d))
        self.convs = nn.ModuleList(convs)
        self.time_layers = nn.ModuleList([Dense(hidden) for _ in range(n)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(n)])
        self.final_conv = nn.Sequential(
            nn.Conv1d(hidden, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, VOCAB, 1)
        )

    def forward(self, tokens, t):
        x = F.one_hot(tokens, VOCAB).to(self.linear.weight.dtype).permute(0, 2, 1)
        emb = F.relu(self.time_embedder(t))
        feat = F.relu(self.linear(x))
        for conv, time, norm in zip(self.convs, self.time_layers, self.norms):
            h = feat + time(emb)[:, :, None]
            h = norm(h.permute(0, 2, 1)).permute(0, 2, 1)
            feat = feat + F.relu(conv(h))
        return self.final_conv(feat).permute(0, 2, 1)


def subs(logits, tokens):
    logits = logits.clone()
    logits[:, :, MASK] += -1e6
    logp = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    clean = tokens != MASK
    logp[clean] = -1e6
    logp[clean, tokens[clean]] = 0.0
    return logp


def concrete_log_scores(logits, tokens, sigma_bar):
    logq = torch.log_softmax(logits[:, :, :MASK], dim=-1)
    out = torch.zeros_like(logits)
    masked = tokens == MASK
    shift = torch.log(torch.expm1(sigma_bar))[:, None, None]
    own = torch.gather(logq, 2, tokens.clamp(max=MASK - 1)[:, :, None])
    real = torch.where(masked[:, :, None], logq - shift, logq - own)
    out[:, :, :MASK] = real
    pinned = F.one_hot(tokens, VOCAB).bool()
    return out.masked_fill(pinned, 0.0)


def convert(ckpt_path, out_path):
    """Published Lightning checkpoint -> model.safetensors (EMA weights when present)."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    state = {k[len("backbone."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("backbone.")}
    save_file({k: v.float().contiguous() for k, v in state.items()}, out_path)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/dnaconv"
    os.makedirs(out_dir, exist_ok=True)
    hidden, stacks, length, batch = 16, 2, 200, 8
    torch.manual_seed(0)
    model = DnaConv(hidden, stacks).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("W"):
                continue
            if name.startswith("norms") and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.mul_(1.5)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out_dir, "model.safetensors"))
    config = {
        "name": "dnaconv",
        "vocab_size": VOCAB,
        "length": length,
        "hidden_dim": hidden,
        "num_cnn_stacks": stacks,
        "time_conditioning": False,
        "parameterization": "subs",
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    gen = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 4, (batch, length), generator=gen)
    # Mask fractions from 0 (clean) to 1 (all masked) across the batch.
    frac = torch.linspace(0.0, 1.0, batch)[:, None]
    masked = torch.rand(batch, length, generator=gen) < frac
    tokens = torch.where(masked, torch.full_like(tokens, MASK), tokens)
    sigma_bar = torch.exp(torch.empty(batch).uniform_(math.log(1e-3), math.log(8.0), generator=gen))

    ref = DnaConv(hidden, stacks).double().eval()
    ref.load_state_dict({k: v.double() for k, v in state.items()})
    with torch.no_grad():
        t = torch.zeros(batch, dtype=torch.float64)  # not time-conditioned: σ -> 0
        logits = ref(tokens, t)
        f32 = model(tokens, t.float())
        print("f32 vs f64 backbone, max |diff|:", (f32.double() - logits).abs().max().item())
        out = {
            "tokens": tokens.double(),
            "sigma_bar": sigma_bar.double(),
            "logits": logits,
            "subs": subs(logits, tokens),
            "log_scores": concrete_log_scores(logits, tokens, sigma_bar.double()),
        }
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(out_dir, "expected.safetensors"))
    print("parameters:", sum(v.numel() for v in state.values()))


if __name__ == "__main__":
    main()
