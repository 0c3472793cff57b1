#!/usr/bin/env python3
"""torch.export programs (.pt2) for the end-to-end tests, and eager PyTorch's references for them.

Usage:  PY tests/e2e/pt2_reference.py export MODEL DIR
        PY tests/e2e/pt2_reference.py infer DIR BATCH_DIR OUT.pt [reference_infer.py options]
        PY tests/e2e/pt2_reference.py train DIR BATCH_DIR OUT.pt [reference_train.py options]

export (torch 2.x): MODEL is a sample of samples/export.py (mlp, skip, tinygpt,
convnet: its module with the weights samples/MODEL/MODEL_params.pt) or a
transformer family of samples/export_families.py (gpt2, bert, t5, llama). The
module in eval() mode is exported with torch.export.export(..., strict=False),
every input's batch dimension a torch.export.Dim, and saved as DIR/model.pt2;
DIR/state.pt holds its state_dict, DIR/source.json what was exported.

infer / train: reference_infer.py / reference_train.py with the eager nn.Module
of DIR (built again, state.pt loaded) in place of a TorchScript model; inputs
are taken from the batch files by the forward's argument names, which are the
names torch.export gives the program's inputs.
"""

import inspect
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "samples"))

FAMILIES = ("gpt2", "bert", "t5", "llama")


def build(name):
    """(eager module, {input name: example tensor})"""
    if name in FAMILIES:
        import export_families as ef
        spec = ef.build(name, "eager" if name == "t5" else "sdpa")
        return spec["model"], spec["inputs"]
    import export as samples
    model, example, in_name, _, _ = samples.build(name)
    model.load_state_dict(torch.load(os.path.join(ROOT, "samples", name, f"{name}_params.pt")))
    return model, {in_name: example}


def export(name, out):
    os.makedirs(out, exist_ok=True)
    model, inputs = build(name)
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(model, tuple(inputs.values()), dynamic_shapes={k: {0: batch} for k in inputs},
                             strict=False)
    torch.export.save(ep, os.path.join(out, "model.pt2"))
    torch.save(model.state_dict(), os.path.join(out, "state.pt"))
    with open(os.path.join(out, "source.json"), "w") as f:
        json.dump({"model": name, "inputs": list(inputs)}, f)


def load_eager(path):
    with open(os.path.join(path, "source.json")) as f:
        source = json.load(f)
    model, _ = build(source["model"])
    model.load_state_dict(torch.load(os.path.join(path, "state.pt")))
    model.eval()
    return model


def forward_names(model):
    return [n for n in inspect.signature(model.forward).parameters]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    mode = sys.argv[1]
    if mode == "export":
        export(sys.argv[2], sys.argv[3])
        return 0
    import ref_common
    ref_common.load_model = load_eager
    ref_common.input_names = forward_names
    if mode == "infer":
        import reference_infer as ref
    elif mode == "train":
        import reference_train as ref
    else:
        sys.exit(__doc__)
    return ref.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
