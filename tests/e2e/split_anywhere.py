"""Split anywhere: a seeded property test of ppc and pprun over real models.

Usage:  PYTHON tests/e2e/split_anywhere.py PPC OUTDIR [--seed S] [--budget-s T]
            [--models a,b,...] [--all] [--formats onnx,dynamo,torchscript]
            [--splits K] [--max-params M] [--report FILE.json]

For each torchvision classification model (random seeded weights, eval mode,
one input of [2, 3, 64, 64]) and each format -- the TorchScript-based ONNX
exporter (opset 17), the dynamo ONNX exporter (PyTorch 2.x only),
torch.jit.trace, torch.export (.pt2, PyTorch 2.x only) -- K split specs are drawn at random among the legal cut
positions: the ends of single nodes and the begins and ends of modules at
any depth, one to three cuts each. Each spec is split by ppc, and then:

  * ONNX: every stage passes check_split.py (onnx.checker full_check, every
    node in one stage, chaining by name, the manifest's claims);
    TorchScript: every stage loads with torch.jit.load; .pt2: every stage
    opens with torch.export.load and the chained stages reproduce the
    program (check_pt2_split.py);
  * pprun runs the stages on as many local ranks (GPipe, one micro-batch)
    and its output equals the eager model's (|diff| <= 1e-4 * max(1, |y|));
  * TorchScript and .pt2 (for .pt2, where the model draws no random numbers
    in train mode: its operators' train flags follow pprun's --train, so the
    reference is the eager model in train mode): one SGD step through pprun
    moves every parameter as PyTorch's step of the unsplit model does
    (<= 1e-5), and every stage's
    parameters moved (a gradient that stops at a stage boundary fails here).

ppc may refuse a spec only with exit code 2 and one line naming the value or
node in the way and why (a cut no valid stage can serve); anything else is a
failure. Models that cannot be built or exported at this input size, or
whose parameters exceed --max-params (millions), are listed as skipped.
Models run in an order drawn from the seed until --budget-s seconds have
passed (a model already started finishes). Prints one line per split and a
summary; --report writes every outcome as JSON. Exit 1 on any failure.
"""

import argparse
import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
# A cross-section of architectures that CI draws from (the default --models):
# residual, depthwise, channel shuffle, squeeze-excite, dense concatenation,
# windowed attention.
CI_MODELS = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1", "mnasnet0_5",
             "efficientnet_b0", "regnet_y_400mf", "densenet121", "swin_t", "googlenet"]
INPUT = [2, 3, 64, 64]


def run(cmd, timeout=600):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def build_model(name):
    import torchvision
    torch.manual_seed(0)
    kwargs = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = True
    model = torchvision.models.get_model(name, **kwargs).eval()
    return model


def export(name, fmt, model, x, path):
    with torch.no_grad():
        if fmt == "torchscript":
            torch.jit.trace(model, x).save(path)
        elif fmt == "onnx":
            kw = {"dynamo": False} if torch.__version__ >= "2" else {}
            torch.onnx.export(model, (x,), path, opset_version=17, do_constant_folding=True, input_names=["x"],
                              output_names=["y"], **kw)
        elif fmt == "pt2":
            torch.export.save(torch.export.export(model, (x,), strict=False), path)
        else:
            torch.onnx.export(model, (x,), path, dynamo=True, input_names=["x"], output_names=["y"], verbose=False)


def random_in_training(model):
    """Modules that draw random numbers in train mode (dropout, stochastic depth)."""
    return sorted({type(m).__name__ for m in model.modules()
                   if "Dropout" in type(m).__name__ and getattr(m, "p", 0) > 0
                   or type(m).__name__ == "StochasticDepth" and m.p > 0})


def reference_train_pt2(model, batch_file, out):
    """One SGD step (lr 0.1, cross entropy) of the eager model in train mode: pprun trains a .pt2
    stage with its operators' train flags set (batch norm on batch statistics); every state tensor
    but BatchNorm's num_batches_tracked (a Python-side counter the exported graph does not hold)."""
    model = copy.deepcopy(model).train()
    b = torch.load(batch_file)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(b["x"]), b["target"]).backward()
    opt.step()
    torch.save({k: v.detach() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}, out)


def graph_listing(ppc, model_path):
    """[(name, module, placeable)] in ppc's node order, from --emit ir and --emit partition."""
    rc, ir, err = run([ppc, "split", model_path, "--stages", "1", "--emit", "ir"])
    if rc != 0:
        raise RuntimeError("ppc --emit ir: " + err.strip())
    rc, part, err = run([ppc, "split", model_path, "--stages", "1", "--emit", "partition"])
    if rc != 0:
        raise RuntimeError("ppc --emit partition: " + err.strip())
    nodes = []
    for line in ir.splitlines():
        if not line.startswith("node "):
            continue
        tok = line.split(" : ")[0].split()
        module = next((t[1:] for t in tok[3:] if t.startswith("@")), "")
        nodes.append([tok[1], module])
    placed = [ln.split(" ", 1)[0] != "const" for ln in part.splitlines() if ln.strip()]
    if len(placed) != len(nodes):
        raise RuntimeError("ppc's ir lists %d nodes, its partition %d" % (len(nodes), len(placed)))
    return [(n, m, p) for (n, m), p in zip(nodes, placed)]


def candidates(nodes):
    """Every legal cut: (position, spec entry); position = first node id of the later stage."""
    out = []
    spans = {}
    for i, (name, module, placed) in enumerate(nodes):
        if not placed:
            continue
        out.append((i + 1, {"node": name, "at": "end"}))
        parts = module.split(".") if module else []
        for d in range(1, len(parts) + 1):
            key = ".".join(parts[:d])
            first, last = spans.get(key, (i, i))
            spans[key] = (min(first, i), max(last, i))
    for key, (first, last) in spans.items():
        out.append((first, {"module": key, "at": "begin"}))
        out.append((last + 1, {"module": key, "at": "end"}))
    return out


def draw_spec(rng, nodes, cands):
    """1-3 cuts at distinct positions, each stage with at least one placeable node."""
    placed_prefix = [0]
    for _, _, p in nodes:
        placed_prefix.append(placed_prefix[-1] + (1 if p else 0))
    total = placed_prefix[-1]
    for _ in range(100):
        k = rng.randint(1, 3)
        pick = sorted(rng.sample(cands, k), key=lambda c: c[0])
        bounds = [0] + [c[0] for c in pick] + [len(nodes)]
        counts = [placed_prefix[b] - placed_prefix[a] for a, b in zip(bounds, bounds[1:])]
        if all(c > 0 for c in counts) and len({c[0] for c in pick}) == k and total > k:
            return {"version": 1, "split_points": [c[1] for c in pick]}
    return None


def max_rel_diff(a, b):
    return ((a - b).abs().max() / max(1.0, b.abs().max().item())).item()


class Zoo:
    def __init__(self, args):
        self.a = args
        self.pprun = os.path.join(os.path.dirname(os.path.abspath(args.ppc)), "pprun")
        self.results = []
        self.failures = 0

    def record(self, **r):
        self.results.append(r)
        if r["outcome"] == "fail":
            self.failures += 1
        what = r.get("spec") and json.dumps(r["spec"]["split_points"])
        print("%-6s %s/%s %s %s" % (r["outcome"], r["model"], r["format"], what or "", r.get("detail", "")),
              flush=True)

    def model(self, name, rng):
        a = self.a
        try:
            model = build_model(name)
        except Exception as e:  # noqa: BLE001 - an architecture the machine's torchvision cannot build
            self.record(model=name, format="-", outcome="skip", detail="cannot build: %s" % str(e).splitlines()[0])
            return
        nparams = sum(p.numel() for p in model.parameters())
        if nparams > a.max_params * 1e6:
            self.record(model=name, format="-", outcome="skip",
                        detail="%.0fM parameters, over --max-params %g" % (nparams / 1e6, a.max_params))
            return
        g = torch.Generator().manual_seed(a.seed)
        x = torch.randn(*INPUT, generator=g)
        target = torch.randint(0, 1000, (INPUT[0],), generator=g)
        try:
            with torch.no_grad():
                ref = model(x)
        except Exception as e:  # noqa: BLE001
            self.record(model=name, format="-", outcome="skip", detail="no forward at %s: %s" % (INPUT, str(e).splitlines()[0]))
            return
        work = os.path.join(a.outdir, name)
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(os.path.join(work, "batches"))
        torch.save({"x": x, "target": target}, os.path.join(work, "batches", "batch_000.pt"))
        torch.save({"y": ref}, os.path.join(work, "ref_out.pt"))
        for fmt in a.formats:
            path = os.path.join(work, name + {"torchscript": ".pt", "pt2": ".pt2"}.get(fmt, "_%s.onnx" % fmt))
            try:
                export(name, fmt, model, x, path)
            except Exception as e:  # noqa: BLE001 - the exporter's limit, not ppc's
                self.record(model=name, format=fmt, outcome="skip", detail="export failed: %s" % str(e).splitlines()[0][:200])
                continue
            try:
                nodes = graph_listing(a.ppc, path)
            except Exception as e:  # noqa: BLE001
                self.record(model=name, format=fmt, outcome="fail", detail=str(e))
                continue
            cands = candidates(nodes)
            ref_params = None
            if fmt == "torchscript":
                ref_params = os.path.join(work, "ref_sgd.pt")
                rc, _, err = run([sys.executable, os.path.join(HERE, "reference_train.py"), path, os.path.join(work, "batches"),
                                  ref_params, "--steps", "1", "--loss", "cross_entropy", "--optimizer", "sgd", "--lr", "0.1"])
                if rc != 0:
                    self.record(model=name, format=fmt, outcome="fail", detail="reference training: " + err.strip()[-300:])
                    continue
            if fmt == "pt2" and not random_in_training(model):
                ref_params = os.path.join(work, "ref_sgd_pt2.pt")
                reference_train_pt2(model, os.path.join(work, "batches", "batch_000.pt"), ref_params)
            for k in range(a.splits):
                spec = draw_spec(rng, nodes, cands)
                if spec is None:
                    break
                self.split(name, fmt, path, work, k, spec, ref_params)

    def split(self, name, fmt, path, work, k, spec, ref_params):
        rec = dict(model=name, format=fmt, spec=spec)
        spec_path = os.path.join(work, "spec_%s_%d.json" % (fmt, k))
        out = os.path.join(work, "split_%s_%d" % (fmt, k))
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        shutil.rmtree(out, ignore_errors=True)
        rc, _, err = run([self.a.ppc, "split", path, "--splits", spec_path, "-o", out])
        lines = [ln for ln in err.splitlines() if ln.startswith("ppc: error")]
        if rc == 2 and len(lines) == 1 and re.search(r"(value|node) '", lines[0]) and not os.path.exists(out):
            return self.record(outcome="refused", detail=lines[0], **rec)
        if rc != 0:
            return self.record(outcome="fail", detail="ppc split exit %d: %s" % (rc, err.strip()[-400:]), **rec)
        manifest = json.load(open(os.path.join(out, "manifest.json")))
        n = len(manifest["stages"])
        if fmt == "torchscript":
            for st in manifest["stages"]:
                try:
                    torch.jit.load(os.path.join(out, st["artifact"]))
                except Exception as e:  # noqa: BLE001
                    return self.record(outcome="fail", detail="stage %d does not load: %s" % (st["index"], e), **rec)
        elif fmt == "pt2":
            rc, o, e = run([sys.executable, os.path.join(HERE, "check_pt2_split.py"), path, out,
                            "--batch", str(INPUT[0]), "--atol", "1e-4"])
            if rc != 0:
                return self.record(outcome="fail", detail="check_pt2_split.py: " + (o + e).strip()[-400:], **rec)
        else:
            rc, o, e = run([sys.executable, os.path.join(HERE, "check_split.py"), path, out])
            if rc != 0:
                return self.record(outcome="fail", detail="check_split.py: " + (o + e).strip()[-400:], **rec)
        run_args = [self.pprun, "--manifest", out, "--nproc", str(n), "--schedule", "gpipe", "--chunks", "1",
                    "--inputs", os.path.join(work, "batches"), "--steps", "1"]
        got = os.path.join(work, "out.pt")
        rc, o, e = run(run_args + ["--output", got, "--quiet"])
        if rc != 0:
            return self.record(outcome="fail", detail="pprun inference exit %d: %s" % (rc, (o + e).strip()[-400:]), **rec)
        y = torch.load(got)
        y = y[next(iter(y))] if isinstance(y, dict) else y
        ref = torch.load(os.path.join(work, "ref_out.pt"))["y"]
        d = max_rel_diff(y, ref)
        if not d <= 1e-4:
            return self.record(outcome="fail", detail="pprun's output differs from PyTorch's by %.2e" % d, **rec)
        detail = "%d stages, output diff %.1e" % (n, d)
        if ref_params:
            ck = os.path.join(work, "ck")
            shutil.rmtree(ck, ignore_errors=True)
            rc, o, e = run(run_args + ["--train", "--loss", "cross_entropy", "--optimizer", "sgd", "--lr", "0.1",
                                       "--save", ck])
            if rc != 0:
                return self.record(outcome="fail", detail="pprun training exit %d: %s" % (rc, (o + e).strip()[-400:]), **rec)
            problem, worst = self.compare_params(os.path.join(ck, "params.pt"), ref_params, path, manifest)
            if problem:
                return self.record(outcome="fail", detail=problem, **rec)
            detail += ", params after 1 SGD step diff %.1e" % worst
        self.record(outcome="ok", detail=detail, **rec)

    @staticmethod
    def compare_params(got_path, ref_path, model_path, manifest):
        got, ref = torch.load(got_path), torch.load(ref_path)
        if model_path.endswith(".pt2"):
            init = {k: v.detach() for k, v in torch.export.load(model_path).module().named_parameters()}
        else:
            init = dict(torch.jit.load(model_path).named_parameters())
        missing = [k for k in init if k not in got]
        if missing:
            return "parameters missing from pprun's params.pt: %s" % missing[:5], 0
        worst = 0.0
        for k, v in got.items():
            if k.endswith("num_batches_tracked") and model_path.endswith(".pt2"):
                continue
            if k not in ref or v.shape != ref[k].shape:
                return "params.pt key %s not in the reference or of another shape" % k, 0
            worst = max(worst, (v - ref[k]).abs().max().item())
        if worst > 1e-5:
            bad = [k for k, v in got.items() if k in ref and (v - ref[k]).abs().max().item() > 1e-5]
            return "%d parameters differ from PyTorch's after 1 SGD step (max %.2e): %s" % (len(bad), worst, bad[:5]), worst
        for st in manifest["stages"]:
            names = [p["original"] for p in st["params"] if p["original"] in init]
            moved = [n for n in names if not torch.equal(got[n], init[n])]
            if names and not moved and any(not torch.equal(ref[n], init[n]) for n in names):
                return "no parameter of stage %d moved, PyTorch's did" % st["index"], worst
        return "", worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ppc")
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget-s", type=float, default=0, help="stop starting models after this many seconds (0: none)")
    ap.add_argument("--models", help="comma-separated torchvision model names (default: a CI cross-section)")
    ap.add_argument("--all", action="store_true", help="every classification model of the installed torchvision")
    ap.add_argument("--formats", help="comma-separated: onnx, dynamo, torchscript, pt2 (default: all this PyTorch has)")
    ap.add_argument("--splits", type=int, default=2, help="split specs drawn per model and format")
    ap.add_argument("--max-params", type=float, default=60, help="skip models over this many million parameters")
    ap.add_argument("--report")
    a = ap.parse_args()
    import torchvision
    if a.all:
        names = torchvision.models.list_models(module=torchvision.models)
    else:
        names = a.models.split(",") if a.models else list(CI_MODELS)
    default_formats = ["onnx", "torchscript"] + (["dynamo", "pt2"] if torch.__version__ >= "2" else [])
    a.formats = a.formats.split(",") if a.formats else default_formats
    unknown = set(a.formats) - {"onnx", "dynamo", "torchscript", "pt2"}
    if unknown:
        ap.error("unknown formats: %s" % ", ".join(sorted(unknown)))
    os.makedirs(a.outdir, exist_ok=True)
    torch.set_num_threads(1)
    rng = random.Random(a.seed)
    names = sorted(names)
    rng.shuffle(names)
    zoo = Zoo(a)
    t0 = time.time()
    done = []
    for name in names:
        if a.budget_s and time.time() - t0 > a.budget_s:
            break
        zoo.model(name, rng)
        done.append(name)
    counts = {}
    for r in zoo.results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    print("split_anywhere: seed %d, torch %s, %d of %d models in %.0f s (%s): %s" % (
        a.seed, torch.__version__, len(done), len(names), time.time() - t0, ", ".join(a.formats),
        ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    if a.report:
        with open(a.report, "w") as f:
            json.dump({"seed": a.seed, "torch": torch.__version__, "models": done, "results": zoo.results}, f, indent=1)
    if counts.get("ok", 0) == 0:
        print("split_anywhere: FAIL: no split was checked")
        return 1
    return 1 if zoo.failures else 0


if __name__ == "__main__":
    sys.exit(main())
