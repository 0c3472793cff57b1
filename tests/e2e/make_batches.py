#!/usr/bin/python3
"""Write deterministic random batches for a sample model.

Usage:  /usr/bin/python3 tests/e2e/make_batches.py SAMPLE OUTDIR --batches K
            --batch-size B[,B2,...] --seed S [--loss mse|cross_entropy]

Writes OUTDIR/batch_000.pt ... batch_{K-1}.pt, each torch.save of a dict
{input name: tensor, "target": tensor}.  Input names are the forward argument
names of samples/SAMPLE/SAMPLE_{traced,scripted}.pt:

  mlp      x    float32 [B, 512]        -> [B, 10]
  skip     x    float32 [B, 32]         -> [B, 8]
  tinygpt  idx  int64   [B, 8] in [0,64) -> logits [B, 8, 64]
  convnet  x    float32 [B, 3, 16, 16]  -> [B, 10]
  image64  x    float32 [B, 3, 64, 64]  -> [B, 1000]  (a torchvision classifier
                                           at 64x64, samples/export_torchvision.py)

target: --loss mse: float32, the output's shape; --loss cross_entropy: int64
class indices over the output's last dim, shaped like the output minus that
dim ([B] or, for tinygpt, [B, T]).  Default loss: mse for mlp/skip,
cross_entropy for tinygpt/convnet.  Several batch sizes: batch k has the
(k mod n)-th.  The same arguments give the same files.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import UsageError, run_main  # noqa: E402

T = 8  # tinygpt sequence length

# name: (inputs(B, generator) -> dict, output shape(B), default loss)
SAMPLES = {
    "mlp": (lambda b, g: {"x": torch.randn(b, 512, generator=g)}, lambda b: [b, 10], "mse"),
    "skip": (lambda b, g: {"x": torch.randn(b, 32, generator=g)}, lambda b: [b, 8], "mse"),
    "tinygpt": (lambda b, g: {"idx": torch.randint(0, 64, (b, T), generator=g)},
                lambda b: [b, T, 64], "cross_entropy"),
    "convnet": (lambda b, g: {"x": torch.randn(b, 3, 16, 16, generator=g)},
                lambda b: [b, 10], "cross_entropy"),
    "image64": (lambda b, g: {"x": torch.randn(b, 3, 64, 64, generator=g)},
                lambda b: [b, 1000], "cross_entropy"),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sample", choices=sorted(SAMPLES))
    ap.add_argument("outdir")
    ap.add_argument("--batches", type=int, required=True, metavar="K")
    ap.add_argument("--batch-size", required=True, metavar="B[,B2,...]")
    ap.add_argument("--seed", type=int, required=True, metavar="S")
    ap.add_argument("--loss", choices=["mse", "cross_entropy"])
    args = ap.parse_args(argv)
    try:
        sizes = [int(b) for b in args.batch_size.split(",")]
    except ValueError:
        raise UsageError("--batch-size: expected B or B1,B2,..., not %r" % args.batch_size)
    if args.batches < 1 or min(sizes) < 1:
        raise UsageError("--batches and --batch-size must be >= 1")

    make_inputs, out_shape, default_loss = SAMPLES[args.sample]
    loss = args.loss or default_loss
    os.makedirs(args.outdir, exist_ok=True)
    g = torch.Generator().manual_seed(args.seed)
    for k in range(args.batches):
        shape = out_shape(sizes[k % len(sizes)])
        batch = make_inputs(sizes[k % len(sizes)], g)
        if loss == "mse":
            batch["target"] = torch.randn(shape, generator=g)
        else:
            batch["target"] = torch.randint(0, shape[-1], shape[:-1], generator=g)
        torch.save(batch, os.path.join(args.outdir, "batch_%03d.pt" % k))
    desc = ", ".join("%s %s %s" % (n, str(t.dtype).replace("torch.", ""), list(t.shape))
                     for n, t in batch.items())
    print("%s: %d batches (%s, loss %s) in %s" % (args.sample, args.batches, desc, loss, args.outdir))
    return 0


if __name__ == "__main__":
    run_main(main)
