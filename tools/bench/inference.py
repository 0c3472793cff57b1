"""Inference, side by side: pprun's forward-only pipeline against torch.distributed.pipelining and eager PyTorch.

Usage:  .venv/bin/python tools/bench/inference.py [--build build-torch2] [--batch 256] [--chunks 8]
            [--steps 21] [--formats torchscript,onnx]
        .venv/bin/python tools/bench/inference.py --smoke      (outputs checked, no timings)

The model, weights and batches of tools/bench/train_step.py (16 x
(Linear(512, 512) + ReLU), imported from it), forward only:

  eager       the unsplit model in one process under torch.no_grad(), the
              whole batch at once, 1 intra-op thread, and again with 2
              (the threads of the two ranks below together);
  pipelining  torch.distributed.pipelining: 2 processes over Gloo, one
              PipelineStage of 8 blocks each, ScheduleGPipe without a loss
              function (forward only) stepped under torch.no_grad(), --chunks
              micro-batches, 1 intra-op thread each;
  pprun       the model traced (TorchScript) and exported to ONNX, split by
              ppc after blocks.7, run by pprun on 2 local ranks (Gloo)
              without --train (the schedule's forward actions only), GPipe,
              --chunks micro-batches, --threads 1.

Each reports its step time (one batch through the whole model: a step ends
when every rank has finished it) over --steps steps; the first is excluded
and the median of the rest is printed with samples/s, each as a ratio to
torch.distributed.pipelining's (> 1: faster). torch.distributed.pipelining's
ranks start each step together (a barrier) and the slowest one's time is the
step's; pprun's step is the span of the step's actions on all ranks in its
--trace (pprun aligns the ranks' clocks): the step time pprun logs is rank
0's, which in inference ends as soon as the last rank has taken its last
message, before that rank computes its last micro-batches.
The outputs of every implementation on the first batches are compared with
eager PyTorch's (1e-4 relative to the largest output value; pprun's through
--output in a separate short run, so that writing them does not count):
the script exits 1 where they differ. Run it with the machine otherwise
idle.

--smoke: batch 32, 4 micro-batches, 2 steps, both formats; outputs checked,
no timings (tests/CMakeLists.txt runs it as bench_inference_smoke).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the model, its batches, ppc split, free_port)
import torch  # noqa: E402

RANKS = 2
RTOL = 1e-4
TORCH_TIMEOUT_S = 300


def run_eager(work, steps, threads):
    torch.set_num_threads(threads)
    model = train_step.build_model().eval()
    files = train_step.batches(work)
    times, outs = [], []
    with torch.no_grad():
        for i in range(steps):
            x = torch.load(files[i % len(files)])["x"]
            t0 = time.perf_counter()
            y = model(x)
            times.append((time.perf_counter() - t0) * 1e3)
            if i < len(files):
                outs.append(y)
    torch.set_num_threads(1)
    return times, outs


def pipelining_rank(work, rank, port, chunks, steps, out):
    """One rank of torch.distributed.pipelining, forward only (run in its own process)."""
    import torch.distributed as dist
    import torch.distributed.pipelining as pipelining
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=RANKS)
    model = train_step.build_model().eval()
    per = train_step.BLOCKS // RANKS
    sub = model.blocks[rank * per:(rank + 1) * per]
    stage = pipelining.PipelineStage(sub, rank, RANKS, torch.device("cpu"))
    sched = pipelining.ScheduleGPipe(stage, chunks)  # no loss_fn: forward only
    files = train_step.batches(work)
    times, outs = [], []
    with torch.no_grad():
        for i in range(steps):
            x = torch.load(files[i % len(files)])["x"]
            dist.barrier()
            t0 = time.perf_counter()
            y = sched.step(x) if rank == 0 else sched.step()
            times.append((time.perf_counter() - t0) * 1e3)
            if rank == RANKS - 1 and i < len(files):
                outs.append(y)
    dist.barrier()
    dist.destroy_process_group()
    torch.save({"times": times, "outs": outs}, out)


def run_pipelining(work, chunks, steps):
    port = train_step.free_port()
    outs = [os.path.join(work, "pipelining_infer_%d.pt" % r) for r in range(RANKS)]
    logs = [os.path.join(work, "pipelining_infer_%d.log" % r) for r in range(RANKS)]
    procs = []
    for r in range(RANKS):
        with open(logs[r], "w") as log:
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pipelining-rank", str(r),
                                           "--port", str(port), "--work", work, "--chunks", str(chunks), "--steps",
                                           str(steps), "--out", outs[r]], stdout=log, stderr=subprocess.STDOUT))
    failed = train_step.wait_for_ranks(procs, TORCH_TIMEOUT_S)
    if failed:
        sys.exit("torch.distributed.pipelining (forward only) failed: %s\n%s"
                 % (failed, "".join(open(lg, errors="replace").read() for lg in logs)[-3000:]))
    res = [torch.load(o) for o in outs]
    # A step ends on every rank; the slowest one's time is the step's.
    return [max(ts) for ts in zip(*(r["times"] for r in res))], res[-1]["outs"]


def pprun_cmd(build, work, fmt, chunks, steps):
    return [os.path.join(build, "pprun"), "--manifest", os.path.join(work, "split_%s_2" % fmt), "--nproc",
            str(RANKS), "--schedule", "gpipe", "--chunks", str(chunks), "--inputs", os.path.join(work, "batches"),
            "--steps", str(steps), "--threads", "1"]


def trace_steps_ms(path, steps):
    """Each step's span in a pprun --trace: from the first action of the step on any rank to the end of its last
    (the ranks' clocks are aligned by pprun), in ms."""
    with open(path) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    span = {}
    for e in events:
        if e.get("ph") == "X" and "step" in e.get("args", {}):
            lo, hi = span.get(e["args"]["step"], (float("inf"), float("-inf")))
            span[e["args"]["step"]] = (min(lo, e["ts"]), max(hi, e["ts"] + e["dur"]))
    if sorted(span) != list(range(steps)):
        sys.exit("%s: trace events of steps %s, expected 0..%d" % (path, sorted(span), steps - 1))
    return [(span[i][1] - span[i][0]) / 1e3 for i in range(steps)]


def run_pprun(build, work, fmt, chunks, steps):
    """pprun's step times from its --trace (trace_steps_ms): rank 0's own step time, which pprun logs, ends when
    its last message is taken, before the last rank has computed the last micro-batches."""
    trace = os.path.join(work, "trace_%s.json" % fmt)
    cmd = pprun_cmd(build, work, fmt, chunks, steps) + ["--trace", trace]
    log = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(cmd), log.stdout[-2000:]))
    return trace_steps_ms(trace, steps)


def pprun_outputs(build, work, fmt, chunks, n):
    """pprun's outputs of the first n batches (a separate run with --output)."""
    out = os.path.join(work, "pprun_%s_out.pt" % fmt)
    cmd = pprun_cmd(build, work, fmt, chunks, n) + ["--output", out, "--quiet"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("%s failed:\n%s" % (" ".join(cmd), p.stdout[-2000:]))
    y = torch.load(out)
    return list(next(iter(y.values())).chunk(n))


def differs(outs, ref):
    """A line saying how `outs` differ from `ref` (lists of batches' outputs), or None."""
    if len(outs) != len(ref):
        return "%d batches of outputs, expected %d" % (len(outs), len(ref))
    for i, (a, b) in enumerate(zip(outs, ref)):
        if a.shape != b.shape:
            return "batch %d: shape %s, expected %s" % (i, tuple(a.shape), tuple(b.shape))
        err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-12)
        if err > RTOL:
            return "batch %d: largest difference %.3g of the largest value (> %g)" % (i, err, RTOL)
    return None


def main():
    ap = train_step.bench_arguments(__doc__.splitlines()[0])
    ap.add_argument("--formats", default="torchscript,onnx")
    ap.add_argument("--smoke", action="store_true", help="batch 32, 4 micro-batches, 2 steps: outputs, no timings")
    ap.add_argument("--pipelining-rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pipelining_rank is not None:
        return pipelining_rank(a.work, a.pipelining_rank, a.port, a.chunks, a.steps, a.out)
    if a.smoke:
        a.batch, a.chunks, a.steps, a.formats = 32, 4, 2, "torchscript,onnx"
    elif a.steps < 21:
        ap.error("--steps must be >= 21 (a median of >= 20, the first excluded)")
    formats = a.formats.split(",")
    for f in formats:
        if f not in ("torchscript", "onnx"):
            ap.error("unknown format %r; choose from torchscript, onnx" % f)
    work = tempfile.mkdtemp(prefix="ppc_bench_infer_")
    try:
        nb = min(a.steps, 4)
        train_step.prepare(a.build, work, a.batch, nb, {RANKS}, formats)
        print("inference: %d x (Linear(%d, %d) + ReLU), forward only, batch %d, %d micro-batches, %d ranks (2 stages "
              "of 8 blocks, GPipe); 1 intra-op thread per process; torch %s; %s"
              % (train_step.BLOCKS, train_step.WIDTH, train_step.WIDTH, a.batch, a.chunks, RANKS, torch.__version__,
                 "smoke: outputs only, no timings" if a.smoke else "%d steps, first excluded" % a.steps))
        eager1, ref = run_eager(work, a.steps, 1)
        rows = [("eager PyTorch, 1 process, 1 thread", eager1)]
        if not a.smoke:
            rows.append(("eager PyTorch, 1 process, 2 threads", run_eager(work, a.steps, 2)[0]))
        pipe_times, pipe_outs = run_pipelining(work, a.chunks, a.steps)
        rows.append(("torch.distributed.pipelining GPipe", pipe_times))
        checks = [("torch.distributed.pipelining", pipe_outs)]
        for fmt in formats:
            rows.append(("pprun, %s stages, GPipe" % fmt, run_pprun(a.build, work, fmt, a.chunks, a.steps)))
            checks.append(("pprun (%s stages)" % fmt, pprun_outputs(a.build, work, fmt, a.chunks, nb)))
        if not a.smoke:
            base = statistics.median(pipe_times[1:])
            print("%-40s %10s %10s %10s" % ("", "step ms", "samples/s", "vs pipe"))
            for name, times in rows:
                med = statistics.median(times[1:])
                print("%-40s %10.2f %10.0f %9.2fx" % (name, med, a.batch / med * 1e3, base / med))
            print("vs pipe: samples/s over torch.distributed.pipelining's (> 1: faster)")
        bad = [(name, why) for name, outs in checks for why in [differs(outs, ref[:nb])] if why]
        for name, why in bad:
            print("OUTPUTS DIFFER from eager PyTorch's: %s: %s" % (name, why))
        if bad:
            return 1
        print("outputs agree: %s, each within %g (relative to the largest value) of eager PyTorch's on %d batches"
              % (", ".join(name for name, _ in checks), RTOL, nb))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
