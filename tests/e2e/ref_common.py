"""Helpers shared by the PyTorch reference scripts (make_batches.py,
reference_train.py, reference_infer.py, compare_pt.py).

Exit codes used by all of them: 0 success, 1 mismatch, 2 bad usage or input.
"""

import glob
import os
import sys

import torch


class UsageError(Exception):
    """Bad arguments or unusable input files: the script exits with 2."""


def run_main(main):
    """sys.exit(main()), turning UsageError into exit code 2."""
    try:
        code = main()
    except UsageError as e:
        print("%s: error: %s" % (os.path.basename(sys.argv[0]), e), file=sys.stderr)
        code = 2
    sys.exit(code)


def load_model(path):
    try:
        return torch.jit.load(path)
    except Exception as e:  # torch raises RuntimeError/ValueError
        raise UsageError("cannot load TorchScript model %s: %s" % (path, e))


def input_names(model):
    """The forward argument names of a TorchScript module, without self."""
    return [a.name for a in model.forward.schema.arguments[1:]]


def batch_files(batch_dir):
    files = sorted(glob.glob(os.path.join(batch_dir, "*.pt")))
    if not files:
        raise UsageError("no *.pt batch files in %s" % batch_dir)
    return files


def load_batch(path, names, need_target=False):
    """Returns (list of input tensors in `names` order, target or None)."""
    batch = torch.load(path)
    if not isinstance(batch, dict):
        raise UsageError("%s: expected a dict of tensors, got %s" % (path, type(batch).__name__))
    missing = [n for n in names if n not in batch]
    if need_target and "target" not in batch:
        missing.append("target")
    if missing:
        raise UsageError("%s: lacks %s (has %s)" % (path, ", ".join(missing), ", ".join(sorted(batch))))
    return [batch[n] for n in names], batch.get("target")


def canonical_state(model):
    """name -> tensor for every parameter and buffer, a tied parameter once.

    TorchScript's state_dict() lists a tied parameter under every name
    (tinygpt: wte.weight and lm_head.weight); named_parameters() yields it
    once, under its first name.  We keep state_dict order.
    """
    keep = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    return {n: t for n, t in model.state_dict().items() if n in keep}


def with_aliases(model, state):
    """`state` (canonical names) plus every other state_dict() name of its tensors.

    A tied parameter is one tensor with several state_dict() names (tinygpt's
    lm_head.weight is wte.weight); pprun's params.pt lists it under each, as
    load_state_dict(strict=True) needs.
    """
    sd = model.state_dict()
    canon = canonical_state(model)
    by_ptr = {t.data_ptr(): n for n, t in canon.items() if t.numel()}
    out = dict(state)
    for n, t in sd.items():
        c = by_ptr.get(t.data_ptr()) if t.numel() else None
        if n not in canon and c is not None and c in state:
            out[n] = state[c]
    return out
