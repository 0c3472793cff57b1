"""The simulator's predicted step against the measured one, for the training-step benchmark's rows.

Usage:  .venv/bin/python tools/bench/sim_accuracy.py [--build build-torch2] [--batch 256] [--chunks 8]
            [--steps 21] [--schedules all]
        .venv/bin/python tools/bench/sim_accuracy.py --smoke      (small batch, few steps, no claims)

The model, batches, splits and settings of tools/bench/train_step.py (16 x (Linear(512, 512) + ReLU),
ONNX stages, 2 ranks, MSE, SGD, --threads 1). For each split (2 stages of 8 blocks; 4 stages of 4
blocks, two per rank) and each kind of backward (one B pass, or I and W passes apart) one schedule is
measured with `pprun --profile` (the calibration run: each stage's F, B, I and W milliseconds per
micro-batch, the messages' cost and the time outside the pipeline): 1f1b and zb-h1 for the 2-stage
split, interleaved-1f1b and interleaved-zb for the 4-stage one. Then every schedule is

  predicted  by `pprun --simulate --costs CALIBRATION --schedule S`: the simulated step (makespan)
             plus the calibration run's time outside the pipeline, and
  measured   by running it: the median step of --steps steps, the first excluded,

and the script prints predicted / measured. A calibration schedule's own row checks the fit (and
shows the noise between two runs of one schedule); gpipe, zb-v and dualpipev are predictions of
schedules that were not measured. --cross-kind calibrates every schedule of a split on one profile
(1f1b, interleaved-zb) instead: the B of a split-backward schedule is then I + W of a fused B split
by the simulator's default, and the reverse.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the model, its batches and its splits)

# (stages, backward split into I and W): the schedule whose profile predicts the others of its kind.
CALIBRATE = {(2, False): "1f1b", (2, True): "zb-h1", (4, False): "interleaved-1f1b", (4, True): "interleaved-zb"}
SPLIT_BACKWARD = {"zb-h1", "interleaved-zb", "zb-v", "dualpipev"}


def pprun(build, args):
    p = subprocess.run([os.path.join(build, "pprun")] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if p.returncode != 0:
        sys.exit("pprun %s failed:\n%s" % (" ".join(args), p.stdout[-2000:]))
    return p.stdout


def train(build, work, split, schedule, chunks, steps, profile=None):
    """The median step (ms) of a training run, the first step excluded."""
    args = ["--manifest", split, "--nproc", str(train_step.RANKS), "--schedule", schedule, "--chunks", str(chunks),
            "--inputs", os.path.join(work, "batches"), "--steps", str(steps), "--train", "--loss", "mse",
            "--optimizer", "sgd", "--lr", str(train_step.LR), "--threads", "1"]
    if profile:
        args += ["--profile", profile]
    log = pprun(build, args)
    times = [float(t) for t in re.findall(r"\[rank 0\] step \d+/\d+  loss \S+  samples/s \S+  step ([0-9.]+) ms", log)]
    if len(times) != steps:
        sys.exit("pprun --schedule %s: %d step lines, expected %d:\n%s" % (schedule, len(times), steps, log[-2000:]))
    return statistics.median(times[1:])


def predict(build, split, schedule, chunks, profile):
    """The simulated step (ms) of `schedule` from a profile: makespan plus the time outside the pipeline."""
    out = pprun(build, ["--manifest", split, "--simulate", "--costs", profile, "--schedule", schedule,
                        "--world-size", str(train_step.RANKS), "--chunks", str(chunks)])
    m = re.search(r"^makespan ([0-9.eE+-]+)", out, re.M)
    if not m:
        sys.exit("pprun --simulate --schedule %s printed no makespan:\n%s" % (schedule, out))
    return float(m.group(1)) + json.load(open(profile)).get("overhead_ms", 0.0)


def main():
    ap = train_step.bench_arguments(__doc__.splitlines()[0])
    ap.add_argument("--schedules", default="all", help="comma-separated, or all: " + ",".join(train_step.SCHEDULES))
    ap.add_argument("--cross-kind", action="store_true", help="one calibration run per split (see above)")
    ap.add_argument("--smoke", action="store_true", help="batch 32, 4 micro-batches, 3 steps: checks that it runs")
    a = ap.parse_args()
    if a.smoke:
        a.batch, a.chunks, a.steps = 32, 4, 3
    names = list(train_step.SCHEDULES) if a.schedules == "all" else a.schedules.split(",")
    for n in names:
        if n not in train_step.SCHEDULES:
            sys.exit("unknown schedule %r (known: %s)" % (n, ", ".join(train_step.SCHEDULES)))
    by_stages = {}
    for n in names:
        by_stages.setdefault(train_step.SCHEDULES[n][0], []).append(n)
    work = tempfile.mkdtemp(prefix="ppc_sim_bench_")
    try:
        train_step.prepare(a.build, work, a.batch, 4, set(by_stages), ["onnx"])
        print("simulator accuracy: %d x (Linear(%d, %d) + ReLU), ONNX stages, batch %d, %d micro-batches, %d ranks, "
              "1 thread per rank, median of %d steps (first excluded)" % (train_step.BLOCKS, train_step.WIDTH,
                                                                           train_step.WIDTH, a.batch, a.chunks,
                                                                           train_step.RANKS, a.steps - 1))
        print("%-17s %6s %-17s %13s %12s %10s" % ("schedule", "stages", "calibrated on", "predicted ms", "measured ms",
                                                  "pred/meas"))
        worst = 0.0
        profiles = {}
        for stages in sorted(by_stages):
            split = os.path.join(work, "split_onnx_%d" % stages)
            for schedule in by_stages[stages]:
                ref = CALIBRATE[(stages, stages == 4 if a.cross_kind else schedule in SPLIT_BACKWARD)]
                profile = os.path.join(work, "profile_%s.json" % ref)
                if ref not in profiles:
                    train(a.build, work, split, ref, a.chunks, a.steps, profile)
                    profiles[ref] = profile
                want = predict(a.build, split, schedule, a.chunks, profile)
                got = train(a.build, work, split, schedule, a.chunks, a.steps)
                worst = max(worst, abs(want / got - 1))
                print("%-17s %6d %-17s %13.2f %12.2f %9.2fx" % (schedule, stages, ref, want, got, want / got))
        print("largest deviation: %.1f%%" % (100 * worst))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
