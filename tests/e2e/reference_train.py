#!/usr/bin/python3
"""Train the unsplit TorchScript model: the reference for pprun's training.

Usage:  /usr/bin/python3 tests/e2e/reference_train.py MODEL.pt BATCH_DIR OUT.pt
            --steps N --loss mse|cross_entropy|model --optimizer sgd|adam|adamw
            --lr LR [--momentum X] [--weight-decay X] [--beta1 0.9]
            [--beta2 0.999] [--eps 1e-8] [--chunks M] [--accumulate]
            [--losses-out FILE.json]

torch.jit.load(MODEL.pt), model.train() (a traced model keeps whatever
training flag was baked in when it was traced), then N optimizer steps.  Step
i uses the i-th *.pt file of BATCH_DIR in sorted order, cycling (i mod K).
Inputs are taken from the batch dict by the model's forward argument names.

Loss (the contract pprun implements):
  mse            F.mse_loss(out, target), mean
  cross_entropy  F.cross_entropy(out.reshape(-1, C), target.reshape(-1)), C = out.shape[-1]
  model          the model's output (one element) is the loss
Without --accumulate: one forward/backward on the whole batch.  With
--accumulate: inputs and target are split with torch.tensor_split(t, M, dim=0)
and each micro-batch does forward, backward(loss_mb * n_mb / B); gradients
accumulate.  This equals the full-batch step except where the model uses
batch statistics (BatchNorm in train mode).  Then one step of
SGD(lr, momentum, dampening=0, weight_decay) / Adam / AdamW(lr, (beta1, beta2),
eps, weight_decay), all hyperparameters explicit (weight decay defaults to 0
for AdamW too), zero_grad(set_to_none=True) before each step.

OUT.pt: torch.save of {name: tensor} for every entry of the model's
state_dict() (a tied parameter under each of its names, as pprun's params.pt).  --losses-out: a JSON list of the
per-step full-batch loss (the sum of loss_mb * n_mb / B under --accumulate).
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_common import (UsageError, batch_files, canonical_state, input_names, with_aliases,  # noqa: E402
                        load_batch, load_model, run_main)


def compute_loss(kind, out, target):
    if isinstance(out, (tuple, list)):
        raise UsageError("the model returns %d values; the losses need exactly one" % len(out))
    if kind == "model":
        if out.numel() != 1:
            raise UsageError("--loss model needs a one-element output, got shape %s" % list(out.shape))
        return out.reshape(())
    if kind == "mse":
        return F.mse_loss(out, target)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))


def make_optimizer(args, params):
    if args.optimizer == "sgd":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, dampening=0.0,
                               weight_decay=args.weight_decay, nesterov=False)
    cls = torch.optim.Adam if args.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
               weight_decay=args.weight_decay, amsgrad=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("batch_dir")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, required=True, metavar="N")
    ap.add_argument("--chunks", type=int, default=1, metavar="M")
    ap.add_argument("--loss", choices=["mse", "cross_entropy", "model"], required=True)
    ap.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], required=True)
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--accumulate", action="store_true")
    ap.add_argument("--losses-out", metavar="FILE.json")
    args = ap.parse_args(argv)
    if args.steps < 0 or args.chunks < 1:
        raise UsageError("--steps must be >= 0 and --chunks >= 1")

    torch.manual_seed(0)  # in case a model draws random numbers (dropout)
    model = load_model(args.model)
    model.train()
    names = input_names(model)
    files = batch_files(args.batch_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(args, params)
    need_target = args.loss != "model"

    losses = []
    for step in range(args.steps):
        inputs, target = load_batch(files[step % len(files)], names, need_target)
        opt.zero_grad(set_to_none=True)
        if not args.accumulate:
            loss = compute_loss(args.loss, model(*inputs), target)
            loss.backward()
            losses.append(loss.item())
        else:
            b = inputs[0].shape[0]
            if args.chunks > b:
                raise UsageError("--chunks %d exceeds the batch size %d" % (args.chunks, b))
            parts = [torch.tensor_split(t, args.chunks, dim=0) for t in inputs]
            tparts = torch.tensor_split(target, args.chunks, dim=0) if need_target else [None] * args.chunks
            total = 0.0
            for j in range(args.chunks):
                mb = [p[j] for p in parts]
                loss = compute_loss(args.loss, model(*mb), tparts[j]) * (mb[0].shape[0] / b)
                loss.backward()
                total += loss.item()
            losses.append(total)
        opt.step()
        print("step %d: loss %.6g" % (step, losses[-1]))

    state = with_aliases(model, {n: t.detach().clone() for n, t in canonical_state(model).items()})
    torch.save(state, args.out)
    if args.losses_out:
        with open(args.losses_out, "w") as f:
            json.dump(losses, f)
    print("%d steps; %d tensors written to %s" % (args.steps, len(state), args.out))
    return 0


if __name__ == "__main__":
    run_main(main)
