"""Makes torch.export programs (.pt2) for the tests (PyTorch 2.x).

Usage:  PYTHON tests/e2e/export_pt2.py OUT_DIR family gpt2|bert|t5|llama
        PYTHON tests/e2e/export_pt2.py OUT_DIR cond

family: the transformer family of samples/export_families.py (tiny config,
seeded weights, eval), exported with torch.export.export(..., strict=False)
and a symbolic batch, to OUT_DIR/<family>.pt2, plus OUT_DIR/<family>_spec.json
cutting after the first block (by module path: transformer.h.0,
bert.encoder.layer.0, encoder.block.1, model.layers.0).
cond: a module whose forward branches with torch.cond (a higher-order
operator with subgraphs), to OUT_DIR/cond.pt2.
"""

import json
import os
import sys
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPLITS = {"gpt2": ["transformer.h.0"], "bert": ["bert.encoder.layer.0"],
          "t5": ["encoder.block.1", "decoder.block.0"], "llama": ["model.layers.0"]}


def export_family(out, family):
    sys.path.insert(0, os.path.join(ROOT, "samples"))
    import export_families as ef
    spec = ef.build(family, "sdpa")
    args = tuple(spec["inputs"].values())
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(spec["model"], args, dynamic_shapes=tuple({0: batch} for _ in args), strict=False)
    torch.export.save(ep, os.path.join(out, family + ".pt2"))
    with open(os.path.join(out, family + "_spec.json"), "w") as f:
        json.dump({"version": 1, "split_points": [{"module": m, "at": "end"} for m in SPLITS[family]]}, f)


class Cond(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: self.lin(t), lambda t: -t, (x,))


def main():
    warnings.filterwarnings("ignore")
    out, kind = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    if kind == "family":
        export_family(out, sys.argv[3])
    elif kind == "cond":
        ep = torch.export.export(Cond().eval(), (torch.randn(2, 4),), strict=False)
        torch.export.save(ep, os.path.join(out, "cond.pt2"))
    else:
        sys.exit("unknown kind " + kind)


if __name__ == "__main__":
    main()
