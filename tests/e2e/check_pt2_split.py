"""Checks a split of a torch.export program (.pt2) with PyTorch itself.

Usage:  PYTHON tests/e2e/check_pt2_split.py MODEL.pt2 OUT_DIR [--batch B] [--atol A]

Every stage artifact in OUT_DIR must open with torch.export.load and be a
valid ExportedProgram (its state under the manifest's parameter names); the
stages, run one after another and chained by value name as the manifest says,
must reproduce the full program's outputs on the program's example inputs
resized to batch B (rows repeated), so that symbolic batch sizes are
exercised; every node of the program must run in exactly one stage. Prints
one line per stage and the largest difference; exit 1 on any failure.
"""

import argparse
import json
import os
import sys
import warnings

import torch


def resize(t, batch):
    if t.dim() == 0 or t.shape[0] == batch:
        return t
    reps = -(-batch // t.shape[0])
    return t.repeat(reps, *([1] * (t.dim() - 1)))[:batch].contiguous()


def op_nodes(ep):
    return [n for n in ep.graph.nodes if n.op == "call_function"]


def constant_like(ep):
    """Nodes computed from no placeholder at all (arange, zeros, ...): ppc
    clones them into the stages that use them, and drops them where unused."""
    const = set()
    for n in ep.graph.nodes:
        if n.op == "call_function" and all(a.name in const for a in n.all_input_nodes):
            const.add(n.name)
    return const


def dead(ep):
    """Nodes no output depends on."""
    live, todo = set(), [n for n in ep.graph.nodes if n.op == "output"]
    while todo:
        n = todo.pop()
        if n.name not in live:
            live.add(n.name)
            todo += n.all_input_nodes
    return {n.name for n in ep.graph.nodes if n.name not in live}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    full = torch.export.load(args.model)
    example_args, example_kwargs = full.example_inputs
    inputs = [resize(t, args.batch) for t in example_args]
    with open(os.path.join(args.out, "manifest.json")) as f:
        manifest = json.load(f)
    names = [mi["name"] for mi in manifest["model_inputs"]]
    if len(names) != len(inputs):
        sys.exit("FAIL: the manifest lists %d model inputs, the program takes %d" % (len(names), len(inputs)))
    values = dict(zip(names, inputs))

    failures = []
    seen_nodes = []
    for st in manifest["stages"]:
        path = os.path.join(args.out, st["artifact"])
        ep = torch.export.load(path)
        state = dict(ep.state_dict)
        state.update({k: v for k, v in ep.constants.items() if isinstance(v, torch.Tensor)})
        for p in st["params"]:
            if p["name"] not in state:
                failures.append("stage %d: no state '%s' that the manifest lists" % (st["index"], p["name"]))
        user_inputs = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        want = [i["name"] for i in st["inputs"]]
        if user_inputs != want:
            failures.append("stage %d: inputs %s, manifest %s" % (st["index"], user_inputs, want))
        outs = ep.module()(*[values[n] for n in want])
        if not isinstance(outs, (tuple, list)):
            outs = (outs,)
        for o, t in zip(st["outputs"], outs):
            values[o["name"]] = t
        seen_nodes += [n.name for n in op_nodes(ep) if "sym_size" not in str(n.target)]
        print("stage %d: %s loads, %d inputs, %d outputs, %d params, %d nodes" %
              (st["index"], st["artifact"], len(want), len(outs), len(st["params"]), len(op_nodes(ep))))

    ref = full.module()(*inputs)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    worst = 0.0
    for mo, r in zip(manifest["model_outputs"], ref):
        got = values[mo["name"]]
        if got.shape != r.shape:
            failures.append("output %s: shape %s, expected %s" % (mo["name"], tuple(got.shape), tuple(r.shape)))
            continue
        d = (got.double() - r.double()).abs().max().item() if r.numel() else 0.0
        worst = max(worst, d)
        if d > args.atol * max(1.0, r.abs().max().item()):
            failures.append("output %s differs by %.3g" % (mo["name"], d))

    full_nodes = [n.name for n in op_nodes(full)
                  if "sym_size" not in str(n.target) and "_assert" not in str(n.target)]
    missing = sorted(set(full_nodes) - set(seen_nodes) - constant_like(full) - dead(full))
    dup = sorted({n for n in seen_nodes if seen_nodes.count(n) > 1})
    if missing:
        failures.append("nodes in no stage: %s" % missing[:10])
    print("batch %d: chained stages vs the full program, max |diff| %.3g" % (args.batch, worst))
    if dup:
        print("nodes in several stages (cloned constants): %s" % dup[:10])
    for f in failures:
        print("FAIL: " + f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
