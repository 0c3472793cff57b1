#!/usr/bin/python3
"""Benchmark: the ONNX stage executor vs TorchScript vs PyTorch eager, 1 thread.

Usage:  /usr/bin/python3 tools/bench_onnx_stage.py BUILD_DIR [--iters N] [--samples mlp,skip,...]

For each sample (the whole model as one stage: samples/NAME/NAME.onnx, the
traced samples/NAME/NAME_traced.pt with the same weights, and the eager module
built by samples/export.py), one micro-batch (mlp/skip 16 rows, tinygpt 8x8
tokens, tinygpt_op13 likewise, convnet 8x3x16x16): best-of-7-rounds time per call of
forward (no grad) and forward+backward (sum of the output), eval mode. Prints
a table and the ratios ONNX/TorchScript and ONNX/eager. OMP/OpenBLAS/torch
threads are all 1.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "samples"))
import export  # noqa: E402  (samples/export.py: the model definitions)

BATCH = {
    "mlp": lambda g: torch.randn(16, 512, generator=g),
    "skip": lambda g: torch.randn(16, 32, generator=g),
    "tinygpt": lambda g: torch.randint(0, 64, (8, 8), generator=g),
    "convnet": lambda g: torch.randn(8, 3, 16, 16, generator=g),
}


def best_us(fs, iters, rounds=7):
    """Per-call times, interleaved rounds, the best round of each (as the C++ side)."""
    for f in fs:
        for _ in range(max(3, iters // 5)):
            f()
    best = [float("inf")] * len(fs)
    for _ in range(rounds):
        for k, f in enumerate(fs):
            a = time.perf_counter()
            for _ in range(iters):
                f()
            best[k] = min(best[k], (time.perf_counter() - a) / iters * 1e6)
    return best


def eager(base, x, iters):
    model = export.build(base)[0].eval()
    params = list(model.parameters())

    def fwd():
        with torch.no_grad():
            model(x)

    def fb():
        for p in params:
            p.grad = None
        model(x).sum().backward()

    return best_us([fwd, fb], iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--samples", default="mlp,skip,tinygpt,tinygpt_op13,convnet")
    args = ap.parse_args()
    torch.set_num_threads(1)
    exe = os.path.join(args.build_dir, "bench_onnx_stage")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.samples.split(","):
            base = "tinygpt" if name.startswith("tinygpt") else name
            x = BATCH[base](torch.Generator().manual_seed(0))
            batch = os.path.join(tmp, name + ".pt")
            torch.save({"input": x}, batch)
            out = subprocess.run([exe, os.path.join(ROOT, "samples", base, name + ".onnx"),
                                  os.path.join(ROOT, "samples", base, base + "_traced.pt"), batch, str(args.iters)],
                                 check=True, capture_output=True, text=True).stdout
            v = {k: float(n) for k, n in re.findall(r"^(\w+ \w+) ([0-9.e+-]+)$", out, re.M)}
            ef, eb = eager(base, x, args.iters)
            rows.append((name, int(v["onnx steps"]), v["onnx fwd_us"], v["torchscript fwd_us"], ef,
                         v["onnx fwdbwd_us"], v["torchscript fwdbwd_us"], eb))
    print("1 thread; us per micro-batch (best of 7 interleaved rounds); ratios: ONNX stage / TorchScript, ONNX stage / eager")
    print("%-13s %5s | %9s %9s %9s %6s %6s | %9s %9s %9s %6s %6s" % (
        "sample", "nodes", "onnx fwd", "ts fwd", "eager fwd", "/ts", "/eager",
        "onnx f+b", "ts f+b", "eager f+b", "/ts", "/eager"))
    for name, steps, of, tf, ef, ob, tb, eb in rows:
        print("%-13s %5d | %9.1f %9.1f %9.1f %6.2f %6.2f | %9.1f %9.1f %9.1f %6.2f %6.2f" % (
            name, steps, of, tf, ef, of / tf, of / ef, ob, tb, eb, ob / tb, ob / eb))
    return 0


if __name__ == "__main__":
    sys.exit(main())
