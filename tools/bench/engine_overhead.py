"""Engine overhead: time per schedule action of a no-op pipeline, pprun against torch.distributed.pipelining.

Usage:  .venv/bin/python tools/bench/engine_overhead.py [--build build-torch2] [--chunks 32] [--steps 51]
            [--formats torchscript,onnx]
        .venv/bin/python tools/bench/engine_overhead.py --smoke      (losses checked, no timings)

A model whose stages do next to nothing: 4 blocks, each multiplying its input
by a parameter vector of 8 ones (x * w: one elementwise op forward, two
backward), on a batch of --chunks rows of 8 floats, so that every micro-batch
is one row (32 bytes on the wire). ppc splits it after blocks.1 into 2 stages
of 2 blocks on 2 ranks (Gloo on 127.0.0.1), 1 intra-op thread per process.
Three runs of each implementation, with the same micro-batches:

  gpipe, training    forward, backward (MSE loss) and SGD step of a batch
  1f1b, training     the same, 1F1B
  gpipe, inference   forward only (torch: the schedule without a loss
                     function, stepped under torch.no_grad(); pprun: no --train)

pprun runs its TorchScript and ONNX stages; torch.distributed.pipelining runs
ScheduleGPipe / Schedule1F1B with one PipelineStage per rank. The step time
(median of --steps steps, the first excluded; a step ends when every rank has
finished it: torch's ranks start each step together and the slowest one's
time counts, pprun's step is the span of its actions on all ranks in its
--trace, whose recording is then part of pprun's time) is divided by the number of actions of the rank with the most:
pprun's lowered schedule (pprun --print-schedule), per micro-batch F, SEND_F,
RECV_B and B on rank 0 when training (F and SEND_F for inference), the same
work torch's schedule does for the same schedule. What the stages compute is
in that time, and so are the messages; the script prints eager PyTorch's time
for one stage's forward and backward of one micro-batch beside it, so that
what is left is visibly the runtime's own. For pprun it also splits the
step from its trace: the time between the end of one action and the start
of the next on the busiest rank (the engine's own work, outside compute and
the wire) and the time in compute actions, each per action. "vs pipe" is
torch.distributed.pipelining's time per action over the row's (> 1: less
overhead). The training runs' losses (first three steps) must agree with
torch.distributed.pipelining's within 1e-4 relative: the script exits 1
otherwise. Run it with the machine otherwise idle.

--smoke: 4 micro-batches, 3 steps, every run and format; losses checked, no
timings (tests/CMakeLists.txt runs it as bench_engine_overhead_smoke).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inference  # noqa: E402  (pprun's step times from its trace)
import train_step  # noqa: E402  (free_port, batches)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

WIDTH, BLOCKS, RANKS, LR, RTOL = 8, 4, 2, 0.01, 1e-4
RUNS = [("gpipe", True, "ScheduleGPipe"), ("1f1b", True, "Schedule1F1B"), ("gpipe", False, "ScheduleGPipe")]
TORCH_TIMEOUT_S = 300


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(WIDTH))

    def forward(self, x):
        return x * self.w


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(*[Scale() for _ in range(BLOCKS)])

    def forward(self, x):
        return self.blocks(x)


def run_name(sched, train):
    return "%s, %s" % (sched, "training" if train else "inference")


def prepare(build, work, chunks, nbatches, formats):
    os.makedirs(os.path.join(work, "batches"))
    g = torch.Generator().manual_seed(1)
    for i in range(nbatches):
        torch.save({"x": torch.randn(chunks, WIDTH, generator=g), "target": torch.randn(chunks, WIDTH, generator=g)},
                   os.path.join(work, "batches", "batch_%03d.pt" % i))
    model, x = Net().eval(), torch.randn(2, WIDTH)
    with torch.no_grad():
        torch.jit.trace(model, x).save(os.path.join(work, "model.pt"))
        torch.onnx.export(model, (x,), os.path.join(work, "model.onnx"), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
    spec = os.path.join(work, "spec.json")
    with open(spec, "w") as f:
        json.dump({"version": 1, "split_points": [{"module": "blocks.%d" % (BLOCKS // 2 - 1), "at": "end"}]}, f)
    for fmt in formats:
        src = os.path.join(work, {"torchscript": "model.pt", "onnx": "model.onnx"}[fmt])
        p = subprocess.run([os.path.join(build, "ppc"), "split", src, "--splits", spec, "-o",
                            os.path.join(work, "split_" + fmt)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if p.returncode != 0:
            sys.exit("ppc split failed:\n" + p.stdout)


def eager_stage_us(reps=500):
    """Eager PyTorch, 1 thread: one stage's (2 blocks) forward, and forward + backward, of one micro-batch, in us."""
    torch.set_num_threads(1)
    stage, x = Net().blocks[:BLOCKS // 2], torch.randn(1, WIDTH, requires_grad=True)
    fwd, both = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        y = stage(x)
        t1 = time.perf_counter()
        y.backward(torch.ones_like(y))
        t2 = time.perf_counter()
        fwd.append((t1 - t0) * 1e6)
        both.append((t2 - t0) * 1e6)
    return statistics.median(fwd[1:]), statistics.median(both[1:])


def pipelining_rank(work, rank, port, sched_name, train, chunks, steps, out):
    """One rank of torch.distributed.pipelining (run in its own process)."""
    import torch.distributed as dist
    import torch.distributed.pipelining as pipelining
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=RANKS)
    per = BLOCKS // RANKS
    sub = Net().blocks[rank * per:(rank + 1) * per]
    stage = pipelining.PipelineStage(sub, rank, RANKS, torch.device("cpu"))
    cls = getattr(pipelining, sched_name)
    sched = cls(stage, chunks, loss_fn=F.mse_loss) if train else cls(stage, chunks)
    opt = torch.optim.SGD(sub.parameters(), lr=LR)
    files = train_step.batches(work)
    times, losses = [], []
    for i in range(steps):
        b = torch.load(files[i % len(files)])
        args = (b["x"],) if rank == 0 else ()
        mb = []
        kw = {"target": b["target"], "losses": mb} if train and rank == RANKS - 1 else {}
        dist.barrier()
        t0 = time.perf_counter()
        if train:
            opt.zero_grad(set_to_none=True)
            sched.step(*args, **kw)
            opt.step()
        else:
            with torch.no_grad():
                sched.step(*args)
        times.append((time.perf_counter() - t0) * 1e3)
        if mb:
            losses.append(sum(x.item() for x in mb) / len(mb))
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump({"times": times, "losses": losses}, f)


def run_pipelining(work, sched_name, train, chunks, steps):
    port = train_step.free_port()
    tag = "%s_%s" % (sched_name, "train" if train else "infer")
    outs = [os.path.join(work, "pipelining_%s_%d.json" % (tag, r)) for r in range(RANKS)]
    logs = [os.path.join(work, "pipelining_%s_%d.log" % (tag, r)) for r in range(RANKS)]
    procs = []
    for r in range(RANKS):
        with open(logs[r], "w") as log:
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pipelining-rank", str(r),
                                           "--port", str(port), "--work", work, "--torch-schedule", sched_name,
                                           "--chunks", str(chunks), "--steps", str(steps), "--out", outs[r]]
                                          + (["--train"] if train else []), stdout=log, stderr=subprocess.STDOUT))
    failed = train_step.wait_for_ranks(procs, TORCH_TIMEOUT_S)
    if failed:
        sys.exit("torch.distributed.pipelining %s failed: %s\n%s"
                 % (sched_name, failed, "".join(open(lg, errors="replace").read() for lg in logs)[-3000:]))
    res = [json.load(open(o)) for o in outs]
    return [max(ts) for ts in zip(*(r["times"] for r in res))], res[-1]["losses"]


def pprun_base(build, work, fmt, sched, train, chunks):
    return ([os.path.join(build, "pprun"), "--manifest", os.path.join(work, "split_" + fmt), "--nproc", str(RANKS),
             "--schedule", sched, "--chunks", str(chunks), "--threads", "1"]
            + (["--train", "--loss", "mse", "--optimizer", "sgd", "--lr", str(LR)] if train else []))


def actions_per_rank(build, work, sched, train, chunks):
    """The most actions any rank has in pprun's lowered schedule."""
    cmd = pprun_base(build, work, "onnx", sched, train, chunks) + ["--print-schedule"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = re.findall(r"^rank \d+: (.*)$", p.stdout, re.M)
    if p.returncode != 0 or len(lines) != RANKS:
        sys.exit("%s failed:\n%s" % (" ".join(cmd), p.stdout[-2000:]))
    return max(len(ln.split()) for ln in lines)


def trace_breakdown(path, steps, n):
    """From a pprun --trace: per action, the time of the rank with the most between the end of one traced action
    and the start of the next (the engine's own work: choosing, posting and bookkeeping), and in compute actions
    (F, B, I, W); each the median over the steps after the first, in us."""
    with open(path) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    per = {}
    for e in events:
        if e.get("ph") == "X" and "step" in e.get("args", {}):
            per.setdefault((e["args"]["step"], e["tid"]), []).append(e)
    gaps, compute = [], []
    for step in range(1, steps):
        g = c = 0.0
        for (st, _), evs in per.items():
            if st != step:
                continue
            evs.sort(key=lambda e: e["ts"])
            g = max(g, sum(max(0.0, b["ts"] - a["ts"] - a["dur"]) for a, b in zip(evs, evs[1:])))
            c = max(c, sum(e["dur"] for e in evs if e.get("cat") in ("F", "B", "I", "W")))
        gaps.append(g / n)
        compute.append(c / n)
    return statistics.median(gaps), statistics.median(compute)


def run_pprun(build, work, fmt, sched, train, chunks, steps, n):
    """(step times from pprun's --trace, as inference.trace_steps_ms reads them; losses from its log)."""
    trace = os.path.join(work, "trace.json")
    cmd = pprun_base(build, work, fmt, sched, train, chunks) + ["--inputs", os.path.join(work, "batches"), "--steps",
                                                                  str(steps), "--trace", trace]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(cmd), p.stdout[-2000:]))
    rows = re.findall(r"\[rank 0\] step \d+/\d+(?:  loss ([0-9.eE+-]+))?  samples/s [0-9.]+  step ([0-9.]+) ms",
                      p.stdout)
    if len(rows) != steps:
        sys.exit("%s: %d step lines, expected %d:\n%s" % (" ".join(cmd), len(rows), steps, p.stdout[-2000:]))
    return inference.trace_steps_ms(trace, steps), [float(l) for l, _ in rows if l], trace_breakdown(trace, steps, n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(train_step.ROOT, "build-torch2"))
    ap.add_argument("--chunks", type=int, default=32)
    ap.add_argument("--steps", type=int, default=51)
    ap.add_argument("--formats", default="torchscript,onnx")
    ap.add_argument("--smoke", action="store_true", help="4 micro-batches, 3 steps: losses checked, no timings")
    ap.add_argument("--pipelining-rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--torch-schedule", help=argparse.SUPPRESS)
    ap.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pipelining_rank is not None:
        return pipelining_rank(a.work, a.pipelining_rank, a.port, a.torch_schedule, a.train, a.chunks, a.steps, a.out)
    if a.smoke:
        a.chunks, a.steps, a.formats = 4, 3, "torchscript,onnx"
    elif a.steps < 21:
        ap.error("--steps must be >= 21 (a median of >= 20, the first excluded)")
    formats = a.formats.split(",")
    for f in formats:
        if f not in ("torchscript", "onnx"):
            ap.error("unknown format %r; choose from torchscript, onnx" % f)
    work = tempfile.mkdtemp(prefix="ppc_bench_overhead_")
    try:
        prepare(a.build, work, a.chunks, min(a.steps, 4), formats)
        print("engine overhead: %d blocks of x * w (%d floats), 2 stages of 2 blocks on %d ranks, %d micro-batches of "
              "1 row; 1 intra-op thread per process; torch %s; %s"
              % (BLOCKS, WIDTH, RANKS, a.chunks, torch.__version__, "smoke: losses only, no timings" if a.smoke
                 else "%d steps, first excluded" % a.steps))
        results, bad = [], []
        for sched, train, cls in RUNS:
            n = actions_per_rank(a.build, work, sched, train, a.chunks)
            times, ref = run_pipelining(work, cls, train, a.chunks, a.steps)
            results.append((run_name(sched, train), "torch.distributed.pipelining", n, times, None))
            for fmt in formats:
                t, losses, parts = run_pprun(a.build, work, fmt, sched, train, a.chunks, a.steps, n)
                results.append((run_name(sched, train), "pprun, %s stages" % fmt, n, t, parts))
                for i in range(min(3, len(ref)) if train else 0):
                    if i >= len(losses) or train_step.rel(losses[i], ref[i]) > RTOL:
                        bad.append("%s %s step %d: loss %s, torch.distributed.pipelining %.7g"
                                   % (run_name(sched, train), fmt, i + 1, losses[i] if i < len(losses) else "-",
                                      ref[i]))
        if not a.smoke:
            f_us, fb_us = eager_stage_us()
            print("%-20s %-30s %8s %10s %10s %8s %12s %12s" % ("run", "implementation", "actions", "step ms",
                                                                "us/action", "vs pipe", "engine us/a", "compute us/a"))
            base = {}
            for run, impl, n, times, parts in results:
                per = statistics.median(times[1:]) * 1e3 / n
                base.setdefault(run, per)
                extra = "%12.1f %12.1f" % parts if parts else "%12s %12s" % ("-", "-")
                print("%-20s %-30s %8d %10.3f %10.1f %7.2fx %s" % (run, impl, n, per * n / 1e3, per, base[run] / per,
                                                                  extra))
            print("actions: the most of any rank in pprun's lowered schedule (compute, SEND, RECV); us/action: step "
                  "time / actions; vs pipe: torch.distributed.pipelining's us/action over the row's (> 1: less); "
                  "pprun's trace, per action, on its busiest rank: engine us/a, the time between one action's end and "
                  "the next one's start, compute us/a, the time in F and B (the rest of us/action: waiting for "
                  "messages)")
            print("eager PyTorch, 1 thread, one stage (2 blocks), one micro-batch: forward %.1f us, forward + backward "
                  "%.1f us" % (f_us, fb_us))
        for line in bad:
            print("LOSSES DISAGREE: " + line)
        if bad:
            return 1
        print("losses agree: every pprun training run within %g relative of torch.distributed.pipelining's, first "
              "three steps" % RTOL)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
