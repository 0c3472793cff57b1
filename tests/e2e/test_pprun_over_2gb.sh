#!/bin/bash
# Manual (not in CI: it writes ~7 GB and needs ~12 GB of memory): an ONNX stage
# really over 2 GiB, without PPC_ONNX_MAX_PROTO_BYTES. An MLP of two
# Linear(16384, 16384) layers (1 GiB each) and a small head, exported by
# torch.onnx.export (TorchScript-based exporter: external data, one file per
# tensor), split before the head: stage 0 holds 2.0 GiB of weights.
#   - ppc writes stage 0 with external data (stage0.onnx.data) and the
#     checker passes on the path;
#   - pprun's outputs equal PyTorch's; one SGD step is trained and saved;
#     the saved stage 0 keeps external data and passes the checker; the
#     saved pipeline's outputs equal PyTorch's after the same step.
#
# Usage: tests/e2e/test_pprun_over_2gb.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
W=$OUT_TMP/over_2gb
rm -rf "$W"
mkdir -p "$W"
unset PPC_ONNX_MAX_PROTO_BYTES

step "export (2.1 GB of weights) and PyTorch's outputs before and after one SGD step"
"$PY" - "$W" <<'PYEOF'
import os, sys, torch
w = sys.argv[1]
torch.manual_seed(0)
n = 16384
model = torch.nn.Sequential(torch.nn.Linear(n, n), torch.nn.ReLU(), torch.nn.Linear(n, n), torch.nn.ReLU(),
                            torch.nn.Linear(n, 16))
with torch.no_grad():
    for p in model.parameters():
        p.mul_(0.5)
x, t = torch.randn(4, n), torch.randn(4, 16)
os.makedirs(os.path.join(w, "model"))
kwargs = {"dynamo": False} if int(torch.__version__.split(".")[0]) >= 2 else {}
torch.onnx.export(model, (x,), os.path.join(w, "model", "big.onnx"), input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, **kwargs)
torch.save({"x": x, "target": t}, os.path.join(w, "batch.pt"))
with torch.no_grad():
    torch.save({"y": model(x)}, os.path.join(w, "ref_out.pt"))
loss = torch.nn.functional.mse_loss(model(x), t)
loss.backward()
with torch.no_grad():
    for p in model.parameters():
        p.sub_(0.01 * p.grad)
    torch.save({"y": model(x)}, os.path.join(w, "ref_trained_out.pt"))
print(f"   loss {loss.item():.6f}")
PYEOF
du -sh "$W/model"

step "ppc split before the head: stage 0 over 2 GiB"
echo '{"version": 1, "split_points": [{"module": "4", "at": "begin"}]}' >"$W/spec.json"
/usr/bin/time -f "   ppc split: %e s, max RSS %M KiB" "$PPC" split "$W/model/big.onnx" --splits "$W/spec.json" -o "$W/split"
ls -l "$W/split"
check() {  # DIR
  "$PY" - "$1" <<'PYEOF' || fail "checker"
import json, os, sys
import onnx
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
s0 = m["stages"][0]
assert s0.get("external_data"), "stage 0 has no external data"
assert os.path.getsize(os.path.join(d, s0["external_data"]["file"])) >= 2**31
for s in m["stages"]:
    onnx.checker.check_model(os.path.join(d, s["artifact"]), full_check=True)
print("   stage 0 keeps %.2f GiB in %s; every stage passes check_model(path, full_check=True)"
      % (os.path.getsize(os.path.join(d, s0["external_data"]["file"])) / 2**30, s0["external_data"]["file"]))
PYEOF
}
check "$W/split"

step "pprun inference, 2 ranks"
/usr/bin/time -f "   pprun: %e s, max RSS %M KiB (launcher)" \
  "$PPRUN" --manifest "$W/split" --nproc 2 --inputs "$W/batch.pt" --output "$W/out.pt" --quiet
compare "$W/out.pt" "$W/ref_out.pt" "outputs"

step "pprun: one SGD step, saved"
"$PPRUN" --manifest "$W/split" --nproc 2 --inputs "$W/batch.pt" --train --loss mse --optimizer sgd --lr 0.01 \
  --save "$W/ck" --quiet
check "$W/ck"
"$PPRUN" --manifest "$W/ck" --nproc 2 --inputs "$W/batch.pt" --output "$W/trained.pt" --quiet
compare "$W/trained.pt" "$W/ref_trained_out.pt" "outputs of the saved pipeline"

step "all checks passed"
