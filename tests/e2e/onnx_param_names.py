#!/usr/bin/python3
"""Rename a dict of ONNX initializers to the PyTorch model's parameter names.

Usage:  /usr/bin/python3 tests/e2e/onnx_param_names.py MODEL.onnx MODEL.pt IN.pt OUT.pt

pprun's params.pt for an ONNX pipeline is keyed by the manifest's
params[].original, i.e. the initializer names of MODEL.onnx.  torch's exporter
keeps a parameter's name where it stores it as is (`layer0.lin.weight`), but
with constant folding a Linear weight used by MatMul becomes a transposed copy
named `onnx::MatMul_<N>`.  This script maps each key of IN.pt to the PyTorch
name (MODEL.pt: the TorchScript export of the same module, with the same
weights) so the result can be compared with reference_train.py's output and
fed to reference_infer.py --params:

  - a key that is a parameter/buffer name of MODEL.pt keeps its name;
  - otherwise its value in MODEL.onnx (an initializer, or the output of an
    Identity of one: the exporter's deduplication) is matched by content with
    the parameters of MODEL.pt not named by another key: exactly equal, or
    equal to the transpose; the match must be unique.  A transposed match is
    written transposed back.

With --constants MANIFEST.json, a key the manifest lists as not trainable
that matches no PyTorch parameter or buffer is dropped: the dynamo exporter
stores its constants (scale factors, fill values) as initializers, which
pprun saves with the rest but which are no part of the module's state.

A key that is another state_dict() name of a tied tensor (pprun lists a tied
parameter under each of its names) is skipped; the output lists every
state_dict() name of each mapped tensor, as load_state_dict(strict=True) wants.

Exits 2 when a key cannot be mapped (e.g. BatchNorm folded into Conv weights:
those exports do not have PyTorch's training semantics anyway).
"""

import os
import sys

import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import UsageError, canonical_state, load_model, run_main, with_aliases  # noqa: E402


def onnx_values(path):
    m = onnx.load(path)
    vals = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in vals:
            vals[n.output[0]] = vals[n.input[0]]
    return vals


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    constants = set()
    if len(argv) == 6 and argv[4] == "--constants":
        import json
        manifest = json.load(open(argv[5]))
        constants = {p["original"] for s in manifest["stages"] for p in s["params"] if not p["trainable"]}
        argv = argv[:4]
    if len(argv) != 4:
        raise UsageError("usage: onnx_param_names.py MODEL.onnx MODEL.pt IN.pt OUT.pt [--constants MANIFEST.json]")
    onnx_path, model_path, in_path, out_path = argv
    originals = onnx_values(onnx_path)
    model = load_model(model_path)
    state = canonical_state(model)
    aliases = set(model.state_dict()) - set(state)
    given = torch.load(in_path)
    out = {}
    free = {n: t for n, t in state.items() if n not in given}
    problems = []
    for key, value in given.items():
        if key in state:
            out[key] = value
            continue
        if key in aliases:
            continue  # another name of a tied tensor (added back below)
        if key not in originals:
            problems.append("%s: not an initializer of %s" % (key, onnx_path))
            continue
        orig = originals[key]
        hits = []
        for name, t in free.items():
            if t.shape == orig.shape and t.dtype == orig.dtype and torch.equal(t, orig):
                hits.append((name, False))
            elif t.dim() == 2 and orig.dim() == 2 and t.shape == orig.t().shape and torch.equal(t, orig.t()):
                hits.append((name, True))
        if not hits and key in constants:
            continue  # an exporter constant, not module state
        if len(hits) != 1:
            problems.append("%s: %d matching PyTorch parameters (%s)" % (key, len(hits), ", ".join(h for h, _ in hits)))
            continue
        name, transposed = hits[0]
        out[name] = value.t().contiguous() if transposed else value
        del free[name]
    if problems:
        raise UsageError("cannot map:\n  " + "\n  ".join(problems))
    torch.save(with_aliases(model, out), out_path)
    return 0


if __name__ == "__main__":
    run_main(main)
