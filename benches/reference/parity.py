#!/usr/bin/env python3
"""Numerical parity of the reference against sepo on one fixed input.

    cargo run --release --example bench -- --config=dna --export=/tmp/parity
    python benches/reference/parity.py /tmp/parity

sepo writes randomised weights (every block active) and its own outputs; this loads the weights into the
PyTorch model and compares: the forward's log-scores, the DWDSE loss and its gradient, one Tweedie step's
and the denoising step's transition probabilities, and the SEPO surrogate's (Conditional, Unmasked)
gradient against a perturbed θ_old. Both sides compute in float32, in different orders, so they agree to
float32 rounding amplified by the depth of the computation, not bit for bit: each check reports
max |torch - sepo| / max |sepo| and fails above its tolerance (1e-5 for values, 1e-4 for gradients; measured agreement at `dna` is
below 1e-6).
Exit status 1 if any check fails.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import CONFIGS, Transformer  # noqa: E402
from workloads import dwdse_loss, step_probs, surrogate_loss, total  # noqa: E402

DTYPES = {"F32": np.float32, "F64": np.float64}


def read_safetensors(path):
    """{name: ndarray} and the metadata of a safetensors file (F32/F64 only)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, h in header.items():
        start, end = h["data_offsets"]
        out[name] = np.frombuffer(data[base + start : base + end], dtype=DTYPES[h["dtype"]]).reshape(h["shape"]).copy()
    return out, meta


def relative(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def grads_of(model, cases, prefix):
    """(torch gradient, sepo gradient) for every parameter, sepo layout."""
    pairs = []
    for name, param, transposed in model.sepo_names():
        g = param.grad.detach()
        pairs.append(((g.T if transposed else g).numpy(), cases[prefix + name]))
    return pairs


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "/tmp/parity"
    weights, meta = read_safetensors(os.path.join(directory, "weights.safetensors"))
    cases, _ = read_safetensors(os.path.join(directory, "cases.safetensors"))
    cfg = CONFIGS[meta["config"]]
    torch.set_num_threads(2)
    model = Transformer(cfg)
    model.load_sepo(weights)
    long = lambda k: torch.as_tensor(cases[k]).to(torch.int64)
    f64 = lambda k: torch.as_tensor(cases[k], dtype=torch.float64)
    results = []

    with torch.no_grad():
        out = model(long("forward.tokens"), f64("forward.sigma_bar"))
    results.append(("forward log-scores", relative(out, cases["forward.log_scores"]), 1e-5))

    batch = {k: (long if k in ("x0", "x_t") else f64)(f"dwdse.{k}") for k in ("x0", "x_t", "sigma_bar", "sigma_rate")}
    model.zero_grad()
    loss = dwdse_loss(model, batch)
    loss.backward()
    results.append(("DWDSE loss", relative(loss.item(), cases["dwdse.loss"][0]), 1e-5))
    pairs = grads_of(model, cases, "dwdse.grad.")
    results.append(("DWDSE gradient", relative(np.concatenate([a.ravel() for a, _ in pairs]), np.concatenate([b.ravel() for _, b in pairs])), 1e-4))

    tokens, sigma_bar = long("forward.tokens"), cases["forward.sigma_bar"]
    for key, denoise in (("tweedie", False), ("denoise", True)):
        nxt = cases[f"{key}.sigma_bar_next"]
        rows = []
        with torch.no_grad():
            # The reference's step takes one σ̄ per batch (the grid's); sepo's export varies it per row.
            for r in range(tokens.shape[0]):
                rows.append(step_probs(model, tokens[r : r + 1], float(sigma_bar[r]), float(sigma_bar[r] - nxt[r]), denoise))
        results.append((f"{key} step probabilities", relative(torch.cat(rows), cases[f"{key}.probs"]), 1e-5))

    old = Transformer(cfg)
    old.load_sepo(cases, prefix="sepo.old.")
    model.zero_grad()
    loss, value = surrogate_loss(model, old, long("sepo.x"), f64("sepo.advantage"), total(1e-5))
    loss.backward()
    results.append(("SEPO surrogate loss", relative(value, cases["sepo.loss"][0]), 1e-5))
    pairs = grads_of(model, cases, "sepo.grad.")
    results.append(("SEPO surrogate gradient", relative(np.concatenate([a.ravel() for a, _ in pairs]), np.concatenate([b.ravel() for _, b in pairs])), 1e-4))

    failed = 0
    print(f"config {meta['config']}: max |torch - sepo| / max |sepo|")
    for name, err, tol in results:
        ok = err <= tol
        failed += not ok
        print(f"  {name:28s} {err:.2e}  (tolerance {tol:.0e}) {'ok' if ok else 'FAIL'}")
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
