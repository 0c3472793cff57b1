#!/usr/bin/python3
"""Export the committed ppc sample models.

Usage:  /usr/bin/python3 samples/export.py [OUTDIR]

OUTDIR defaults to the directory holding this script (samples/).  For each
model <name> this writes, into OUTDIR/<name>/:

  <name>.onnx            ONNX, opset 17, constant folding, dynamic batch
  <name>_traced.pt       torch.jit.trace(...), saved without *.debug_pkl
  <name>_scripted.pt     torch.jit.script(...), saved without *.debug_pkl
  <name>_params.pt       torch.save(model.state_dict())

tinygpt additionally gets tinygpt_op13.onnx (opset 13).
The split specs (spec*.json) are also (re)written.

Everything is seeded (torch.manual_seed(0) before each model is built), each
model is exported in a fresh interpreter with PYTHONHASHSEED=0, and the
TorchScript archives drop their path-bearing debug records, so the outputs are
byte-identical across runs and checkouts.  Needs torch (1.13 tested) and onnx (1.12 tested).
"""

import json
import math
import os
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import onnx


# ---------------------------------------------------------------------------
# 1. mlp: the PiPPy README network
# ---------------------------------------------------------------------------
class MLPBlock(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.lin = nn.Linear(d_in, d_out)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.lin(x))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer0 = MLPBlock(512, 512)
        self.layer1 = MLPBlock(512, 1024)
        self.layer2 = MLPBlock(1024, 256)
        self.output_proj = nn.Linear(256, 10)

    def forward(self, x):
        x = self.layer0(x)
        x = self.layer1(x)
        x = self.layer2(x)
        return self.output_proj(x)


# ---------------------------------------------------------------------------
# 2. skip: Linear+ReLU blocks with long skip connections
# ---------------------------------------------------------------------------
class SkipBlock(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.lin(x))


class SkipNet(nn.Module):
    """inp -> blocks.0 .. blocks.5 -> head.

    skip 1: output of blocks.0 is added to the output of blocks.3
    skip 2: output of blocks.2 is added to the output of blocks.5
    """

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(32, 64)
        self.blocks = nn.ModuleList([SkipBlock(64) for _ in range(6)])
        self.head = nn.Linear(64, 8)

    def forward(self, x):
        h = self.inp(x)
        h0 = self.blocks[0](h)
        h = self.blocks[1](h0)
        h2 = self.blocks[2](h)
        h = self.blocks[3](h2)
        h = h + h0  # skip 1
        h = self.blocks[4](h)
        h = self.blocks[5](h)
        h = h + h2  # skip 2
        return self.head(h)


# ---------------------------------------------------------------------------
# 3. tinygpt: GPT-2 style, tied embedding / LM head
# ---------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_head: int, block_size: int):
        super().__init__()
        self.n_head = n_head
        self.d = d
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.register_buffer(
            "bias",
            torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size),
        )

    def forward(self, x):
        B, T, C = x.size()
        qkv = self.qkv(x)
        q, k, v = qkv.split(self.d, dim=2)
        hs = self.d // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class GPTMLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.fc = nn.Linear(d, 4 * d)
        self.gelu = nn.GELU()
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.proj(self.gelu(self.fc(x)))


class GPTBlock(nn.Module):
    def __init__(self, d: int, n_head: int, block_size: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_head, block_size)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = GPTMLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class TinyGPT(nn.Module):
    def __init__(self, vocab: int = 64, d: int = 32, n_head: int = 2,
                 block_size: int = 16, n_layer: int = 2):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block_size, d)
        self.h = nn.ModuleList([GPTBlock(d, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying

    def forward(self, idx):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device).unsqueeze(0)
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.h:
            x = blk(x)
        x = self.ln_f(x)
        return self.lm_head(x)


# ---------------------------------------------------------------------------
# 4. convnet: small ResNet-style CNN with BatchNorm
# ---------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )
        else:
            self.downsample = nn.Identity()

    def forward(self, x):
        identity = self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


def randomize_bn(model: nn.Module):
    """Give BatchNorm layers non-trivial (but deterministic) stats/affine."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


# ---------------------------------------------------------------------------
# specs
# ---------------------------------------------------------------------------
def end(module):
    return {"module": module, "at": "end"}


SPECS = {
    "mlp": {
        "spec.json": {"version": 1, "split_points": [end("layer0"), end("layer1")]},
        "spec_auto.json": {"version": 1, "auto": {"stages": 2}},
        # Declares the input's dtype and shape: TorchScript archives record
        # neither; for the ONNX export ppc checks them against the model.
        "spec_typed.json": {"version": 1, "split_points": [end("layer0"), end("layer1")],
                            "inputs": {"x": {"dtype": "float32", "shape": ["batch", 512]}}},
        # every split-point form; 4 stages: layer0 | layer1 | layer2 | output_proj
        "spec_mixed.json": {"version": 1, "split_points": [
            {"node": "/layer0/relu/Relu", "at": "end"},
            {"module": "layer2", "at": "begin"},
            {"value": "/layer2/relu/Relu_output_0"},
        ]},
    },
    "skip": {
        # stage 0: inp, blocks.0, blocks.1
        # stage 1: blocks.2, blocks.3
        # stage 2: skip-1 Add, blocks.4, blocks.5, skip-2 Add, head
        # The Add after blocks.3 is a top-level node that comes after the
        # cut, so blocks.0's output travels from stage 0 to stage 2 (crossing
        # stage 1); blocks.2's output travels from stage 1 to stage 2.
        "spec.json": {"version": 1, "split_points": [end("blocks.1"), end("blocks.3")]},
        "spec_auto.json": {"version": 1, "auto": {"stages": 3}},
    },
    "tinygpt": {
        # The LM head reads a constant-folded transposed copy of wte.weight
        # (onnx::MatMul_N); detect_folded confirms it is the same parameter.
        "spec.json": {"version": 1, "split_points": [end("h.0"), end("h.1")],
                      "ties": {"detect_folded": True}},
        # The tie named explicitly, plus micro-batch and runtime defaults.
        "spec_explicit.json": {
            "version": 1,
            "split_points": [end("h.0"), end("h.1")],
            "ties": {"groups": [{"members": ["wte.weight", "onnx::MatMul_289"], "policy": "replicate"}]},
            "inputs": {"idx": {"batch_dim": 0}},
            "defaults": {"schedule": "1f1b", "chunks": 4},
        },
        "spec_transmit.json": {
            "version": 1,
            "split_points": [end("h.0"), end("h.1")],
            "ties": {"detect_folded": True, "policy": "transmit"},
        },
    },
    "convnet": {
        "spec.json": {"version": 1, "split_points": [end("stem"), end("layer1")]},
    },
}


def write_specs(outdir: str, name: str):
    for fname, spec in SPECS[name].items():
        with open(os.path.join(outdir, fname), "w") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")


# ---------------------------------------------------------------------------
# export driver
# ---------------------------------------------------------------------------
MODELS = ["mlp", "skip", "tinygpt", "convnet"]


def build(name):
    torch.manual_seed(0)
    if name == "mlp":
        m = MLP()
        example = torch.randn(2, 512)
        return m, example, "x", "y", {"x": {0: "batch"}, "y": {0: "batch"}}
    if name == "skip":
        m = SkipNet()
        example = torch.randn(2, 32)
        return m, example, "x", "y", {"x": {0: "batch"}, "y": {0: "batch"}}
    if name == "tinygpt":
        m = TinyGPT()
        example = torch.randint(0, 64, (2, 8), dtype=torch.long)
        return (m, example, "idx", "logits",
                {"idx": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}})
    if name == "convnet":
        m = ConvNet()
        randomize_bn(m)
        example = torch.randn(2, 3, 16, 16)
        return m, example, "x", "y", {"x": {0: "batch"}, "y": {0: "batch"}}
    raise ValueError(name)


def export_onnx(model, example, path, in_name, out_name, dyn, opset):
    torch.onnx.export(
        model, (example,), path,
        opset_version=opset,
        do_constant_folding=True,
        input_names=[in_name],
        output_names=[out_name],
        dynamic_axes=dyn,
    )
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    print(f"  {os.path.basename(path)}: {len(m.graph.node)} nodes, "
          f"{len(m.graph.initializer)} initializers")


def save_jit(module, path):
    """module.save(path), minus the *.debug_pkl records.

    The debug_pkl records hold source ranges that embed absolute paths (this
    script's and torch's install dir) and line numbers, so keeping them would
    make the archives depend on where the checkout lives and on unrelated
    edits to this file.  torch.jit.load does not need them.  The archive is
    rewritten with torch's own zip writer, so the layout (record prefix,
    64-byte alignment, version record) stays the standard TorchScript one.
    """
    tmp = path + ".tmp"
    module.save(tmp)
    reader = torch._C.PyTorchFileReader(tmp)
    writer = torch._C.PyTorchFileWriter(path)
    for rec in reader.get_all_records():
        if rec.endswith(".debug_pkl") or rec == "version":
            continue  # "version" is written by write_end_of_file()
        data = reader.get_record(rec)
        writer.write_record(rec, data, len(data))
    writer.write_end_of_file()
    del writer, reader
    os.remove(tmp)


def export(name, root):
    outdir = os.path.join(root, name)
    os.makedirs(outdir, exist_ok=True)
    print(name)
    model, example, in_name, out_name, dyn = build(name)
    model.eval()
    with torch.no_grad():
        ref = model(example)

        export_onnx(model, example, os.path.join(outdir, f"{name}.onnx"),
                    in_name, out_name, dyn, 17)
        if name == "tinygpt":
            export_onnx(model, example, os.path.join(outdir, f"{name}_op13.onnx"),
                        in_name, out_name, dyn, 13)

        # script before trace: tracing compiles (and name-mangles) the module
        # types, scripting first keeps the scripted archive's class names clean.
        scripted = torch.jit.script(model)
        save_jit(scripted, os.path.join(outdir, f"{name}_scripted.pt"))
        traced = torch.jit.trace(model, example)
        save_jit(traced, os.path.join(outdir, f"{name}_traced.pt"))
        assert torch.allclose(traced(example), ref)
        assert torch.allclose(scripted(example), ref)

    torch.save(model.state_dict(), os.path.join(outdir, f"{name}_params.pt"))
    write_specs(outdir, name)


def main():
    # TorchScript serialization writes module constants (__constants__ is a
    # set of strings) in hash order; pin the hash seed so *_scripted.pt is
    # byte-identical across runs.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--one":
        # child: export one model in a fresh interpreter, so TorchScript's
        # process-global name-mangling counters do not depend on which
        # models were exported before it.
        torch.set_num_threads(1)
        export(args[2], args[1])
        return
    root = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    for name in MODELS:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--one", root, name],
                       check=True)


if __name__ == "__main__":
    main()
