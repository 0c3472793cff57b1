#!/usr/bin/env python3
"""The GPU check of pprun --device cuda, on a machine with a CUDA GPU and PyTorch 2.11.

Usage (from the project root, after bash tools/gpu/bundle.sh on the build machine):
  python3 tools/gpu/check.py [--bundle gpu-bundle] [--steps 21]

It runs gpu-bundle/bin/pprun and ppc (built against the same LibTorch, found here through this
machine's torch package), splits the samples (mlp, skip, tinygpt, convnet) in every stage format
(ONNX, .pt2, TorchScript) and checks for each:
  - inference: the model outputs with --device cuda equal those with --device cpu;
  - training: the parameters after 3 steps of SGD with momentum (1F1B, 2 micro-batches, saved after
    every step, as many ranks as stages, all sharing the GPU) equal the CPU run's;
then times one training step of the balanced 16 x (Linear(512, 512) + ReLU) model of
tools/bench/train_step.py, its 2 stages on one rank and one GPU (looped BFS, 8 micro-batches), against eager
PyTorch on the same GPU with the same weights, batch and optimizer: step times (median of the steps
after the first) and the first losses of both, which must agree.
Prints one line per check and exits 1 when any check fails.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
import train_step  # noqa: E402  (the benchmark's model: WIDTH, BLOCKS, LR, build_model, export_dense)

LOSS = {"mlp": "mse", "skip": "mse", "tinygpt": "cross_entropy", "convnet": "cross_entropy"}
# CPU against GPU: float32 kernels sum in other orders; cuDNN's convolutions use TF32 by default.
TOLERANCE = {"mlp": 1e-4, "skip": 1e-4, "tinygpt": 1e-4, "convnet": 5e-3}


def prepare(runner, work):
    """The samples split in every format with their batches (work/cases), the benchmark model exported
    and split (work/bench/blocks.{onnx,pt2}.split: ONNX where this machine's PyTorch can export it)."""
    cases = os.path.join(work, "cases")
    for sample in LOSS:
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "e2e", "make_batches.py"), sample,
                        os.path.join(cases, sample + ".batches"), "--batches", "2", "--batch-size", "8", "--seed",
                        "7"], check=True, stdout=subprocess.DEVNULL)
        model = {"onnx": sample + ".onnx", "pt2": sample + ".pt2", "torchscript": sample + "_traced.pt"}
        for fmt, name in model.items():
            runner.ppc(["split", os.path.join(ROOT, "samples", sample, name), "--splits",
                        os.path.join(ROOT, "samples", sample, "spec.json"), "-o",
                        os.path.join(cases, "%s.%s" % (sample, fmt))])
    bench = os.path.join(work, "bench")
    os.makedirs(bench)
    model = train_step.build_model()
    try:
        train_step.export_dense(model, bench, ["pt2"], train_step.WIDTH)
    except Exception as e:  # noqa: BLE001  (the ONNX exporter's dependencies may be missing here)
        print("note: the ONNX export failed (%s): .pt2 only" % str(e).splitlines()[0])
        ep = torch.export.export(model, (torch.randn(2, train_step.WIDTH),),
                                 dynamic_shapes={"x": {0: torch.export.Dim("batch", max=1 << 16)}}, strict=False)
        torch.export.save(ep, os.path.join(bench, "model.pt2"))
    for fmt in ("onnx", "pt2"):
        if os.path.exists(os.path.join(bench, "model." + fmt)):
            runner.ppc(["split", os.path.join(bench, "model." + fmt), "--stages", "2", "-o",
                        os.path.join(bench, "blocks.%s.split" % fmt)])
    g = torch.Generator().manual_seed(11)
    for batch in (1024, 8192):
        x = torch.randn(batch, train_step.WIDTH, generator=g)
        torch.save({"x": x, "target": torch.randn(batch, train_step.WIDTH, generator=g)},
                   os.path.join(bench, "batch_%d.pt" % batch))


class Runner:
    def __init__(self, bundle, bin_dir=None, preload=None):
        bin_dir = os.path.abspath(bin_dir or os.path.join(bundle, "bin"))
        self.pprun = os.path.join(bin_dir, "pprun")
        self.ppc_bin = os.path.join(bin_dir, "ppc")
        torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
        self.env = dict(os.environ)
        libs = os.path.join(bundle, "lib")
        self.env["LD_LIBRARY_PATH"] = ":".join(
            p for p in [libs if os.path.isdir(libs) else "", torch_lib, os.environ.get("LD_LIBRARY_PATH", "")] if p)
        self.pprun_env = dict(self.env)
        if preload:
            self.pprun_env["LD_PRELOAD"] = os.path.abspath(preload)

    def ppc(self, args):
        r = subprocess.run([self.ppc_bin] + args, env=self.env, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("ppc %s: exit %d\n%s" % (" ".join(args), r.returncode, r.stderr[-2000:]))

    def run(self, args, timeout=600):
        r = subprocess.run([self.pprun] + args, env=self.pprun_env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("pprun %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout[-2000:],
                                                            r.stderr[-2000:]))
        return r.stdout


def max_rel_diff(a, b):
    """Largest |a - b| over the dict's tensors, relative to the largest |a| (1 at least)."""
    worst = 0.0
    for k in a:
        x, y = a[k].double(), b[k].double()
        scale = max(1.0, x.abs().max().item())
        worst = max(worst, (x - y).abs().max().item() / scale)
    return worst


def check_samples(runner, cases, work, devices, exact):
    failed = 0
    for sample in ("mlp", "skip", "tinygpt", "convnet"):
        batches = os.path.join(cases, sample + ".batches")
        for fmt in ("onnx", "pt2", "torchscript"):
            manifest = os.path.join(cases, "%s.%s" % (sample, fmt))
            ranks = len(json.load(open(os.path.join(manifest, "manifest.json")))["stages"])
            out, params = {}, {}
            try:
                for dev in devices:
                    common = ["--manifest", manifest, "--nproc", str(ranks), "--inputs", batches, "--chunks", "2",
                              "--device", dev]
                    o = os.path.join(work, "%s.%s.%s.pt" % (sample, fmt, dev))
                    runner.run(common + ["--output", o])
                    out[dev] = torch.load(o)
                    ck = os.path.join(work, "%s.%s.%s.ck" % (sample, fmt, dev))
                    runner.run(common + ["--train", "--steps", "3", "--loss", LOSS[sample], "--optimizer", "sgd",
                                         "--lr", "0.05", "--momentum", "0.9", "--schedule", "1f1b", "--save", ck,
                                         "--save-every", "1"])
                    params[dev] = torch.load(os.path.join(ck, "params.pt"))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print("FAIL %-8s %-11s %s" % (sample, fmt, str(e).strip()))
                failed += 1
                continue
            ref, dev = devices
            d_out, d_par = max_rel_diff(out[ref], out[dev]), max_rel_diff(params[ref], params[dev])
            tol = 1e-6 if exact else TOLERANCE[sample]
            ok = d_out <= tol and d_par <= tol
            failed += not ok
            print("%s %-8s %-11s outputs %.2e, parameters after 3 steps %.2e (relative, %s vs %s; %d ranks)"
                  % ("ok  " if ok else "FAIL", sample, fmt, d_out, d_par, dev, ref, ranks))
    return failed


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def check_data_parallel(runner, cases, work, devices, exact):
    """2 replicas of the mlp sample's 3-stage pipeline (6 ranks): the gradients are summed across the replicas
    through host memory; the parameters after 3 steps must equal the reference device's."""
    params = {}
    manifest = os.path.join(cases, "mlp.onnx")
    try:
        for dev in devices:
            ck = os.path.join(work, "dp.%s.ck" % dev)
            runner.run(["--manifest", manifest, "--nproc", "6", "--dp", "2", "--inputs",
                        os.path.join(cases, "mlp.batches"), "--chunks", "2", "--device", dev, "--train", "--steps",
                        "3", "--optimizer", "adam", "--lr", "0.001", "--save", ck])
            params[dev] = torch.load(os.path.join(ck, "params.pt"))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print("FAIL mlp      onnx, --dp 2 %s" % str(e).strip())
        return 1
    d = max_rel_diff(params[devices[0]], params[devices[1]])
    ok = d <= (1e-6 if exact else TOLERANCE["mlp"])
    print("%s mlp      onnx, --dp 2 parameters after 3 steps %.2e (relative, %s vs %s; 6 ranks)"
          % ("ok  " if ok else "FAIL", d, devices[1], devices[0]))
    return 0 if ok else 1


def eager_steps(batch_file, steps, device):
    """Eager PyTorch on `device`: per-step ms (synchronized) and the losses."""
    model = train_step.build_model().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=train_step.LR)
    b = torch.load(batch_file)
    x, target = b["x"].to(device), b["target"].to(device)
    times, losses = [], []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        loss = F.mse_loss(model(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return times, losses


def pprun_steps(runner, manifest, batch_file, steps, device):
    out = runner.run(["--manifest", manifest, "--nproc", "1", "--device", device, "--inputs", batch_file, "--train",
                      "--steps", str(steps), "--chunks", "8", "--schedule", "looped-bfs", "--loss", "mse",
                      "--optimizer", "sgd", "--lr", str(train_step.LR)])
    times = [float(t) for t in re.findall(r"step ([0-9.]+) ms", out)]
    losses = [float(v) for v in re.findall(r"loss ([0-9.eE+-]+)", out)]
    if len(times) != steps:
        raise RuntimeError("pprun printed %d step times for %d steps:\n%s" % (len(times), steps, out[-1500:]))
    return times, losses


def bench(runner, bench_dir, steps, device):
    failed = 0
    print("\n%s: 1 rank, 2 stages, looped BFS (GPipe for stages sharing a rank), 8 micro-batches, SGD; "
          "eager PyTorch: the whole batch at once"
          % (torch.cuda.get_device_name(0) if device == "cuda" else "CPU"))
    print("%-6s %-22s %9s %9s %s" % ("batch", "implementation", "step ms", "vs eager", "losses (steps 1-3)"))
    for batch in (1024, 8192):
        batch_file = os.path.join(bench_dir, "batch_%d.pt" % batch)
        e_times, e_losses = eager_steps(batch_file, steps, device)
        e_ms = statistics.median(e_times[1:])
        print("%-6d %-22s %9.2f %9s %s" % (batch, "eager PyTorch", e_ms, "1.00x",
                                          " ".join("%.6f" % v for v in e_losses[:3])))
        for fmt in ("onnx", "pt2"):
            if not os.path.isdir(os.path.join(bench_dir, "blocks.%s.split" % fmt)):
                continue
            try:
                times, losses = pprun_steps(runner, os.path.join(bench_dir, "blocks.%s.split" % fmt), batch_file,
                                            steps, device)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print("FAIL pprun %s stages: %s" % (fmt, str(e).strip()))
                failed += 1
                continue
            ms = statistics.median(times[1:])
            same = all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(losses[:3], e_losses[:3]))
            failed += not same
            print("%-6d %-22s %9.2f %8.2fx %s%s" % (batch, "pprun, %s stages" % fmt, ms, e_ms / ms,
                                                   " ".join("%.6f" % v for v in losses[:3]),
                                                   "" if same else "  FAIL: losses differ from eager"))
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=os.path.join(ROOT, "gpu-bundle"))
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--devices", default="cpu,cuda",
                    help="the reference and the checked --device (cpu,cpu: the script's own check without a GPU)")
    ap.add_argument("--bench-on-cpu", action="store_true", help="with --devices cpu,cpu: the benchmark on the CPU")
    ap.add_argument("--bin", help="where pprun and ppc are (default: the bundle's bin/)")
    ap.add_argument("--preload", help="a library pprun loads first (LD_PRELOAD): a device backend")
    ap.add_argument("--exact", action="store_true", help="the devices must agree to 1e-6 (the same kernels)")
    args = ap.parse_args()
    devices = args.devices.split(",")
    if "cuda" in args.devices and not torch.cuda.is_available():
        print("check.py: no CUDA GPU visible to PyTorch %s" % torch.__version__, file=sys.stderr)
        return 2
    runner = Runner(args.bundle, args.bin, args.preload)
    print("PyTorch %s, %s, pprun from %s" % (torch.__version__, torch.cuda.get_device_name(0)
                                              if torch.cuda.is_available() else "no GPU", args.bundle))
    with tempfile.TemporaryDirectory() as work:
        prepare(runner, work)
        failed = check_samples(runner, os.path.join(work, "cases"), work, devices, args.exact)
        failed += check_data_parallel(runner, os.path.join(work, "cases"), work, devices, args.exact)
        if devices[1] == "cuda" or args.bench_on_cpu:
            failed += bench(runner, os.path.join(work, "bench"), args.steps, devices[1])
    print("\n%s" % ("all checks passed" if failed == 0 else "%d checks FAILED" % failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
