#!/usr/bin/python3
"""pprun against what a PyTorch user on this machine would otherwise run.

Trains the mlp sample (batch B, M micro-batches, SGD) for S steps three ways
and prints the median step time of each and its ratio to eager PyTorch:

  eager   the unsplit model in one process, 1 intra-op thread (the fastest
          setting here: more threads oversubscribe 2 cores)
  Pipe    torch.distributed.pipeline.sync.Pipe (PyTorch 1.13's pipeline),
          2 partitions (a thread each) in one process, chunks = M
  pprun   2 ranks (processes) over Gloo, 1F1B, M micro-batches, the same
          2-stage split (after layer0: layer0 | layer1 layer2 output_proj),
          1 thread per rank

Usage: /usr/bin/python3 tools/bench_vs_pytorch.py [BUILD_DIR] [--batch B] [--chunks M] [--steps S]
The first step of each is excluded (one-time costs). Same batches, same
parameters, same optimizer everywhere; the losses are printed to show that.
"""
import os

# One BLAS thread per process: OpenBLAS's own pool and torch's oversubscribe
# the cores otherwise (docs/runtime.md, "Threads"). Set before torch loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    a = ap.parse_args()
    cores = os.cpu_count()
    tmp = tempfile.mkdtemp()
    model_path = os.path.join(ROOT, "samples/mlp/mlp_traced.pt")
    torch.manual_seed(0)
    batches = os.path.join(tmp, "batches")
    os.makedirs(batches)
    for k in range(4):
        torch.save({"x": torch.randn(a.batch, 512), "target": torch.randn(a.batch, 10)},
                   os.path.join(batches, "batch_%03d.pt" % k))
    data = [torch.load(os.path.join(batches, f)) for f in sorted(os.listdir(batches))]

    def fresh():
        return torch.jit.load(model_path)

    def run(step_fn):
        times, losses = [], []
        for i in range(a.steps):
            b = data[i % len(data)]
            t = time.perf_counter()
            losses.append(step_fn(b))
            times.append(time.perf_counter() - t)
        return statistics.median(times[1:]) * 1000, losses

    # eager
    torch.set_num_threads(1)
    m = fresh()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)

    def eager_step(b):
        opt.zero_grad()
        loss = F.mse_loss(m(b["x"]), b["target"])
        loss.backward()
        opt.step()
        return loss.item()

    eager_ms, eager_losses = run(eager_step)

    # Pipe: two partitions of the same modules, one process (RPC needed by Pipe).
    import torch.distributed.rpc as rpc
    from torch.distributed.pipeline.sync import Pipe
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29731")
    rpc.init_rpc("worker", rank=0, world_size=1)
    ts = fresh()
    part1 = nn.Sequential(ts.layer0)
    part2 = nn.Sequential(ts.layer1, ts.layer2, ts.output_proj)
    pipe = Pipe(nn.Sequential(part1, part2), chunks=a.chunks)
    popt = torch.optim.SGD(pipe.parameters(), lr=0.01)

    def pipe_step(b):
        popt.zero_grad()
        loss = F.mse_loss(pipe(b["x"]).local_value(), b["target"])
        loss.backward()
        popt.step()
        return loss.item()

    pipe_ms, pipe_losses = run(pipe_step)
    rpc.shutdown()

    # pprun: the same split, 2 ranks.
    spec = os.path.join(tmp, "spec.json")
    json.dump({"version": 1, "split_points": [{"module": "layer0", "at": "end"}]}, open(spec, "w"))
    out = os.path.join(tmp, "mlp2")
    subprocess.run([os.path.join(a.build, "ppc"), "split", model_path, "--splits", spec, "-o", out],
                   check=True, capture_output=True)
    log = subprocess.run([os.path.join(a.build, "pprun"), "--manifest", out, "--nproc", "2", "--schedule", "1f1b",
                          "--chunks", str(a.chunks), "--threads", "1", "--inputs", batches, "--steps", str(a.steps), "--train",
                          "--loss", "mse", "--optimizer", "sgd", "--lr", "0.01"],
                         check=True, capture_output=True, text=True).stdout
    rows = [(float(l), float(t)) for l, t in re.findall(r"loss ([0-9.]+) .*? step ([0-9.]+) ms", log)]
    pprun_ms = statistics.median(t for _, t in rows[1:])
    pprun_losses = [l for l, _ in rows]

    print(f"mlp sample, batch {a.batch}, {a.chunks} micro-batches, SGD, {a.steps} steps (first excluded), "
          f"{cores} cores")
    print(f"{'':8} {'step ms':>9} {'vs eager':>9}  losses (first 3)")
    for name, ms, losses in (("eager", eager_ms, eager_losses), ("Pipe", pipe_ms, pipe_losses),
                             ("pprun", pprun_ms, pprun_losses)):
        print(f"{name:8} {ms:9.2f} {ms / eager_ms:8.2f}x  {' '.join('%.5f' % l for l in losses[:3])}")
    print(f"pprun / Pipe: {pprun_ms / pipe_ms:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
