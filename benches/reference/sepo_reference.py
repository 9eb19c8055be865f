#!/usr/bin/env python3
"""The PyTorch side of the side-by-side benchmark: sepo's workloads in eager PyTorch on the CPU.

    python benches/reference/sepo_reference.py --config dna                  # all four workloads
    python benches/reference/sepo_reference.py --config mid --workload forward --workload train
    python benches/reference/sepo_reference.py --config dna --small          # toy sizes (smoke check)

Prints one JSON line per workload on stdout. The workloads, their sizes, warm-up and repetitions are
those of sepo's `cargo run --release --example bench -- --config=NAME` (examples/side_by_side/mod.rs,
whose docs define them); the two must change together. Peak resident memory per workload is VmHWM from
/proc/self/status, reset through /proc/self/clear_refs when the workload starts (Linux).
"""

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import CONFIGS, Transformer  # noqa: E402
from workloads import Round, adamw, bench_clean_tokens, corrupt, sample, train_step  # noqa: E402

ALL = ["forward", "train", "sample", "round"]


def shape(name, small):
    """The configuration and workload sizes; `small` shrinks the workloads (not the network)."""
    cfg = CONFIGS[name]
    sizes = {"steps": 128, "round": (4, 16, 16, 5), "reps": (5, 1)}
    if small:
        cfg = replace(cfg, batch=min(cfg.batch, 8), len=min(cfg.len, 32))
        sizes = {"steps": 8, "round": (2, 4, 4, 2), "reps": (1, 1)}
    return cfg, sizes


def rss_mib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def timed(warmup, reps, f):
    for _ in range(warmup):
        f()
    times = []
    for _ in range(reps):
        clock = time.perf_counter()
        f()
        times.append(time.perf_counter() - clock)
    return times


def median(times):
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="dna")
    ap.add_argument("--workload", action="append", choices=ALL, help="repeatable; default: all four (forward, train for sedd-small)")
    ap.add_argument("--small", action="store_true", help="toy workload sizes (a smoke check)")
    ap.add_argument("--reps", type=int, help="timed repetitions (default 5 for forward/train, 1 for sample/round)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--sdpa", action="store_true", help="fused scaled_dot_product_attention instead of sepo's explicit attention (not op for op)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg, sizes = shape(args.config, args.small)
    which = args.workload or (["forward", "train"] if args.config == "sedd-small" else ALL)
    model = Transformer(cfg, sdpa=args.sdpa)
    n_params = sum(p.numel() for p in model.parameters())
    generator = torch.Generator().manual_seed(0)
    batch = corrupt(bench_clean_tokens(cfg.batch, cfg.len), cfg.vocab, generator)
    opt = adamw(model)
    common = {
        "impl": "pytorch",
        "config": args.config,
        "small": args.small,
        "params": n_params,
        "len": cfg.len,
        "steps": sizes["steps"],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "attention": "sdpa" if args.sdpa else "explicit",
    }

    def forward():
        with torch.no_grad():
            model(batch["x_t"], batch["sigma_bar"])

    for w in which:
        reset_peak()
        rss_start = rss_mib("VmRSS:")
        fast = args.reps or sizes["reps"][0]
        slow = args.reps or sizes["reps"][1]
        extra = {}
        b = cfg.batch
        if w == "forward":
            times = timed(1, fast, forward)
        elif w == "train":
            times = timed(1, fast, lambda: train_step(model, batch, opt))
        else:
            # A warm process: one forward and one training step, untimed.
            forward()
            train_step(model, batch, opt)
            if w == "sample":
                g = torch.Generator().manual_seed(1)
                times = timed(0, slow, lambda: sample(model, cfg.batch, cfg.len, sizes["steps"], g))
            else:
                groups, group_size, minibatch, epochs = sizes["round"]
                rnd = Round(model, cfg.len, groups, group_size, minibatch, epochs, sizes["steps"])
                parts = {}
                times = timed(0, slow, lambda: parts.update(rnd.run()))
                extra["parts_s"] = [parts[k] for k in ("sample", "reward", "optimise", "rest")]
                b = groups * group_size
        line = {
            **common,
            "workload": w,
            "median_s": median(times),
            "times_s": times,
            "peak_rss_mib": rss_mib("VmHWM:"),
            "rss_start_mib": rss_start,
            "batch": b,
            **extra,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
