"""Activation memory per rank: each schedule's measured peak against the simulator's theory.

Usage:  .venv/bin/python tools/bench/activation_memory.py [--build build-torch2] [--batch 2048] [--chunks 8]
        .venv/bin/python tools/bench/activation_memory.py --smoke      (small batch, checks it runs)

The model of tools/bench/train_step.py (16 x (Linear(512, 512) + ReLU)), exported to ONNX and split by
ppc into 4 stages of 4 blocks. Each schedule trains 3 steps (MSE, SGD without momentum) with --chunks
micro-batches and --threads 1, with --trace --trace-memory, whose counters sample each rank's heap in use (glibc's
allocated bytes: with pprun's malloc settings every tensor lives there) at the end of every action:

  gpipe, 1f1b, zb-h1   4 ranks, stage s on rank s
  zb-v                 2 ranks, rank r holds stages r and 3-r

Measured: in the last step, the rank's largest sample minus its first (the heap as the step begins:
parameters, optimizer state, buffers). Theory: `pprun --simulate` gives each rank's peak number of
(stage, micro-batch) pairs between their forward and the end of their backward (W for the zero-bubble
schedules); each holds one stage's saved activations, the stage's input and each block's Relu output,
[micro-batch, 512] floats (the next block's MatMul saves that same tensor). Besides, a tensor pprun
sends is held until the engine knows it arrived (a Gloo send completes only once the receiver posted
its receive, and cannot be polled): until a later message from that peer, which the schedule says the
peer sent after receiving it; theory counts one message per remote edge (a GPipe rank's gradients to
its producer, which sends nothing after its forwards, are held to the step's end: up to one per
micro-batch). And the stages' parameter gradients. The script prints the parts, their sum and the
ratio of the measured peak to it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the model and its batches)

SCHEDULES = [("gpipe", 4), ("1f1b", 4), ("zb-h1", 4), ("zb-v", 2)]  # name, ranks
STAGES, BLOCKS, WIDTH = 4, train_step.BLOCKS, train_step.WIDTH


def peak_heap_mb(build, split, ranks, args, work):
    """Each rank's largest heap sample in the last step minus its first (MiB), from pprun's trace."""
    trace = os.path.join(work, "trace.json")
    p = subprocess.run([os.path.join(build, "pprun"), "--manifest", split, "--nproc", str(ranks), "--threads", "1",
                        "--quiet", "--trace", trace, "--trace-memory"] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        sys.exit("pprun %s failed:\n%s" % (" ".join(args), p.stdout[-2000:]))
    samples = [e for e in json.load(open(trace))["traceEvents"] if e.get("ph") == "C"]
    last = max(e["args"]["step"] for e in samples)
    out = []
    for r in range(ranks):
        mine = sorted((e["ts"], e["args"]["MiB"]) for e in samples
                      if e["name"] == "heap MiB rank %d" % r and e["args"]["step"] == last)
        out.append(max(v for _, v in mine) - mine[0][1])
    return out


def theory(build, split, schedule, ranks, chunks):
    p = subprocess.run([os.path.join(build, "pprun"), "--manifest", split, "--simulate", "--schedule", schedule,
                        "--world-size", str(ranks), "--chunks", str(chunks)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("pprun --simulate --schedule %s failed:\n%s" % (schedule, p.stdout))
    peaks = [int(n) for n in re.findall(r"^rank \d+: busy .*, peak in flight (\d+)$", p.stdout, re.M)]
    if len(peaks) != ranks:
        sys.exit("pprun --simulate printed %d ranks, expected %d:\n%s" % (len(peaks), ranks, p.stdout))
    return peaks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(train_step.ROOT, "build-torch2"))
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--smoke", action="store_true", help="batch 64: checks that every run works, no claims")
    a = ap.parse_args()
    if a.smoke:
        a.batch = 64
    micro = a.batch // a.chunks
    tensor = micro * WIDTH * 4 / 2**20  # MiB of one [micro-batch, 512] float tensor
    per_mb_stage = (BLOCKS // STAGES + 1) * tensor  # one stage's saved activations for one micro-batch
    grads = (BLOCKS // STAGES) * (WIDTH * WIDTH + WIDTH) * 4 / 2**20  # MiB of one stage's parameter gradients
    work = tempfile.mkdtemp(prefix="ppc_mem_bench_")
    try:
        train_step.prepare(a.build, work, a.batch, 1, {STAGES}, ["onnx"])
        split = os.path.join(work, "split_onnx_%d" % STAGES)
        common = ["--chunks", str(a.chunks), "--inputs", os.path.join(work, "batches"), "--steps", "3", "--train",
                  "--loss", "mse", "--lr", "0.01"]
        print("activation memory: %d x (Linear(%d, %d) + ReLU) in %d stages, batch %d, %d micro-batches of %d; "
              "one stage's activations per micro-batch %.2f MiB, a message %.2f MiB, a stage's gradients %.2f MiB; "
              "1 thread per rank" % (BLOCKS, WIDTH, WIDTH, STAGES, a.batch, a.chunks, micro, per_mb_stage, tensor,
                                     grads))
        print("%-8s %4s %9s %15s %10s %10s %11s %13s %7s" % ("schedule", "rank", "in flight", "activations MiB",
                                                             "sends MiB", "grads MiB", "theory MiB", "measured MiB",
                                                             "ratio"))
        for schedule, ranks in SCHEDULES:
            held = theory(a.build, split, schedule, ranks, a.chunks)
            got = peak_heap_mb(a.build, split, ranks, ["--schedule", schedule] + common, work)
            for r in range(ranks):
                mine = [r, STAGES - 1 - r] if schedule == "zb-v" else list(range(r, STAGES, ranks))
                place = {s: (min(s, STAGES - 1 - s) if schedule == "zb-v" else s % ranks) for s in range(STAGES)}
                remote = sum((s > 0 and place[s - 1] != place[s]) + (s < STAGES - 1 and place[s + 1] != place[s])
                             for s in mine)
                acts, sends, g = held[r] * per_mb_stage, remote * tensor, len(mine) * grads
                want = acts + sends + g
                print("%-8s %4d %9d %15.1f %10.1f %10.1f %11.1f %13.1f %6.2fx" % (schedule, r, held[r], acts, sends, g,
                                                                                 want, got[r], got[r] / want))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
