#!/usr/bin/python3
"""Numerical check of TorchScript stages written by `ppc split`.

Usage:  /usr/bin/python3 tests/e2e/check_torchscript_stages.py SAMPLE_PT OUTDIR [--seed N]

Loads the full TorchScript model SAMPLE_PT and every stage artifact listed in
OUTDIR/manifest.json with torch.jit.load, runs one random batch through the
stages one after another in this process (model inputs and cross-stage edges
are passed by name, as the manifest lists them), and compares with the full
model, in eval mode and in train mode:

  * every model output: max abs diff <= 1e-6;
  * every parameter gradient of loss = sum(output * R) (R fixed random): the
    stages' gradients, mapped back to the source names through each archive's
    extra file ppc_stage.json and summed over stages for tied parameters, vs
    the full model's (max abs diff <= 1e-6); every trainable parameter of the
    full model must be covered;
  * each stage's parameters hold the source's data, and no stage stores a
    parameter twice.

The random batch depends on the sample (mlp, skip, tinygpt, convnet, resnet18;
see INPUTS).  Exits 1 with one line per problem; prints a summary otherwise.
"""

import argparse
import json
import os
import sys

import torch

TOL = 1e-6

# Per sample: a function of the generator returning the model inputs by name.
INPUTS = {
    "mlp": lambda g: {"x": torch.randn(4, 512, generator=g)},
    "skip": lambda g: {"x": torch.randn(4, 32, generator=g)},
    "tinygpt": lambda g: {"idx": torch.randint(0, 64, (4, 8), generator=g)},
    "convnet": lambda g: {"x": torch.randn(4, 3, 16, 16, generator=g)},
    "resnet18": lambda g: {"x": torch.randn(2, 3, 64, 64, generator=g)},
}


def sample_name(path):
    base = os.path.basename(path)
    for suffix in ("_traced.pt", "_scripted.pt", ".pt"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def load_stage(path):
    extra = {"ppc_stage.json": ""}
    m = torch.jit.load(path, _extra_files=extra)
    info = json.loads(extra["ppc_stage.json"])
    return m, info


def run_chain(manifest, stages, inputs):
    """Runs the stages in order; returns the model outputs by manifest name."""
    values = dict(inputs)
    for st, (mod, _) in zip(manifest["stages"], stages):
        args = [values[i["name"]] for i in st["inputs"]]
        outs = as_tuple(mod(*args))
        if len(outs) != len(st["outputs"]):
            raise RuntimeError("stage %d returned %d values, the manifest lists %d"
                               % (st["index"], len(outs), len(st["outputs"])))
        for o, v in zip(st["outputs"], outs):
            values[o["name"]] = v
    return [values[o["name"]] for o in manifest["model_outputs"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    problems = []

    name = sample_name(args.model)
    if name not in INPUTS:
        print("%s: no random batch defined for sample '%s'" % (args.model, name))
        return 1
    with open(os.path.join(args.outdir, "manifest.json")) as f:
        manifest = json.load(f)
    full = torch.jit.load(args.model)
    stages = [load_stage(os.path.join(args.outdir, s["artifact"])) for s in manifest["stages"]]

    full_params = dict(full.named_parameters())  # deduplicated: tied params appear once
    full_state = {}
    for n, t in list(full.named_parameters()) + list(full.named_buffers()):
        full_state.setdefault(n, t)
    # Every source name of a tensor -> its first name (aliases of tied params).
    canonical = {}
    for _, info in stages:
        for flat, orig in info["params"].items():
            for alias in info.get("aliases", {}).get(flat, []):
                canonical[alias] = orig

    for (mod, info), st in zip(stages, manifest["stages"]):
        seen = set()
        stored = dict(mod.named_parameters())
        stored.update(dict(mod.named_buffers()))
        for flat, t in stored.items():
            orig = info["params"].get(flat)
            if orig is None:
                problems.append("stage %d: attribute '%s' is not in ppc_stage.json" % (st["index"], flat))
                continue
            if orig in seen:
                problems.append("stage %d: '%s' stored twice" % (st["index"], orig))
            seen.add(orig)
            src = full_state.get(orig)
            if src is None:
                problems.append("stage %d: '%s' is not a parameter or buffer of the source" % (st["index"], orig))
            elif src.shape != t.shape or not torch.equal(src.detach(), t.detach()):
                problems.append("stage %d: '%s' does not hold the source's data" % (st["index"], orig))
        # The manifest names each param as stored in the artifact (flat
        # attribute name) and by its source name (`original`).
        manifest_params = sorted((p["name"], p["original"]) for p in st["params"])
        if manifest_params != sorted(info["params"].items()):
            problems.append("stage %d: ppc_stage.json params %s != manifest params %s"
                            % (st["index"], sorted(info["params"].values()), manifest_params))

    g = torch.Generator().manual_seed(args.seed)
    inputs = INPUTS[name](g)
    ordered = [inputs[i["name"]] for i in manifest["model_inputs"]]

    summary = []
    for mode in ("eval", "train"):
        for m in [full] + [s[0] for s in stages]:
            m.train(mode == "train")
        # Train-mode BatchNorm updates running stats: snapshot and restore so
        # both runs start from the same buffers.
        snap_full = {n: b.clone() for n, b in full.named_buffers()}
        snap_stages = [{n: b.clone() for n, b in s[0].named_buffers()} for s in stages]

        torch.manual_seed(args.seed)
        ref = as_tuple(full(*ordered))
        torch.manual_seed(args.seed)
        got = run_chain(manifest, stages, inputs)
        if len(ref) != len(got):
            problems.append("%s: full model returns %d outputs, the stages %d" % (mode, len(ref), len(got)))
            continue
        gen = torch.Generator().manual_seed(args.seed + 1)
        weights = [torch.randn(r.shape, generator=gen) for r in ref]
        max_out = 0.0
        for k, (r, o) in enumerate(zip(ref, got)):
            if r.shape != o.shape:
                problems.append("%s: output %d has shape %s, expected %s" % (mode, k, tuple(o.shape), tuple(r.shape)))
                continue
            d = (r - o).abs().max().item() if r.numel() else 0.0
            max_out = max(max_out, d)
            if not d <= TOL:
                problems.append("%s: output %d differs by %g" % (mode, k, d))

        for p in full_params.values():
            p.grad = None
        for mod, _ in stages:
            for p in mod.parameters():
                p.grad = None
        sum(((r * w).sum() for r, w in zip(ref, weights) if r.is_floating_point())).backward()
        sum(((o * w).sum() for o, w in zip(got, weights) if o.is_floating_point())).backward()
        stage_grads = {}
        for mod, info in stages:
            for flat, p in mod.named_parameters():
                if p.grad is None:
                    continue
                orig = canonical.get(info["params"][flat], info["params"][flat])
                stage_grads[orig] = stage_grads[orig] + p.grad if orig in stage_grads else p.grad.clone()
        max_grad = 0.0
        for n, p in full_params.items():
            if p.grad is None:
                continue
            sg = stage_grads.get(n)
            if sg is None:
                problems.append("%s: no stage computes a gradient for '%s'" % (mode, n))
                continue
            d = (p.grad - sg).abs().max().item()
            max_grad = max(max_grad, d)
            if not d <= TOL:
                problems.append("%s: gradient of '%s' differs by %g" % (mode, n, d))
        for n in stage_grads:
            if n not in full_params or full_params[n].grad is None:
                problems.append("%s: stages compute a gradient for '%s', the full model does not" % (mode, n))

        if mode == "train":
            # Buffers updated in train mode (BatchNorm running stats) must agree too.
            full_bufs = dict(full.named_buffers())
            for mod, info in stages:
                for flat, b in mod.named_buffers():
                    orig = info["params"][flat]
                    fb = full_bufs.get(orig)
                    if fb is not None and not torch.allclose(fb.double(), b.double(), atol=TOL, rtol=0):
                        problems.append("train: buffer '%s' after the step differs from the full model's" % orig)
        with torch.no_grad():
            for n, b in full.named_buffers():
                b.copy_(snap_full[n])
            for (mod, _), snap in zip(stages, snap_stages):
                for n, b in mod.named_buffers():
                    b.copy_(snap[n])
        summary.append("%s: max |out diff| %.3g, max |grad diff| %.3g over %d params"
                       % (mode, max_out, max_grad, len([p for p in full_params.values() if p.grad is not None])))

    if problems:
        for p in problems[:200]:
            print("%s: %s" % (args.outdir, p))
        return 1
    print("%s: %d stages OK; %s" % (args.outdir, len(stages), "; ".join(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
