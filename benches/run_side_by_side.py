#!/usr/bin/env python3
"""Runs sepo's bench and the PyTorch reference side by side and writes the ratio table.

    python3 benches/run_side_by_side.py --python /path/to/venv/bin/python           # full run (hours)
    python3 benches/run_side_by_side.py --python ... --configs dna --workloads forward,train
    python3 benches/run_side_by_side.py --python ... --configs dna --small          # smoke check (a minute)

For every configuration and workload it runs `cargo run --release --example bench -- --config=C
--workloads=W` and then `PYTHON benches/reference/sepo_reference.py --config C --workload W` (one process
each, back to back, so that both see the same load; sepo first), with the same thread count for both
(RAYON_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS and torch.set_num_threads). It then replaces the
section between the markers below in docs/PERFORMANCE.md (appending one if absent) with the table, the
machine, the versions, the thread counts, the load average before and after, and the command. A
`--small` run prints its table and leaves the doc alone unless `--doc` is given. Raw JSON lines go to
`--out` (default target/side_by_side.jsonl). Only the standard library is needed to run this script; the
reference's interpreter needs benches/reference/requirements.txt. Never run by `cargo test` or CI.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- side-by-side:begin (written by benches/run_side_by_side.py) -->"
END = "<!-- side-by-side:end -->"
DEFAULT_CONFIGS = "dna,mid,sedd-small"
WORKLOADS = {"sedd-small": ["forward", "train"]}
ALL = ["forward", "train", "sample", "round"]
LABEL = {
    "forward": "forward",
    "train": "DWDSE training step (forward, backward, clip, AdamW)",
    "sample": "sampling (Tweedie steps + denoise)",
    "round": "one SEPO round (Conditional, unmasked)",
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_json(cmd, env):
    """Runs cmd, passes its stderr through, returns the JSON lines of its stdout."""
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def machine():
    model, cores = "unknown CPU", 0
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("processor"):
                    cores += 1
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cores} × {model}{mem}, Linux {platform.release()}"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return "?"


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_rss(r):
    """Peak RSS of the workload and, in brackets, the process's RSS when it started (model, libraries)."""
    peak, start = r.get("peak_rss_mib"), r.get("rss_start_mib")
    if peak is None:
        return "?"
    return f"{peak:,.0f} MiB" + ("" if start is None else f" ({start:,.0f})")


def parts(r):
    p = r.get("parts_s")
    if not p:
        return ""
    return f"sample {fmt_time(p[0])}, optimise {fmt_time(p[2])}, entropy {fmt_time(p[3])}"


def table(rows):
    out = [
        "| config | workload | PyTorch (median) | sepo (median) | sepo / PyTorch | peak RSS PyTorch (at start) | peak RSS sepo (at start) | reps | round parts (PyTorch; sepo) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for py, rs in rows:
        ratio = rs["median_s"] / py["median_s"]
        size = f"B = {rs['batch']}, L = {rs['len']}" + (f", {rs['steps']} steps" if rs["workload"] in ("sample", "round") else "")
        note = f"{parts(py)}; {parts(rs)}" if rs["workload"] == "round" else ""
        out.append(
            f"| {rs['config']} ({rs['params']:,} params) | {LABEL[rs['workload']]}, {size} | {fmt_time(py['median_s'])} "
            f"| {fmt_time(rs['median_s'])} | {ratio:.2f}× | {fmt_rss(py)} | {fmt_rss(rs)} "
            f"| {len(py['times_s'])} / {len(rs['times_s'])} | {note} |"
        )
    return "\n".join(out)


def write_doc(path, body):
    text = open(path).read() if os.path.exists(path) else "# Performance\n"
    block = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Side by side with PyTorch\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=os.environ.get("SEPO_REF_PYTHON", "python3"), help="interpreter with torch (default $SEPO_REF_PYTHON or python3)")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated (default {DEFAULT_CONFIGS}; tiny also exists)")
    ap.add_argument("--workloads", help="comma-separated subset of forward,train,sample,round (default: all; forward,train for sedd-small)")
    ap.add_argument("--small", action="store_true", help="toy workload sizes on both sides (smoke check)")
    ap.add_argument("--reps", type=int, help="timed repetitions for every workload (default 5 forward/train, 1 sample/round)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--doc", help="markdown file whose marked section is replaced (default docs/PERFORMANCE.md; none for --small)")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "side_by_side.jsonl"))
    args = ap.parse_args()

    check = subprocess.run([args.python, "-c", "import torch, numpy"], capture_output=True, text=True)
    if check.returncode != 0:
        sys.exit(f"{args.python} cannot import torch and numpy: install benches/reference/requirements.txt\n{check.stderr}")
    env = dict(os.environ)
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = loadavg()
    log("building the bench (untimed)")
    subprocess.run(["cargo", "build", "--release", "--example", "bench"], cwd=ROOT, env=env, check=True)

    rows, raw = [], []
    for config in args.configs.split(","):
        which = args.workloads.split(",") if args.workloads else WORKLOADS.get(config, ALL)
        for w in which:
            flags = (["--small"] if args.small else [])
            sepo = ["cargo", "run", "--quiet", "--release", "--example", "bench", "--", f"--config={config}", f"--workloads={w}"]
            sepo += flags + ([f"--reps={args.reps}"] if args.reps else [])
            ref = [args.python, "benches/reference/sepo_reference.py", "--config", config, "--workload", w, "--threads", str(args.threads)]
            ref += flags + (["--reps", str(args.reps)] if args.reps else [])
            rs = run_json(sepo, env)
            py = run_json(ref, env)
            for r in rs + py:
                log(json.dumps(r))
            raw += rs + py
            rows.append((py[0], rs[0]))
    finished = datetime.datetime.now(datetime.timezone.utc)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in raw)

    py0 = rows[0][0]
    body = "\n".join(
        [
            f"Measured {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC{' (toy sizes: `--small`)' if args.small else ''}, "
            f"load average {load_before} before and {loadavg()} after.",
            "",
            f"- Machine: {machine()}.",
            f"- sepo: {version(['rustc', '--version'])}, release profile, f32, `Cpu`; RAYON_NUM_THREADS={args.threads}.",
            f"- PyTorch: torch {py0['torch']} on Python {py0['python']}, eager, f32, CPU; "
            f"{py0['threads']} intra-op / {py0['interop_threads']} inter-op threads, OMP/MKL_NUM_THREADS={args.threads}, "
            f"{py0['attention']} attention.",
            f"- Command: `python3 benches/run_side_by_side.py {' '.join(sys.argv[1:])}` (each row: "
            "`cargo run --release --example bench -- --config=C --workloads=W`, then "
            "`python benches/reference/sepo_reference.py --config C --workload W`).",
            f"- Raw JSON lines: `{os.path.relpath(args.out, ROOT)}`.",
            "",
            table(rows),
        ]
    )
    print(body)
    doc = args.doc or (None if args.small else os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    if doc:
        write_doc(doc, body)
        log(f"wrote the side-by-side section of {doc}")


if __name__ == "__main__":
    main()
