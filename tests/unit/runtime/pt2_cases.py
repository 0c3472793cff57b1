#!/usr/bin/env python3
"""torch.export (.pt2) cases for pt2_program_check, and the check of what it saved.

Usage:  python pt2_cases.py make DIR     (torch 2.x; writes DIR/<case>/)
        python pt2_cases.py saved DIR    (after pt2_program_check: the saved stages)

make: each model is exported with torch.export.export(..., strict=False) and a
torch.export.Dim batch at batch 3, saved with torch.export.save as
DIR/<case>/model.pt2; io.pt holds inputs at batch 5 ("in.<name>"), cotangents
("cot.<i>"), and what eager PyTorch computes on them: outputs ("out.<i>"), the
gradients of sum_i out_i * cot_i with respect to the float inputs ("gin.<name>")
and to every parameter under each of its names ("grad.<fqn>"), the buffers
after that forward ("buf.<fqn>"), and, for models with batch norm, the outputs
of a following forward in eval() mode ("eval.<i>"). Bad archives get an
error.txt with the text the load error must contain.

saved: pt2_program_check wrote DIR/<case>/saved.pt2 after adding 0.5 to every
parameter, with saved_state.pt (the state it saved) and saved_out.pt (its
outputs then): torch.export.load must open saved.pt2, hold exactly that state,
and its module must compute those outputs.
"""

import io
import os
import sys
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "samples"))

EXPORT_BATCH, RUN_BATCH = 3, 5


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = torch.nn.Linear(6, 16), torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x)))


class Skip(torch.nn.Module):
    """A skip connection, layer norm, an in-place relu on a user input, a view by a symbolic size."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
        self.ln = torch.nn.LayerNorm(8)

    def forward(self, x, y):
        y = torch.nn.functional.relu(y, inplace=True)  # written in place: pprun copies the input
        h = self.ln(self.a(x)) + y
        h = h.view(x.shape[0] * 2, 4).reshape(x.shape[0], 8)
        return self.b(h) + x, h.sum(dim=1)


class Block(torch.nn.Module):
    """Embedding (tied to the head), batch norm (train mode), causal attention with a
    non-persistent mask buffer, a lifted tensor constant, gelu(tanh), split and cat."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.qkv = torch.nn.Linear(8, 24)
        self.ln = torch.nn.LayerNorm(8)
        self.head = torch.nn.Linear(8, 20, bias=False)
        self.head.weight = self.emb.weight
        self.register_buffer("mask", torch.tril(torch.ones(6, 6)), persistent=False)
        self.scale = torch.tensor([0.5, 1.0, 1.5, 2.0, 0.5, 1.0, 1.5, 2.0])

    def forward(self, idx):
        b = idx.shape[0]
        h = self.emb(idx)
        h = self.bn(h.reshape(-1, 8)).reshape(b, 6, 8) * self.scale
        q, k, v = self.qkv(self.ln(h)).split(8, dim=-1)
        a = (q @ k.transpose(1, 2) / 8 ** 0.5).masked_fill(self.mask == 0, float("-inf")).softmax(-1)
        h = h + torch.nn.functional.gelu(a @ v, approximate="tanh")
        return self.head(h)


def family(name):
    import export_families as ef
    spec = ef.build(name, "sdpa")
    gen = torch.Generator().manual_seed(7)
    return spec["model"], spec["make_inputs"](gen, EXPORT_BATCH, True), spec["make_inputs"](gen, RUN_BATCH, False)


def own(model, make):
    torch.manual_seed(0)
    m = model()
    g = torch.Generator().manual_seed(1)
    return m, make(g, EXPORT_BATCH), make(g, RUN_BATCH)


def cases():
    yield ("mlp", *own(Mlp, lambda g, b: {"x": torch.randn(b, 6, generator=g)}))
    yield ("skip", *own(Skip, lambda g, b: {"x": torch.randn(b, 8, generator=g), "y": torch.randn(b, 8, generator=g)}))
    yield ("block", *own(Block, lambda g, b: {"idx": torch.randint(0, 20, (b, 6), generator=g)}))
    try:
        import transformers  # noqa: F401
    except ImportError:
        return
    for name in ("gpt2", "llama"):
        yield (name, *family(name))


def export(model, inputs):
    batch = torch.export.Dim("batch", min=1, max=64)
    return torch.export.export(model, tuple(inputs.values()), dynamic_shapes={k: {0: batch} for k in inputs},
                               strict=False)


def make_case(out, name, model, export_inputs, run_inputs):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    ep = export(model, export_inputs)
    torch.export.save(ep, os.path.join(d, "model.pt2"))
    placeholders = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    io_ = {}
    args = []
    for (k, v), ph in zip(run_inputs.items(), placeholders):
        io_["in." + ph] = v.clone()
        args.append(v.clone().requires_grad_(v.is_floating_point()))
    # Through a copy: a model writing an input in place may not write the leaf.
    outs = model(*[a.clone() for a in args])
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    g = torch.Generator().manual_seed(3)
    loss = 0
    for i, o in enumerate(outs):
        cot = torch.randn(o.shape, generator=g)
        io_[f"cot.{i}"], io_[f"out.{i}"] = cot, o.detach().clone()
        loss = loss + (o * cot).sum()
    loss.backward()
    for a, ph in zip(args, placeholders):
        if a.is_floating_point():
            io_["gin." + ph] = a.grad.clone()
    for fqn, p in model.named_parameters(remove_duplicate=False):
        io_["grad." + fqn] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    for fqn, b in model.named_buffers(remove_duplicate=False):
        io_["buf." + fqn] = b.detach().clone()
    if any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()):
        model.eval()
        with torch.no_grad():
            e = model(*[a.detach() for a in args])
        for i, o in enumerate(e if isinstance(e, (tuple, list)) else [e]):
            io_[f"eval.{i}"] = o.clone()
    torch.save(io_, os.path.join(d, "io.pt"))


def rewrite(src, dst, edit):
    """Copies the archive src to dst with model.json edited by edit(text) -> text."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("models/model.json"):
                data = edit(data.decode()).encode()
            zout.writestr(info.filename, data)


def bad_case(out, name, make, error):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    make(os.path.join(d, "model.pt2"))
    with open(os.path.join(d, "error.txt"), "w") as f:
        f.write(error)


class Cond(torch.nn.Module):
    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: t + 1, lambda t: t - 1, (x,))


def bad_cases(out):
    good = os.path.join(out, "mlp", "model.pt2")
    bad_case(out, "bad_unknown_op",
             lambda p: rewrite(good, p, lambda t: t.replace("torch.ops.aten.relu.default", "torch.ops.aten.no_such_op.default")),
             "node 'relu' (torch.ops.aten.no_such_op.default): unsupported op: this LibTorch")
    bad_case(out, "bad_schema_major",
             lambda p: rewrite(good, p, lambda t: t.replace('"schema_version": {"major": 8', '"schema_version": {"major": 99')),
             "ExportedProgram schema version 99.")

    def truncated(p):
        data = open(good, "rb").read()
        open(p, "wb").write(data[: len(data) // 2])
    bad_case(out, "bad_truncated", truncated, "cannot read the .pt2 archive")
    bad_case(out, "bad_higher_order",
             lambda p: torch.export.save(torch.export.export(Cond(), (torch.randn(3),), strict=False), p),
             "(torch.ops.higher_order.cond): unsupported op: higher-order ops")


def check_saved(out):
    failed = 0
    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if not os.path.exists(os.path.join(d, "saved.pt2")):
            continue
        ep = torch.export.load(os.path.join(d, "saved.pt2"))
        state = torch.load(os.path.join(d, "saved_state.pt"))
        io_ = torch.load(os.path.join(d, "io.pt"))
        want_out = torch.load(os.path.join(d, "saved_out.pt"))
        have = dict(ep.state_dict)
        have.update(ep.constants)
        bad = [k for k, v in state.items() if k not in have or not torch.equal(have[k].detach(), v)]
        args = [v for k, v in io_.items() if k.startswith("in.")]
        m = ep.module()
        with torch.no_grad():
            outs = m(*[a.clone() for a in args])
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        diffs = [(o - want_out[f"out.{i}"]).abs().max().item() for i, o in enumerate(outs)]
        ok = not bad and len(state) > 0 and all(x <= 1e-5 for x in diffs)
        failed += not ok
        print(("ok    " if ok else "FAIL  ") + f"{name}: saved.pt2 loads, {len(state)} tensors"
              + (f" differ: {bad[:3]}" if bad else " equal") + f", outputs max diff {max(diffs):.2e}")
    return failed


def main():
    mode, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)  # the reference computes as pt2_program_check does: one thread, one summation order
    torch.manual_seed(0)
    if mode == "saved":
        sys.exit(1 if check_saved(out) else 0)
    for name, model, export_inputs, run_inputs in cases():
        make_case(out, name, model, export_inputs, run_inputs)
    bad_cases(out)


if __name__ == "__main__":
    main()
