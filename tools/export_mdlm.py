"""Exports a tiny MDLM checkpoint in the published layout and the concrete scores it implies on fixed
inputs.

Run once by hand (`/path/to/venv/bin/python tools/export_mdlm.py`); the outputs are committed under
tests/fixtures/models/mdlm-tiny/ and checked by tests/import_mdlm.rs.

Layout of `kuleshov-group/mdlm-owt` (a `transformers` save of `MDLM(MDLMConfig)`):
- `config.json`: `model_type: "mdlm"`, `vocab_size` (50258: GPT-2 + mask), `model_length`,
  `hidden_dim`, `cond_dim`, `n_blocks`, `n_heads`, `dropout`, `time_conditioning` (false), plus the
  `transformers` keys (`architectures`, `auto_map`, `torch_dtype`, ...);
- `model.safetensors`: the `DITBackbone` under `backbone.` (`backbone.vocab_embed.embedding`,
  `backbone.blocks.0.attn_qkv.weight`, ...), `nn.Linear` weights `[out, in]`.

The backbone sees `sigma` only when `time_conditioning` (otherwise zeros); MDLM's "subs"
parameterisation turns its logits into `log p_theta(x_0 | x_t)`: the mask logit gets
`neg_infinity = -1e6` added, a log-softmax over the vocabulary, then at every unmasked position the row
becomes 0 at the position's own token and `neg_infinity` elsewhere (carry-over unmasking).

The expected outputs are the absorbing concrete score this implies (docs/models.md derives it):
at a masked position `log p_theta(v | x_t) - log(expm1(sigma))` for every real token `v` and 0 at the
mask (its own state); at an unmasked position 0 at its own token and `neg_infinity` at every other
real token, 0 at the mask column. Two sets are written: the published `time_conditioning: false`
(`expected.json`) and the same weights with `time_conditioning: true` (`expected_time.json`).
"""

import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from ddit_reference import DDiT, absorbing_inputs, randomise_, write_expected  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models", "mdlm-tiny")

NEG_INFINITY = -1000000.0

# Tiny sizes, published structure: mdlm-owt has vocab_size 50258, hidden 768, 12 blocks, 12 heads.
CONFIG = {
    "_name_or_path": "mdlm-tiny",
    "architectures": ["MDLM"],
    "auto_map": {
        "AutoConfig": "configuration_mdlm.MDLMConfig",
        "AutoModelForMaskedLM": "modeling_mdlm.MDLM",
    },
    "cond_dim": 8,
    "dropout": 0.1,
    "hidden_dim": 16,
    "model_length": 10,
    "model_type": "mdlm",
    "n_blocks": 2,
    "n_heads": 2,
    "return_dict": False,
    "time_conditioning": False,
    "torch_dtype": "float32",
    "transformers_version": "4.38.2",
    "vocab_size": 28,
}


class MDLM(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.backbone = DDiT(config["vocab_size"], config["hidden_dim"], config["n_heads"],
                             config["n_blocks"], config["cond_dim"])
        self.mask_index = config["vocab_size"] - 1

    def subs_log_probs(self, xt, sigma):
        if not self.config["time_conditioning"]:
            sigma = torch.zeros_like(sigma)
        logits = self.backbone(xt, sigma)
        logits[:, :, self.mask_index] += NEG_INFINITY
        logits = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        unmasked = xt != self.mask_index
        logits[unmasked] = NEG_INFINITY
        logits[unmasked, xt[unmasked]] = 0
        return logits


def concrete_log_score(log_p, xt, sigma, mask_index):
    """The absorbing concrete score implied by subs' log p_theta(x_0 | x_t) (see the module docs)."""
    log_expm1 = torch.log(torch.expm1(sigma.double())).float()[:, None, None]
    masked = (xt == mask_index)[..., None]
    out = torch.where(masked, log_p - log_expm1, log_p)
    out[..., mask_index] = 0.0
    return out


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20240602)
    model = MDLM(CONFIG).eval()
    randomise_(model, gen)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(OUT, "model.safetensors"), metadata={"format": "pt"})

    mask = model.mask_index
    sigmas = torch.tensor([2e-3, 0.03, 0.2, 0.5, 0.9, 1.7, 4.0, 9.5], dtype=torch.float32)
    x = absorbing_inputs(gen, len(sigmas), CONFIG["model_length"], mask, mask, sigmas.tolist())
    for name, time_conditioning in [("expected.json", False), ("expected_time.json", True)]:
        model.config["time_conditioning"] = time_conditioning
        with torch.no_grad():
            out = concrete_log_score(model.subs_log_probs(x, sigmas), x, sigmas, mask)
        write_expected(os.path.join(OUT, name), "mdlm", x, sigmas, out,
                       f"MDLM subs -> absorbing concrete log-score, time_conditioning={time_conditioning}, "
                       "float32 on the CPU; tools/export_mdlm.py")
        print("wrote", name, tuple(out.shape))
    model.config["time_conditioning"] = False


if __name__ == "__main__":
    main()
