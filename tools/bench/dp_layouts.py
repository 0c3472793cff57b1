"""Pipeline x data parallel: the same model and global batch on 4 ranks as 4x1, 2x2 and 1x4.

Usage:  .venv/bin/python tools/bench/dp_layouts.py [--build build] [--batch 256] [--chunks 4] [--steps 21]
        .venv/bin/python tools/bench/dp_layouts.py --smoke      (a few steps, losses only)

The model of tools/bench/train_step.py (16 x (Linear(512, 512) + ReLU), MSE,
SGD lr 0.01), exported to ONNX and split by ppc at block boundaries; pprun
runs it on 4 local ranks with --threads 1 (1 intra-op thread per rank), every
layout on the same batches:

  4x1  4 stages of 4 blocks, one replica (1F1B);
  2x2  2 stages of 8 blocks, 2 replicas (--dp 2, 1F1B), each on half of every batch;
  1x4  1 stage of 16 blocks, 4 replicas (--dp 4), each on a quarter of every batch;

each replica splitting its shard into --chunks micro-batches, and eager
PyTorch on the whole batch in one process (1 thread) beside them. It prints
each layout's median step time over --steps steps (the first excluded) and
samples/s, as a ratio to 4x1, and checks that every layout's losses equal
eager PyTorch's (1e-4 relative): the runs do the same work. With 4 ranks on
a machine of fewer cores the ranks share them; say so with the numbers.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the model, its batches and eager PyTorch)

LAYOUTS = [("4x1", 4, 1), ("2x2", 2, 2), ("1x4", 1, 4)]  # name, pipeline ranks, replicas


def split(build, work, stages):
    out = os.path.join(work, "split_%d" % stages)
    p = subprocess.run([os.path.join(build, "ppc"), "split", os.path.join(work, "model.onnx"), "--stages",
                        str(stages), "--balance", "uniform", "-o", out],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("ppc split --stages %d failed:\n%s" % (stages, p.stdout))
    return out


def run(build, work, stages, dp, chunks, steps):
    cmd = [os.path.join(build, "pprun"), "--manifest", split(build, work, stages), "--nproc", "4", "--dp", str(dp),
           "--schedule", "1f1b" if stages > 1 else "gpipe", "--chunks", str(chunks), "--inputs",
           os.path.join(work, "batches"), "--steps", str(steps), "--train", "--loss", "mse", "--optimizer", "sgd",
           "--lr", str(train_step.LR), "--threads", "1"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(cmd), p.stdout[-2000:]))
    rows = re.findall(r"\[rank 0\] step \d+/\d+  loss ([0-9.eE+-]+)  samples/s [0-9.]+  step ([0-9.]+) ms", p.stdout)
    if len(rows) != steps:
        sys.exit("%s: %d step lines, expected %d:\n%s" % (" ".join(cmd), len(rows), steps, p.stdout[-2000:]))
    return [float(t) for _, t in rows], [float(l) for l, _ in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="the build folder holding ppc and pprun")
    ap.add_argument("--batch", type=int, default=256, help="global batch")
    ap.add_argument("--chunks", type=int, default=4, help="micro-batches per replica")
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--smoke", action="store_true", help="3 steps of batch 32, losses checked, no timings")
    a = ap.parse_args()
    if a.smoke:
        a.batch, a.steps = 32, 3
    work = tempfile.mkdtemp(prefix="ppc_dp_bench_")
    try:
        train_step.prepare(a.build, work, a.batch, 4, [], ["onnx"])
        eager_t, eager_l = train_step.run_eager(work, a.steps)
        results = {}
        for name, stages, dp in LAYOUTS:
            results[name] = run(a.build, work, stages, dp, a.chunks, a.steps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = []
    for name, (_, losses) in results.items():
        worst = max(abs(x - y) / max(1e-12, abs(y)) for x, y in zip(losses, eager_l))
        if worst > 1e-4:
            bad.append("%s: losses %s vs eager %s" % (name, losses[:3], eager_l[:3]))
    print("global batch %d, %d micro-batches per replica, %d steps (the first excluded), 4 ranks x 1 thread on %d "
          "cores" % (a.batch, a.chunks, a.steps, len(os.sched_getaffinity(0))))
    base = statistics.median(results["4x1"][0][1:])
    print("%-12s %12s %12s %10s   losses" % ("layout", "step ms", "samples/s", "vs 4x1"))
    for name, (times, losses) in list(results.items()) + [("eager", (eager_t, eager_l))]:
        med = statistics.median(times[1:])
        label = name if name != "eager" else "eager 1 proc"
        print("%-12s %12.2f %12.1f %9.2fx   %s" % (label, med, a.batch / med * 1e3, base / med,
                                                 ", ".join("%.6f" % x for x in losses[:3])))
    if bad:
        sys.exit("FAIL: the layouts do not do the same work as eager PyTorch:\n  " + "\n  ".join(bad))
    print("every layout's losses equal eager PyTorch's (1e-4 relative)")


if __name__ == "__main__":
    main()
