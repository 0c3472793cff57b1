"""Training step, side by side: pprun against torch.distributed.pipelining and eager PyTorch.

Usage:  .venv/bin/python tools/bench/train_step.py [--build build-torch2] [--batch 256]
            [--chunks 8] [--steps 21] [--schedules gpipe,1f1b] [--formats torchscript,onnx]

The model: 16 x (Linear(512, 512) + ReLU), random seeded weights, MSE loss
against a random target, SGD (lr 0.01). The same batches, the same weights
and the same optimizer everywhere:

  eager       the unsplit model in one process, full batch, 1 intra-op thread;
  pipelining  torch.distributed.pipelining: 2 processes over Gloo, each a
              PipelineStage of 8 blocks, ScheduleGPipe / Schedule1F1B with
              --chunks micro-batches, 1 intra-op thread each;
  pprun       the model traced (TorchScript) and exported to ONNX (the
              TorchScript-based exporter), split by ppc after block 7, run by
              pprun on 2 local ranks (Gloo), the same schedule and micro-batches,
              --threads 1.

Each reports its step time (forward, backward and optimizer step of one
batch) for --steps steps; the first is excluded (one-time costs) and the
median of the rest is printed with samples/s, each as a ratio to
torch.distributed.pipelining's with the same schedule (> 1: faster than it),
and the first three losses, to show the runs do the same work. Run it with
the machine otherwise idle; the numbers of one run are comparable with each
other, not with another machine's.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WIDTH, BLOCKS, LR = 512, 16, 0.01


class Net(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def forward(self, x):
        return self.blocks(x)


def build_model():
    """Net (forward argument "x", blocks.0 .. blocks.15) and its blocks."""
    torch.manual_seed(0)
    blocks = nn.Sequential(*[nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(BLOCKS)])
    return Net(blocks)


def batches(work):
    return sorted(os.path.join(work, "batches", f) for f in os.listdir(os.path.join(work, "batches")))


def run_eager(work, steps):
    torch.set_num_threads(1)
    model = build_model()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    files = batches(work)
    times, losses = [], []
    for i in range(steps):
        b = torch.load(files[i % len(files)])
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(b["x"]), b["target"])
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(loss.item())
    return times, losses


def pipelining_rank(work, rank, port, schedule, chunks, steps, out):
    """One rank of torch.distributed.pipelining (run in its own process)."""
    import torch.distributed as dist
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = build_model()
    half = BLOCKS // 2
    sub = model.blocks[:half] if rank == 0 else model.blocks[half:]
    stage = PipelineStage(sub, rank, 2, torch.device("cpu"))
    cls = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[schedule]
    sched = cls(stage, chunks, loss_fn=F.mse_loss)
    opt = torch.optim.SGD(sub.parameters(), lr=LR)
    files = batches(work)
    times, losses = [], []
    for i in range(steps):
        b = torch.load(files[i % len(files)])
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if rank == 0:
            sched.step(b["x"])
        else:
            mb = []
            sched.step(target=b["target"], losses=mb)
            losses.append(sum(x.item() for x in mb) / len(mb))
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump({"times": times, "losses": losses}, f)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_pipelining(work, schedule, chunks, steps):
    port = free_port()
    outs = [os.path.join(work, f"pipelining_{schedule}_{r}.json") for r in range(2)]
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pipelining-rank", str(r), "--port", str(port),
                               "--work", work, "--schedule", schedule, "--chunks", str(chunks), "--steps", str(steps),
                               "--out", outs[r]]) for r in range(2)]
    for p in procs:
        if p.wait() != 0:
            sys.exit("torch.distributed.pipelining (%s) failed" % schedule)
    r0, r1 = (json.load(open(o)) for o in outs)
    # A step ends on both ranks; the slower one's time is the step's.
    return [max(a, b) for a, b in zip(r0["times"], r1["times"])], r1["losses"]


def run_pprun(build, work, fmt, schedule, chunks, steps):
    split = os.path.join(work, "split_" + fmt)
    log = subprocess.run([os.path.join(build, "pprun"), "--manifest", split, "--nproc", "2", "--schedule", schedule,
                          "--chunks", str(chunks), "--inputs", os.path.join(work, "batches"), "--steps", str(steps),
                          "--train", "--loss", "mse", "--optimizer", "sgd", "--lr", str(LR), "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log.returncode != 0:
        sys.exit("pprun failed:\n" + log.stdout[-2000:])
    rows = re.findall(r"\[rank 0\] step \d+/\d+  loss ([0-9.eE+-]+)  samples/s [0-9.]+  step ([0-9.]+) ms", log.stdout)
    return [float(t) for _, t in rows], [float(l) for l, _ in rows]


def prepare(build, work, batch, nbatches):
    os.makedirs(os.path.join(work, "batches"))
    g = torch.Generator().manual_seed(1)
    for i in range(nbatches):
        torch.save({"x": torch.randn(batch, WIDTH, generator=g), "target": torch.randn(batch, WIDTH, generator=g)},
                   os.path.join(work, "batches", "batch_%03d.pt" % i))
    model = build_model().eval()
    x = torch.randn(2, WIDTH)
    spec = os.path.join(work, "spec.json")
    with open(spec, "w") as f:
        json.dump({"version": 1, "split_points": [{"module": "blocks.%d" % (BLOCKS // 2 - 1), "at": "end"}]}, f)
    with torch.no_grad():
        torch.jit.trace(model, x).save(os.path.join(work, "model.pt"))
        kw = {"dynamo": False} if torch.__version__ >= "2" else {}
        torch.onnx.export(model, (x,), os.path.join(work, "model.onnx"), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, **kw)
    for fmt, path in (("torchscript", "model.pt"), ("onnx", "model.onnx")):
        p = subprocess.run([os.path.join(build, "ppc"), "split", os.path.join(work, path), "--splits", spec, "-o",
                            os.path.join(work, "split_" + fmt)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            sys.exit("ppc split failed:\n" + p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-torch2"))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--schedules", default="gpipe,1f1b")
    ap.add_argument("--formats", default="torchscript,onnx")
    ap.add_argument("--pipelining-rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--schedule", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pipelining_rank is not None:
        return pipelining_rank(a.work, a.pipelining_rank, a.port, a.schedule, a.chunks, a.steps, a.out)
    if a.steps < 3:
        ap.error("--steps must be >= 3 (the first is excluded)")
    work = tempfile.mkdtemp(prefix="ppc_bench_")
    try:
        prepare(a.build, work, a.batch, min(a.steps, 4))
        print("train step: %d x (Linear(%d, %d) + ReLU), batch %d, %d micro-batches, SGD, 2 stages of 8 blocks; "
              "1 intra-op thread per process; torch %s; %d steps, first excluded"
              % (BLOCKS, WIDTH, WIDTH, a.batch, a.chunks, torch.__version__, a.steps))
        results = [("eager (1 process)", "-") + run_eager(work, a.steps)]
        for sched in a.schedules.split(","):
            results.append(("torch.distributed.pipelining", sched) + run_pipelining(work, sched, a.chunks, a.steps))
            for fmt in a.formats.split(","):
                results.append(("pprun (%s stages)" % fmt, sched) + run_pprun(a.build, work, fmt, sched, a.chunks, a.steps))
        base = {r[1]: statistics.median(r[2][1:]) for r in results if r[0].startswith("torch.distributed")}
        print("%-30s %-6s %10s %10s %10s  %s" % ("", "sched", "step ms", "samples/s", "vs pipe", "losses (first 3)"))
        for name, sched, times, losses in results:
            med = statistics.median(times[1:])
            ref = base.get(sched, base.get(next(iter(base))))
            print("%-30s %-6s %10.2f %10.0f %9.2fx  %s" % (name, sched, med, a.batch / med * 1e3, ref / med,
                                                          " ".join("%.6f" % l for l in losses[:3])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
