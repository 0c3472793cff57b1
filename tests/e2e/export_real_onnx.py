#!/usr/bin/python3
"""Export models written by others to ONNX, with PyTorch's outputs on a batch.

Usage:  /usr/bin/python3 tests/e2e/export_real_onnx.py OUTDIR [NAME ...]

For each model NAME (default: all of them) writes OUTDIR/NAME.onnx (torch.onnx.export, eval mode,
opset 17, constant folding, dynamic batch dim, input "x", output "y"),
OUTDIR/NAME_batch.pt ({"x": a batch}) and OUTDIR/NAME_ref.pt ({"y": the
eager model's output on it, under no_grad}):

  resnet18      torchvision.models.resnet18(weights=None), input [2, 3, 64, 64]
  mobilenet_v2  torchvision.models.mobilenet_v2(weights=None), input [2, 3, 64, 64]
  transformer   nn.Embedding(100, 32) + nn.TransformerEncoder(2 x
                nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)) +
                nn.LayerNorm + nn.Linear(32, 100); input int64 [2, 12]
  transformer12 the same shape of LM, 12 blocks: nn.Embedding(256, 64) +
                nn.TransformerEncoder(12 x nn.TransformerEncoderLayer(64, 4,
                256, batch_first=True)) + nn.LayerNorm + nn.Linear(64, 256);
                input int64 [2, 16]. Its blocks are the module instances
                encoder.layers.0 .. encoder.layers.11 (dotted depth 3; ONNX
                scopes /encoder/layers.3/...)

Weights are seeded (torch.manual_seed(0) before building each model); BatchNorm
running statistics are randomised so that folding them is not a no-op.
"""

import os
import sys

import torch
import torch.nn as nn
import torchvision


class Transformer(nn.Module):
    def __init__(self, vocab=100, d_model=32, heads=4, ffn=64, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, x):
        return self.head(self.norm(self.encoder(self.emb(x))))


def randomise_bn(model, g):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


# These are the TorchScript-based exporter's models (node names carry the
# module scopes); PyTorch 2.x defaults to the dynamo exporter, which
# tests/e2e/test_pprun_dynamo.sh covers.
LEGACY_EXPORTER = {"dynamo": False} if int(torch.__version__.split(".")[0]) >= 2 else {}


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    builds = {
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), lambda g: torch.randn(2, 3, 64, 64, generator=g)),
        "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None),
                         lambda g: torch.randn(2, 3, 64, 64, generator=g)),
        "transformer": (Transformer, lambda g: torch.randint(0, 100, (2, 12), generator=g)),
        "transformer12": (lambda: Transformer(vocab=256, d_model=64, heads=4, ffn=256, layers=12),
                          lambda g: torch.randint(0, 256, (2, 16), generator=g)),
    }
    names = sys.argv[2:] or list(builds)
    unknown = [n for n in names if n not in builds]
    if unknown:
        print("export_real_onnx.py: unknown model(s) %s (known: %s)" % (", ".join(unknown), ", ".join(builds)),
              file=sys.stderr)
        return 2
    os.makedirs(out, exist_ok=True)
    for name, (make, batch) in builds.items():
        if name not in names:
            continue
        torch.manual_seed(0)
        model = make()
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            randomise_bn(model, g)
        model.eval()
        x = batch(g)
        with torch.no_grad():
            y = model(x)
        torch.onnx.export(model, (x,), os.path.join(out, name + ".onnx"), opset_version=17, do_constant_folding=True,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          **LEGACY_EXPORTER)
        torch.save({"x": x}, os.path.join(out, name + "_batch.pt"))
        torch.save({"y": y}, os.path.join(out, name + "_ref.pt"))
        print("%s: %s -> %s" % (name, list(x.shape), list(y.shape)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
