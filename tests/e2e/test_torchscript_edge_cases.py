#!/usr/bin/python3
"""TorchScript edge cases, each checked against the full model.

* Non-tensor values crossing a cut: an int from size(), a float and a bool
  computed from it are produced before the cut and used after it; ppc must
  send them as 0-d tensors (int64 / float64 / bool, not differentiable) and
  convert them back, so the chained stages still equal the full model. A list
  crossing the cut is refused with one clear line.
* Control flow: modules called inside prim::If and prim::Loop blocks (their
  GetAttr chains hoisted out of the blocks) run in a later stage and give the
  model's outputs on both branches.

Usage: test_torchscript_edge_cases.py PPC TMPDIR
"""
import json
import os
import subprocess
import sys

import torch
import torch.nn as nn

ppc, tmp = sys.argv[1], sys.argv[2]
os.makedirs(tmp, exist_ok=True)


class A(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(8, 8)

    def forward(self, x):
        return self.l(x)


class B(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 4)

    def forward(self, x, n: int, f: float, flag: bool):
        y = self.l(x.reshape(-1, n, 4)).reshape(x.size(0), -1) * f
        return y if flag else -y


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = A()
        self.b = B()

    def forward(self, x):
        n = x.size(1) // 4
        f = float(x.size(1)) / 8.0
        flag = x.size(0) > 1
        return self.b(self.a(x), n, f, flag)


class CF(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = nn.Linear(8, 8)
        self.inner = nn.Linear(8, 8)
        self.post = nn.Linear(8, 4)

    def forward(self, x):
        x = self.pre(x)
        if x.sum() > 0:
            x = self.inner(x)
        for _ in range(2):
            x = torch.relu(self.inner(x))
        return self.post(x)


class L(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = A()
        self.b = A()

    def forward(self, x):
        shape = x.size()
        return self.b(self.a(x)).reshape(shape)


failures = []
torch.manual_seed(0)
torch.jit.script(M().eval()).save(os.path.join(tmp, "m.pt"))
torch.jit.script(L().eval()).save(os.path.join(tmp, "l.pt"))
spec = os.path.join(tmp, "spec.json")
with open(spec, "w") as f:
    json.dump({"version": 1, "split_points": [{"module": "a", "at": "end"}]}, f)

out = os.path.join(tmp, "out_m")
subprocess.run([ppc, "split", os.path.join(tmp, "m.pt"), "--splits", spec, "-o", out], check=True, capture_output=True)
man = json.load(open(os.path.join(out, "manifest.json")))
edges = {e["value"]: e for e in man["edges"]}
kinds = sorted((e["dtype"], e["shape"] == [], e["differentiable"]) for e in edges.values())
want = sorted([("int64", True, False), ("float64", True, False), ("bool", True, False), ("float32", False, True)])
if kinds != want:
    failures.append("scalar edges: got %s, want %s" % (kinds, want))
full = torch.jit.load(os.path.join(tmp, "m.pt"))
s0 = torch.jit.load(os.path.join(out, "stage0.pt"))
s1 = torch.jit.load(os.path.join(out, "stage1.pt"))
for batch in (1, 3):
    x = torch.randn(batch, 8)
    res0 = s0(x)
    env = dict(zip([o["name"] for o in man["stages"][0]["outputs"]], res0))
    y = s1(*[env[i["name"]] for i in man["stages"][1]["inputs"]])
    diff = (y - full(x)).abs().max().item()
    if diff != 0.0:
        failures.append("batch %d: chained stages differ from the model by %g" % (batch, diff))

r = subprocess.run([ppc, "split", os.path.join(tmp, "l.pt"), "--splits", spec, "-o", os.path.join(tmp, "out_l")],
                   capture_output=True, text=True)
if r.returncode != 2 or "cannot cross a stage boundary" not in r.stderr or r.stderr.count("\n") != 1:
    failures.append("a List[int] crossing the cut: want one error line and exit 2, got %d: %s" % (r.returncode, r.stderr))
if os.path.exists(os.path.join(tmp, "out_l")):
    failures.append("a failed split left out_l behind")

torch.jit.script(CF().eval()).save(os.path.join(tmp, "cf.pt"))
spec_cf = os.path.join(tmp, "spec_cf.json")
with open(spec_cf, "w") as f:
    json.dump({"version": 1, "split_points": [{"module": "pre", "at": "end"}]}, f)
out = os.path.join(tmp, "out_cf")
subprocess.run([ppc, "split", os.path.join(tmp, "cf.pt"), "--splits", spec_cf, "-o", out], check=True, capture_output=True)
full = torch.jit.load(os.path.join(tmp, "cf.pt"))
stages = [torch.jit.load(os.path.join(out, "stage%d.pt" % i)) for i in range(2)]
for sign in (1.0, -1.0):  # both branches of the If (pre's bias is small next to x)
    x = torch.randn(4, 8) * 10 * sign
    diff = (stages[1](stages[0](x)) - full(x)).abs().max().item()
    if diff != 0.0:
        failures.append("control flow (sign %g): chained stages differ by %g" % (sign, diff))

for f in failures:
    print("FAIL", f)
CHECKS = 7  # scalar edge kinds, two batch sizes, the list error, nothing left behind, two If branches
print("%d passed, %d failed" % (CHECKS - len(failures), len(failures)))
sys.exit(1 if failures else 0)
