"""Exports the small ONNX classifier that tests/reward_onnx.rs scores (run once by hand).

A 1-D CNN over one-hot DNA (tokens 0..4 = A, C, G, T), trained for a few hundred steps on synthetic
sequences to tell GC-rich (GC fraction > 1/2) from AT-rich ones, so that the reward it defines has a
direction a fine-tuning run can climb:

    x [B, L, 4] one-hot (f32) -> transpose [B, 4, L] -> Conv1d(4, 8, k=5, pad=2) -> ReLU
      -> Conv1d(8, 8, k=3, pad=1) -> ReLU -> mean over L -> Linear(8, 2) -> logits [B, 2]

Logit 1 is the "GC-rich" class. Two ONNX graphs share the weights:

- classifier_onehot.onnx: input `onehot` [batch, length, 4] f32 (one-hot encoding);
- classifier_ids.onnx: input `ids` [batch, length] int64 (token ids), embedded by a fixed identity table
  (an ONNX Gather), then the same network.

Batch and length are dynamic axes. Written next to them, classifier_expected.json holds fixed inputs
(token ids) and the PyTorch logits on them (f32, printed with 9 significant digits), which the Rust test
compares against tract's output to 1e-5.

Usage: /work/venv-ref/bin/python tools/export_onnx_classifier.py [out_dir]
"""

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

K = 4


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(K, 8, kernel_size=5, padding=2)
        self.conv2 = nn.Conv1d(8, 8, kernel_size=3, padding=1)
        self.out = nn.Linear(8, 2)

    def forward(self, onehot):  # [B, L, K] f32
        h = onehot.transpose(1, 2)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        return self.out(h.mean(dim=2))


class Ids(nn.Module):
    """Token ids [B, L] (int64) -> one-hot through a fixed identity embedding -> the same network."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn
        self.register_buffer("table", torch.eye(K))

    def forward(self, ids):
        return self.cnn(F.embedding(ids, self.table))


def sample_batch(gen, b, length):
    # GC fraction per sequence drawn uniformly, so both classes and the boundary are covered.
    p_gc = torch.rand(b, 1, generator=gen)
    gc = torch.rand(b, length, generator=gen) < p_gc
    pick = torch.randint(0, 2, (b, length), generator=gen)
    ids = torch.where(gc, 1 + pick, 3 * pick)  # GC -> {1, 2}, AT -> {0, 3}
    label = (gc.float().mean(dim=1) > 0.5).long()
    return ids, label


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/onnx"
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    cnn = Cnn()
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-2)
    for _ in range(300):
        ids, label = sample_batch(gen, 64, 16)
        loss = F.cross_entropy(cnn(F.one_hot(ids, K).float()), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    cnn.eval()
    ids_model = Ids(cnn).eval()

    # Fixed inputs: 12 sequences of length 8 (the fine-tuning test's length) with every token.
    fixed_gen = torch.Generator().manual_seed(2)
    fixed = torch.randint(0, K, (12, 8), generator=fixed_gen)
    fixed[0] = torch.tensor([1, 2, 1, 2, 2, 1, 1, 2])
    fixed[1] = torch.tensor([0, 3, 0, 3, 3, 0, 0, 3])
    with torch.no_grad():
        logits = cnn(F.one_hot(fixed, K).float())
        assert torch.equal(logits, ids_model(fixed)) or torch.allclose(logits, ids_model(fixed), atol=1e-6)
        test_ids, test_label = sample_batch(gen, 2000, 16)
        acc = (cnn(F.one_hot(test_ids, K).float()).argmax(1) == test_label).float().mean().item()
    print(f"held-out accuracy on the synthetic task: {acc:.3f}")

    dyn = {0: "batch", 1: "length"}
    torch.onnx.export(
        cnn,
        (F.one_hot(fixed, K).float(),),
        os.path.join(out_dir, "classifier_onehot.onnx"),
        input_names=["onehot"],
        output_names=["logits"],
        dynamic_axes={"onehot": dyn, "logits": {0: "batch"}},
        opset_version=13,
        dynamo=False,
    )
    torch.onnx.export(
        ids_model,
        (fixed,),
        os.path.join(out_dir, "classifier_ids.onnx"),
        input_names=["ids"],
        output_names=["logits"],
        dynamic_axes={"ids": dyn, "logits": {0: "batch"}},
        opset_version=13,
        dynamo=False,
    )
    expected = {
        "alphabet": K,
        "length": 8,
        "inputs": fixed.tolist(),
        "logits": [[float(f"{v:.9g}") for v in row] for row in logits.tolist()],
        "heldout_accuracy": acc,
    }
    # One sequence (one row of logits) per line.
    lines = ",\n".join(
        f"  {json.dumps(k)}: " + ("[\n   " + ",\n   ".join(json.dumps(r) for r in v) + "\n  ]" if isinstance(v, list) else json.dumps(v))
        for k, v in expected.items()
    )
    with open(os.path.join(out_dir, "classifier_expected.json"), "w") as f:
        f.write("{\n" + lines + "\n}\n")


if __name__ == "__main__":
    main()
