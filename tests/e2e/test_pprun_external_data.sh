#!/bin/bash
# End-to-end: ONNX stages too large for one protobuf file. A stage whose
# serialized size reaches 2 GiB keeps its weights in external data
# (stageN.onnx.data), in ppc's output and in pprun's --save. So that CI need
# not write 2 GB, PPC_ONNX_MAX_PROTO_BYTES lowers that size, here to 64 KiB:
# the mlp sample (no external data of its own, 1-2 MiB per stage) split into
# 3 stages then needs it in every stage.
#   - ppc: each stage lists its data file and sha256 in the manifest, its
#     .onnx stays under the limit, and onnx.checker.check_model(path,
#     full_check=True) passes on the path (reading the data file);
#   - pprun: inference equals PyTorch (the sample's TorchScript twin);
#     3 steps of Adam (1F1B) equal PyTorch's parameters and losses; the saved
#     stages keep external data (listed in the saved manifest, checked by
#     the ONNX checker) and the saved pipeline runs (without the variable);
#   - a bad PPC_ONNX_MAX_PROTO_BYTES is one line, exit 2, nothing written.
# The real >2 GiB case (no variable) is a manual run: docs/testing.md.
#
# Usage: tests/e2e/test_pprun_external_data.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
W=$OUT_TMP/external_data
rm -rf "$W"
mkdir -p "$W"
MODEL=$ROOT/samples/mlp/mlp_traced.pt
ONNX_MODEL=$ROOT/samples/mlp/mlp.onnx
LIMIT=65536
CHUNKS=4

step "bad PPC_ONNX_MAX_PROTO_BYTES: one line, exit 2, nothing written"
set +e
PPC_ONNX_MAX_PROTO_BYTES=64k "$PPC" split "$ONNX_MODEL" --stages 3 -o "$W/bad" >/dev/null 2>"$W/bad.err"
rc=$?
set -e
[ $rc = 2 ] || fail "exit code $rc, expected 2"
[ "$(wc -l <"$W/bad.err")" = 1 ] || { cat "$W/bad.err" >&2; fail "expected one line"; }
grep -q "PPC_ONNX_MAX_PROTO_BYTES='64k'" "$W/bad.err" || { cat "$W/bad.err" >&2; fail "the line does not name the variable"; }
[ ! -e "$W/bad" ] || fail "output written"

step "ppc split with stages over the (lowered) protobuf limit"
PPC_ONNX_MAX_PROTO_BYTES=$LIMIT "$PPC" split "$ONNX_MODEL" --splits "$ROOT/samples/mlp/spec.json" -o "$W/ext" \
  >/dev/null 2>"$W/split.log" || { cat "$W/split.log" >&2; fail "ppc split"; }
check_stages() {  # DIR WHAT
  "$PY" - "$1" "$LIMIT" "$2" <<'PYEOF' || fail "$2: stages"
import json, os, sys
import onnx
d, limit, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = json.load(open(os.path.join(d, "manifest.json")))
for s in m["stages"]:
    path = os.path.join(d, s["artifact"])
    ed = s.get("external_data")
    assert ed and ed["file"] == s["artifact"] + ".data", f"stage {s['index']}: no external data in the manifest: {ed}"
    assert os.path.getsize(path) < limit, f"{path}: {os.path.getsize(path)} bytes"
    assert os.path.getsize(os.path.join(d, ed["file"])) > limit
    onnx.checker.check_model(path, full_check=True)
print(f"   {what}: {len(m['stages'])} stages, each with external data, pass check_model(path, full_check=True)")
PYEOF
}
check_stages "$W/ext" "ppc split"

step "PyTorch references"
"$PY" "$E2E/make_batches.py" mlp "$W/batches" --batches 3 --batch-size 8 --seed 7 --loss mse
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 3 --output-name y >/dev/null
ADAM="--optimizer adam --lr 0.001 --eps 1e-5"
# shellcheck disable=SC2086
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_adam.pt" --steps 3 --loss mse $ADAM \
  --chunks $CHUNKS --accumulate --losses-out "$W/ref_adam.json" >/dev/null

step "pprun inference, 3 stages"
"$PPRUN" --manifest "$W/ext" --nproc 3 --chunks $CHUNKS --inputs "$W/batches" --steps 3 --output "$W/out.pt" --quiet ||
  fail "pprun inference"
compare "$W/out.pt" "$W/ref_out.pt" "outputs"

step "pprun training, 3 stages, 1F1B, 3 steps of adam, saved"
# shellcheck disable=SC2086
PPC_ONNX_MAX_PROTO_BYTES=$LIMIT train_onnx_and_compare "$W/ext" 3 1f1b "$ONNX_MODEL" "$MODEL" "$W/ref_adam" \
  --loss mse $ADAM
check_stages "$W/ck" "pprun --save"

step "the saved pipeline runs the trained model"
check_saved_pipeline "$MODEL" "$W/ck_torch.pt" "$W/ck" 3 $CHUNKS y

step "all checks passed"
