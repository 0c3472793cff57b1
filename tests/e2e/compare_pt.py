#!/usr/bin/python3
"""Compare two torch.save'd dicts of tensors (or two single tensors).

Usage:  /usr/bin/python3 tests/e2e/compare_pt.py A.pt B.pt [--atol 1e-5]
            [--rtol 0] [--keys-from A|B|both]

Key sets: --keys-from both (default) requires equal key sets; A requires every
key of A in B (B may have more); B the converse.  Every compared key must have
the same shape and dtype and |a - b| <= atol + rtol * |b| everywhere (NaN
matches NaN, inf matches the same inf).  A file holding one tensor is treated
as {"<tensor>": t}.  Prints one line per key and "max abs diff X over N
tensors"; exits 1 on any mismatch, 2 on unreadable input.
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import UsageError, run_main  # noqa: E402


def load(path):
    try:
        obj = torch.load(path)
    except Exception as e:
        raise UsageError("cannot load %s: %s" % (path, e))
    if isinstance(obj, torch.Tensor):
        return {"<tensor>": obj}
    if not isinstance(obj, dict):
        raise UsageError("%s holds a %s, not a tensor or a dict of tensors" % (path, type(obj).__name__))
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise UsageError("%s: not tensors: %s" % (path, ", ".join(map(str, bad))))
    return obj


def diffs(a, b, rtol):
    """(max |a - b|, max of |a - b| - rtol * |b|)."""
    if a.numel() == 0:
        return 0.0, 0.0
    a, b = a.detach().double(), b.detach().double()
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    d = torch.where(same, torch.zeros_like(a), (a - b).abs())
    d = torch.nan_to_num(d, nan=math.inf)  # NaN on one side only
    over = torch.where(same, torch.zeros_like(a), d - rtol * torch.nan_to_num(b.abs(), posinf=0.0))
    return d.max().item(), over.max().item()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", metavar="A.pt")
    ap.add_argument("b", metavar="B.pt")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=0.0,
                    help="also allow rtol * |b| (model outputs computed by another BLAS)")
    ap.add_argument("--keys-from", choices=["A", "B", "both"], default="both")
    args = ap.parse_args(argv)
    a, b = load(args.a), load(args.b)

    problems = []
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    if only_a and args.keys_from in ("A", "both"):
        problems.append("keys only in A: " + ", ".join(map(str, only_a)))
    if only_b and args.keys_from in ("B", "both"):
        problems.append("keys only in B: " + ", ".join(map(str, only_b)))
    keys = [k for k in a if k in b] if args.keys_from != "B" else [k for k in b if k in a]

    worst, bad_keys = 0.0, []
    for k in keys:
        ta, tb = a[k], b[k]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            msg = "%s: A %s %s vs B %s %s" % (k, ta.dtype, list(ta.shape), tb.dtype, list(tb.shape))
            print("  " + msg + "  MISMATCH")
            bad_keys.append(k)
            continue
        d, over = diffs(ta, tb, args.rtol)
        worst = max(worst, d)
        bad = not over <= args.atol
        print("  %s: max abs diff %.3g%s" % (k, d, "  MISMATCH" if bad else ""))
        if bad:
            bad_keys.append(k)

    print("max abs diff %.3g over %d tensors (atol %g%s)"
          % (worst, len(keys), args.atol, ", rtol %g" % args.rtol if args.rtol else ""))
    if bad_keys:
        problems.append("%d of %d tensors differ: %s" % (len(bad_keys), len(keys), ", ".join(map(str, bad_keys))))
    for p in problems:
        print("FAIL: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    run_main(main)
