"""Exports the sample models as torch.export programs (PyTorch 2.x).

Usage:  .venv/bin/python samples/export_pt2.py [ROOT]

For each sample of export.py (same modules, and the weights export.py saved
in <name>/<name>_params.pt, so every format of a sample is the same model):

  <name>.pt2   torch.export.export(model.eval(), (example,), strict=False) with
               the batch dimension symbolic, saved by torch.export.save

The archives record stack traces (paths of this checkout and of torch) and a
random serialization id, so a re-export is not byte-identical; the committed
ones are what the goldens hash.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export as samples  # noqa: E402


def export_pt2(name, root):
    model, example, in_name, _, _ = samples.build(name)
    state = torch.load(os.path.join(root, name, f"{name}_params.pt"))
    model.load_state_dict(state)
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(model, (example,), dynamic_shapes={in_name: {0: batch}},
                             strict=False)
    path = os.path.join(root, name, f"{name}.pt2")
    torch.export.save(ep, path)
    again = torch.export.load(path).module()
    x = torch.cat([example, example[:1]])  # another batch size than the export's
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6), name
    print(f"  {os.path.basename(path)}: {sum(1 for n in ep.graph.nodes if n.op == 'call_function')} nodes, "
          f"{len(ep.state_dict)} state tensors")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)
    for name in samples.MODELS:
        print(name)
        export_pt2(name, root)


if __name__ == "__main__":
    main()
