#!/bin/bash
# End-to-end: TorchScript stages, whose activations the manifest gives no
# shapes, when those shapes change. pprun guesses a micro-batch's activation
# shapes from an earlier step's micro-batch with the same input shapes and
# posts its receive ahead; a wrong guess is redirected (docs/runtime.md, the
# wire format). Against PyTorch running the unsplit model:
#   - mlp (traced) with batches of 8, 7, 8 and 5 samples in 4 micro-batches
#     (2,2,2,2 / 2,2,2,1 / 2,1,1,1): new shapes between steps and within a
#     step, known ones again; 2 stages 1F1B, 3 stages GPipe, 4 stages
#     interleaved on 2 ranks: inference outputs, 4 SGD steps (parameters and
#     per-step losses);
#   - a scripted model whose stage boundary carries the rows of an activation
#     that pass a threshold (a boolean mask): its shapes follow the data, so
#     guesses miss and are redirected; 4 SGD steps against PyTorch
#     accumulating the same micro-batches, 1F1B and GPipe.
#
# Usage: tests/e2e/test_pprun_shapes.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$1" "$2"
SECONDS=0
W=$OUT_TMP
rm -rf "${W:?}"/*
SGD="--optimizer sgd --lr 0.05 --momentum 0.9"

step "mlp: batches of 8, 7, 8, 5 samples and PyTorch references"
MODEL=$ROOT/samples/mlp/mlp_traced.pt
"$PY" "$E2E/make_batches.py" mlp "$W/batches" --batches 4 --batch-size 8,7,8,5 --seed 3 --loss mse >/dev/null
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 4 --output-name output >/dev/null
# shellcheck disable=SC2086
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_sgd.pt" --steps 4 --loss mse $SGD \
  --losses-out "$W/ref_sgd.json" >/dev/null
for case in "2 2 1f1b" "3 3 gpipe" "4 2 interleaved-1f1b"; do
  read -r stages ranks sched <<<"$case"
  out=$W/split$stages
  [ -d "$out" ] || "$PPC" split "$MODEL" --stages "$stages" -o "$out" >/dev/null
  run=(--manifest "$out" --nproc "$ranks" --schedule "$sched" --chunks 4 --inputs "$W/batches" --steps 4)
  step "mlp: $stages stages on $ranks ranks, $sched: inference"
  "$PPRUN" "${run[@]}" --output "$W/out.pt" --quiet || fail "pprun inference ($stages stages, $sched)"
  compare "$W/out.pt" "$W/ref_out.pt" "outputs"
  step "mlp: $stages stages on $ranks ranks, $sched: 4 SGD steps"
  # shellcheck disable=SC2086
  "$PPRUN" "${run[@]}" --train --loss mse $SGD --save "$W/ck" >"$W/train.log" 2>&1 ||
    { cat "$W/train.log" >&2; fail "pprun training ($stages stages, $sched)"; }
  compare "$W/ck/params.pt" "$W/ref_sgd.pt" "params after 4 steps"
  compare_losses "$W/train.log" "$W/ref_sgd.json" "per-step loss"
done

step "shapes that follow the data: a scripted model cut across a masked selection"
# TorchScript compiles a class from its source file: the script goes to a file first.
cat >"$W/make_dd.py" <<'PYEOF'
import json
import os
import sys

import torch
import torch.nn as nn


class A(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(16, 16)

    def forward(self, x):
        h = torch.relu(self.l(x))
        return h, h[x[:, 0] > 0]  # 0, 1 or 2 rows of a micro-batch of 2, as the data says


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = A()
        self.b = nn.Linear(16, 4)
        self.c = nn.Linear(16, 4)

    def forward(self, x):
        h, sel = self.a(x)
        return self.b(h) + self.c(sel).sum(0, keepdim=True)


torch.manual_seed(0)
torch.jit.script(DataDependent()).save(sys.argv[1])
json.dump({"version": 1, "split_points": [{"module": "a", "at": "end"}]}, open(sys.argv[2], "w"))
torch.manual_seed(5)
os.makedirs(os.path.join(os.path.dirname(sys.argv[1]), "dd_batches"), exist_ok=True)
for k in range(4):
    torch.save({"x": torch.randn(8, 16), "target": torch.randn(8, 4)},
               os.path.join(os.path.dirname(sys.argv[1]), "dd_batches", "batch_%03d.pt" % k))
PYEOF
"$PY" "$W/make_dd.py" "$W/dd.pt" "$W/dd_spec.json"
"$PPC" split "$W/dd.pt" --splits "$W/dd_spec.json" -o "$W/dd_split" >/dev/null
# Each micro-batch sums its own selected rows: PyTorch accumulates the same micro-batches.
# shellcheck disable=SC2086
"$PY" "$E2E/reference_train.py" "$W/dd.pt" "$W/dd_batches" "$W/dd_ref.pt" --steps 4 --loss mse $SGD \
  --chunks 4 --accumulate --losses-out "$W/dd_ref.json" >/dev/null
for sched in 1f1b gpipe; do
  step "data-dependent shapes: 2 stages, $sched: 4 SGD steps"
  # shellcheck disable=SC2086
  "$PPRUN" --manifest "$W/dd_split" --nproc 2 --schedule $sched --chunks 4 --inputs "$W/dd_batches" --steps 4 \
    --train --loss mse $SGD --save "$W/dd_ck" >"$W/dd_train.log" 2>&1 ||
    { cat "$W/dd_train.log" >&2; fail "pprun training (data-dependent shapes, $sched)"; }
  compare "$W/dd_ck/params.pt" "$W/dd_ref.pt" "params after 4 steps"
  compare_losses "$W/dd_train.log" "$W/dd_ref.json" "per-step loss"
done

step "all checks passed"
