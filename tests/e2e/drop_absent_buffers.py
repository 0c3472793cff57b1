"""Leave out of PyTorch references the buffers that no stage holds.

Usage:  PYTHON tests/e2e/drop_absent_buffers.py MODEL.onnx MANIFEST.json REF.pt...

The dynamo exporter keeps a buffer only where a node reads it: it folds
constant ones (BERT's position_ids, LLaMA's rotary inv_freq) into constants
and merges equal ones (a causal mask per layer) into one. Such a buffer is in
no stage, so pprun cannot save it. Each REF.pt (a reference_train.py output)
is rewritten without the buffers that the model's graph signature names and
that no stage of MANIFEST.json holds; they are printed. Parameters are never
left out: a parameter missing from pprun's output stays a failure.
"""

import json
import re
import sys

import onnx
import torch


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model = onnx.load(sys.argv[1], load_external_data=False)
    sig = "".join(p.value for p in model.graph.metadata_props
                  if p.key == "pkg.torch.export.ExportedProgram.graph_signature")
    buffers = set(re.findall(r": BUFFER target='([^']*)'", sig))
    held = {p["original"] for s in json.load(open(sys.argv[2]))["stages"] for p in s["params"]}
    for path in sys.argv[3:]:
        ref = torch.load(path)
        gone = sorted(k for k in ref if k in buffers and k not in held)
        if gone:
            print(f"   buffers in no stage (folded or merged by the exporter): {', '.join(gone)}")
            torch.save({k: v for k, v in ref.items() if k not in gone}, path)


if __name__ == "__main__":
    main()
