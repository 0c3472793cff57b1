#!/usr/bin/python3
"""Export torchvision resnet18, mobilenet_v2 and shufflenet_v2_x0_5 (random,
seeded weights) to ONNX or, with --torchscript, to traced TorchScript.

Usage:  /usr/bin/python3 samples/export_torchvision.py OUTDIR
        /usr/bin/python3 samples/export_torchvision.py --torchscript OUTDIR [MODEL...]

Writes into OUTDIR, for each MODEL (default: all):
  <model>.onnx,  <model>_spec.json
or, with --torchscript:
  <model>_traced.pt,  <model>_spec.json

These files are NOT committed (about 45, 14 and 6 MB); tests generate them.
Weights are torchvision's default init after torch.manual_seed(0) (no
download: weights=None).  Export: eval mode, opset 17, constant folding,
input "x" [batch, 3, 224, 224] -> output "y" [batch, 1000], batch dynamic.
The ONNX files are byte-identical across runs.
TorchScript: torch.jit.trace(model.eval(), torch.randn(2, 3, 224, 224)) after
torch.manual_seed(0), saved with torch.jit.save.  The spec is the same as for
ONNX: TorchScript module paths are the dotted submodule names (layer1, ...).
"""

import argparse
import json
import os

import torch
import torchvision


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
    # Channel-shuffle blocks (view / transpose / chunk between the
    # convolutions): a traced graph keeps no dtype for the values between its
    # stages. Cut at the ends of stage2 and stage3: 3 stages.
    "shufflenet_v2_x0_5": (torchvision.models.shufflenet_v2_x0_5,
                           [end("stage2"), end("stage3")]),
}


def write_spec(outdir, name, split_points):
    with open(os.path.join(outdir, f"{name}_spec.json"), "w") as f:
        json.dump({"version": 1, "split_points": split_points}, f, indent=2)
        f.write("\n")


def export_torchscript(outdir, name, ctor):
    torch.manual_seed(0)
    model = ctor(weights=None).eval()
    example = torch.randn(2, 3, 224, 224)
    traced = torch.jit.trace(model, example)
    path = os.path.join(outdir, f"{name}_traced.pt")
    traced.save(path)
    n = len(list(traced.parameters()))
    print(f"{name}_traced.pt: {n} parameters")


def main():
    ap = argparse.ArgumentParser(description="Export torchvision models with random seeded weights.")
    ap.add_argument("--torchscript", action="store_true", help="write <model>_traced.pt instead of ONNX")
    ap.add_argument("outdir")
    ap.add_argument("models", nargs="*", help="models to export: %s (default: all)" % ", ".join(MODELS))
    args = ap.parse_args()
    for name in args.models:
        if name not in MODELS:
            ap.error("unknown model '%s' (known: %s)" % (name, ", ".join(MODELS)))
    outdir = args.outdir
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    names = args.models or list(MODELS)
    if args.torchscript:
        for name in names:
            ctor, split_points = MODELS[name]
            export_torchscript(outdir, name, ctor)
            write_spec(outdir, name, split_points)
        return
    import onnx

    for name in names:
        ctor, split_points = MODELS[name]
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
        write_spec(outdir, name, split_points)


if __name__ == "__main__":
    main()
