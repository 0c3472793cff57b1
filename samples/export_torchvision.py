#!/usr/bin/python3
"""Export torchvision resnet18 and mobilenet_v2 (random, seeded weights) to ONNX.

Usage:  /usr/bin/python3 samples/export_torchvision.py OUTDIR

Writes into OUTDIR:
  resnet18.onnx,      resnet18_spec.json
  mobilenet_v2.onnx,  mobilenet_v2_spec.json

These files are NOT committed (about 45 MB and 14 MB); tests generate them.
Weights are torchvision's default init after torch.manual_seed(0) (no
download: weights=None).  Export: eval mode, opset 17, constant folding,
input "x" [batch, 3, 224, 224] -> output "y" [batch, 1000], batch dynamic.
The ONNX files are byte-identical across runs.
"""

import json
import os
import sys

import torch
import torchvision

import onnx


def end(module):
    return {"module": module, "at": "end"}


MODELS = {
    # BasicBlocks: /layer1/layer1.0/conv1/Conv ... ; module "layer1" covers
    # every node under /layer1/.
    "resnet18": (torchvision.models.resnet18,
                 [end("layer1"), end("layer2"), end("layer3")]),
    # InvertedResidual blocks: /features/features.4/conv/conv.0/conv.0.0/Conv ...
    "mobilenet_v2": (torchvision.models.mobilenet_v2,
                     [end("features.4"), end("features.9"), end("features.14")]),
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: export_torchvision.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    for name, (ctor, split_points) in MODELS.items():
        torch.manual_seed(0)
        model = ctor(weights=None).eval()
        example = torch.randn(1, 3, 224, 224)
        path = os.path.join(outdir, f"{name}.onnx")
        with torch.no_grad():
            torch.onnx.export(
                model, (example,), path,
                opset_version=17,
                do_constant_folding=True,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            )
        m = onnx.load(path)
        onnx.checker.check_model(m, full_check=True)
        print(f"{name}.onnx: {len(m.graph.node)} nodes, "
              f"{len(m.graph.initializer)} initializers")
        with open(os.path.join(outdir, f"{name}_spec.json"), "w") as f:
            json.dump({"version": 1, "split_points": split_points}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
