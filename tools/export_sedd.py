"""Exports a tiny SEDD checkpoint in the published layout and the log-scores it gives on fixed inputs.

Run once by hand (`/path/to/venv/bin/python tools/export_sedd.py`); the outputs are committed under
tests/fixtures/models/sedd-tiny/ and checked by tests/import_sedd.rs.

Layout of `louaaron/sedd-small` (a `PyTorchModelHubMixin` save of `SEDD(config)`):
- `config.json`: the run's whole Hydra config as one JSON object (`tokens`, `graph.type`,
  `noise`, `model.{hidden_size, cond_dim, length, n_blocks, n_heads, scale_by_sigma, dropout}`, ...);
- `model.safetensors` (or `pytorch_model.bin`): the module's state dict, torch names, `nn.Linear`
  weights `[out, in]`, and the `rotary_emb.inv_freq` buffer.

The output is SEDD's `forward(indices, sigma)`: the backbone's logits `x` over `V = tokens + 1`
states (absorbing graph: the mask is the last id), then with `scale_by_sigma`
`x - log(expm1(sigma)) - log(V - 1)` (`expm1` below 0.5, `exp - 1` above, in float32), then 0
scattered at each position's own token. Here `sigma` is the total noise sigma-bar.

Beside the float32 checkpoint it writes float16 and bfloat16 copies and a `torch.save` zip-pickle
copy (`variants/`), for the weight-format tests.
"""

import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from ddit_reference import DDiT, absorbing_inputs, randomise_, write_expected  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models", "sedd-tiny")

# Tiny sizes, published structure: GPT-2 would have tokens = 50257.
CONFIG = {
    "ngpus": 1,
    "tokens": 27,
    "training": {"batch_size": 8, "accum": 1, "n_iters": 1, "snapshot_freq": 1, "log_freq": 1,
                 "eval_freq": 1, "snapshot_freq_for_preemption": 1, "weight": "standard",
                 "snapshot_sampling": True, "ema": 0.9999},
    "data": {"train": "none", "valid": "none", "cache_dir": "data"},
    "graph": {"type": "absorb", "file": "data", "report_all": False},
    "noise": {"type": "loglinear", "sigma_min": 1e-4, "sigma_max": 20},
    "sampling": {"predictor": "euler", "steps": 128, "noise_removal": True},
    "eval": {"batch_size": 8, "perplexity": False, "perplexity_batch_size": 8},
    "optim": {"weight_decay": 0, "optimizer": "AdamW", "lr": 3e-4, "beta1": 0.9, "beta2": 0.999,
              "eps": 1e-8, "warmup": 2500, "grad_clip": 1.0},
    "model": {"name": "tiny", "type": "ddit", "hidden_size": 16, "cond_dim": 8, "length": 10,
              "n_blocks": 2, "n_heads": 2, "scale_by_sigma": True, "dropout": 0.1},
}


class SEDD(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        m = config["model"]
        self.absorb = config["graph"]["type"] == "absorb"
        vocab = config["tokens"] + (1 if self.absorb else 0)
        ddit = DDiT(vocab, m["hidden_size"], m["n_heads"], m["n_blocks"], m["cond_dim"])
        # The same module names as SEDD (no `backbone.` prefix).
        self.vocab_embed = ddit.vocab_embed
        self.sigma_map = ddit.sigma_map
        self.rotary_emb = ddit.rotary_emb
        self.blocks = ddit.blocks
        self.output_layer = ddit.output_layer
        self.scale_by_sigma = m["scale_by_sigma"]
        self._ddit = [ddit]  # not a submodule: keeps the state dict's names SEDD's

    def forward(self, indices, sigma):
        x = self._ddit[0](indices, sigma)
        if self.scale_by_sigma:
            assert self.absorb
            esigm1_log = torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1).log().to(x.dtype)[:, None, None]
            x = x - esigm1_log - math.log(x.shape[-1] - 1)
        return torch.scatter(x, -1, indices[..., None], torch.zeros_like(x[..., :1]))


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20240601)
    model = SEDD(CONFIG).eval()
    randomise_(model, gen)
    os.makedirs(os.path.join(OUT, "variants"), exist_ok=True)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})
    save_file({k: v.half() for k, v in state.items()},
              os.path.join(OUT, "variants", "model.f16.safetensors"), metadata={"format": "pt"})
    save_file({k: v.bfloat16() for k, v in state.items()},
              os.path.join(OUT, "variants", "model.bf16.safetensors"), metadata={"format": "pt"})
    torch.save(model.state_dict(), os.path.join(OUT, "variants", "pytorch_model.bin"))

    tokens_real = CONFIG["tokens"]
    sigmas = torch.tensor([1e-3, 0.02, 0.15, 0.45, 0.55, 1.3, 3.7, 12.0], dtype=torch.float32)
    x = absorbing_inputs(gen, len(sigmas), CONFIG["model"]["length"], tokens_real, tokens_real, sigmas.tolist())
    with torch.no_grad():
        out = model(x, sigmas)
    write_expected(os.path.join(OUT, "expected.json"), "sedd", x, sigmas, out,
                   "SEDD forward(indices, sigma) log-scores, float32 on the CPU; tools/export_sedd.py")
    print("wrote", os.path.normpath(OUT), tuple(out.shape), "max |log s|", out.abs().max().item())


if __name__ == "__main__":
    main()
