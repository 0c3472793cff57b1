#!/usr/bin/python3
"""Run the unsplit TorchScript model forward: the reference for pprun's inference.

Usage:  /usr/bin/python3 tests/e2e/reference_infer.py MODEL.pt BATCH_DIR OUT.pt
            --steps N [--params PARAMS.pt [--allow-missing]] [--eval | --train]
            [--output-name NAME]

torch.jit.load(MODEL.pt), optionally overwritten with PARAMS.pt (a dict
name -> tensor, e.g. reference_train.py's OUT.pt): every key must name a
parameter or buffer of the model with the same shape and dtype, and every
parameter and buffer must be given (a tied parameter under any one of its
names) unless --allow-missing.  Problems are listed and exit with 2.  The model stays in the mode it was saved in unless --eval
or --train is given.  Step i feeds the inputs of the i-th *.pt file of
BATCH_DIR in sorted order (cycling), under torch.no_grad().

OUT.pt: torch.save of {NAME: outputs of all steps concatenated along dim 0};
NAME is --output-name (default "output").  A model returning several tensors
needs as many comma-separated names.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import (UsageError, batch_files, canonical_state, input_names,  # noqa: E402
                        load_batch, load_model, run_main)


def load_params(model, path, allow_missing):
    params = torch.load(path)
    if isinstance(params, torch.nn.Module):
        params = params.state_dict()
    if not isinstance(params, dict):
        raise UsageError("%s: expected a dict name -> tensor" % path)
    sd = model.state_dict()  # lists tied parameters under every name
    unexpected = sorted(k for k in params if k not in sd)
    bad_shape = ["%s %s %s vs model %s %s" % (k, v.dtype, list(v.shape), sd[k].dtype, list(sd[k].shape))
                 for k, v in params.items()
                 if k in sd and (v.shape != sd[k].shape or v.dtype != sd[k].dtype)]
    given = {sd[k].data_ptr() for k in params if k in sd}
    missing = [n for n, t in canonical_state(model).items() if t.data_ptr() not in given]
    problems = []
    if unexpected:
        problems.append("unexpected keys (not in the model): " + ", ".join(unexpected))
    if bad_shape:
        problems.append("shape/dtype mismatch: " + "; ".join(bad_shape))
    if missing and not allow_missing:
        problems.append("missing keys (in the model, not in %s): %s" % (path, ", ".join(missing)))
    if problems:
        raise UsageError("cannot load %s:\n  " % path + "\n  ".join(problems))
    if missing:
        print("note: %d tensors keep the archive's values: %s" % (len(missing), ", ".join(missing)))
    with torch.no_grad():
        for k, v in params.items():
            sd[k].copy_(v)
    print("loaded %d tensors from %s" % (len(params), path))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("batch_dir")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, required=True, metavar="N")
    ap.add_argument("--params", metavar="PARAMS.pt")
    ap.add_argument("--allow-missing", action="store_true")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--eval", action="store_true")
    mode.add_argument("--train", action="store_true")
    ap.add_argument("--output-name", default="output", metavar="NAME")
    args = ap.parse_args(argv)
    if args.steps < 1:
        raise UsageError("--steps must be >= 1")
    out_names = args.output_name.split(",")

    model = load_model(args.model)
    if args.params:
        load_params(model, args.params, args.allow_missing)
    if args.eval:
        model.eval()
    elif args.train:
        model.train()
    names = input_names(model)
    files = batch_files(args.batch_dir)

    outs = []
    with torch.no_grad():
        for step in range(args.steps):
            inputs, _ = load_batch(files[step % len(files)], names)
            out = model(*inputs)
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != len(out_names):
                raise UsageError("the model returns %d tensors, --output-name gives %d names"
                                 % (len(out), len(out_names)))
            outs.append(out)
    result = {n: torch.cat([o[i] for o in outs], dim=0) for i, n in enumerate(out_names)}
    torch.save(result, args.out)
    print("%d steps; %s written to %s" % (
        args.steps, ", ".join("%s %s" % (n, list(t.shape)) for n, t in result.items()), args.out))
    return 0


if __name__ == "__main__":
    run_main(main)
