#!/bin/bash
# End-to-end on PyTorch 2.x's dynamo ONNX exporter: one sample (mlp, skip,
# tinygpt) exported at test time by torch.onnx.export(dynamo=True) with its
# defaults (IR version 10, opset 20, weights in an external data file, the
# exporter's optimizer on), split by ppc and run by pprun, against PyTorch 2.x
# ($PPC_PYTHON, torch >= 2) running the same module:
#   - the split: by module path with the sample's own spec.json (the spec the
#     TorchScript-based exports use: module paths mean the same for both
#     exporters), and automatically into 2 and 4 stages; check_split.py checks
#     each output against the source (onnx.checker full_check of the new onnx,
#     every node in one stage, chaining by name, each stage's external data);
#   - inference: outputs of 3 batches equal the model's (<= 1e-5), GPipe on 2
#     stages, 1F1B on 3 and 4;
#   - training: 3 steps of SGD with momentum on 2 stages (GPipe) and of Adam
#     on 3 stages (1F1B): every parameter and each step's loss equal PyTorch's
#     (<= 1e-5). tinygpt's tied wte/lm_head is one initializer used by the
#     embedding plus the optimizer's transposed copy for the head MatMul
#     (val_N): tied by content (the default), as for the legacy exporter.
# Parameter names: the dynamo exporter names initializers by their state_dict
# names, except the transposed copies its optimizer folds for MatMul (val_N):
# onnx_param_names.py maps those back by content, and drops the exporter's
# constants (initializers the manifest marks frozen that match no PyTorch
# tensor: scale factors, fill values), which are no part of the module's state.
#
# Usage: tests/e2e/test_pprun_dynamo.sh BUILD_DIR|PPC_BINARY OUT_TMP SAMPLE
set -euo pipefail

SAMPLE=${3:?usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP SAMPLE}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$1" "$2"
SECONDS=0

case $SAMPLE in
  mlp | skip) LOSS=mse OUTPUT_NAME=y ;;
  tinygpt) LOSS=cross_entropy OUTPUT_NAME=logits ;;
  *) echo "unknown sample $SAMPLE" >&2; exit 2 ;;
esac
W=$OUT_TMP/$SAMPLE
rm -rf "$W"
mkdir -p "$W"
CHUNKS=4

step "$SAMPLE: export with $("$PY" -c 'import torch; print("torch", torch.__version__)') (dynamo)"
"$PY" "$E2E/export_dynamo.py" "$SAMPLE" "$W/model" 2>"$W/export.log" | sed 's/^/   /' ||
  { cat "$W/export.log" >&2; fail "export"; }
MODEL=$W/model/${SAMPLE}_traced.pt
ONNX_MODEL=$W/model/$SAMPLE.onnx
[ -f "$ONNX_MODEL.data" ] || fail "the export wrote no external data file (the test is meant to cover it)"

split() {  # OUT ARGS...
  local out=$1
  shift
  "$PPC" split "$ONNX_MODEL" "$@" -o "$out" >/dev/null 2>"$W/split.log" || { cat "$W/split.log" >&2; fail "ppc split $*"; }
  "$PY" "$E2E/check_split.py" "$ONNX_MODEL" "$out" --schema-dir "$ROOT/schemas" >"$W/check.log" 2>&1 ||
    { cat "$W/check.log" >&2; fail "check_split.py on $out"; }
}
echo '{"version": 1, "auto": {"stages": 2}}' >"$W/auto.json"
python_spec=$ROOT/samples/$SAMPLE/spec.json
step "$SAMPLE: split by module path ($(basename "$ROOT/samples/$SAMPLE/spec.json")) and automatically; check_split.py"
split "$W/split3" --splits "$python_spec"
split "$W/split2" --splits "$W/auto.json" --stages 2
split "$W/split4" --splits "$W/auto.json" --stages 4
"$PY" - "$W/split3/manifest.json" "$SAMPLE" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
stages = m["stages"]
if len(stages) != 3:
    sys.exit(f"FAIL: the module-path spec gave {len(stages)} stages, not 3")
for s in stages:
    if not s.get("external_data"):
        sys.exit(f"FAIL: stage {s['index']} has no external data of its own")
print("   3 stages by module path, modules:", " | ".join(",".join(s["modules"]) for s in stages))
EOF

step "$SAMPLE: batches and PyTorch references"
"$PY" "$E2E/make_batches.py" "$SAMPLE" "$W/batches" --batches 3 --batch-size 8 --seed 7 --loss $LOSS
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 3 --output-name $OUTPUT_NAME >/dev/null
SGD="--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.01"
ADAM="--optimizer adam --lr 0.001 --eps 1e-5"
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_sgd.pt" --steps 3 --loss $LOSS $SGD \
  --chunks $CHUNKS --losses-out "$W/ref_sgd.json" >/dev/null
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_adam.pt" --steps 3 --loss $LOSS $ADAM \
  --chunks $CHUNKS --accumulate --losses-out "$W/ref_adam.json" >/dev/null
# A buffer the exporter merged into an equal one and that no node reads under
# its own name (tinygpt's h.1.attn.bias: the optimizer also merged the two
# layers' identical mask slices) is in no stage: leave it out of the
# references, by name, and say so. Parameters are never left out.
"$PY" "$E2E/drop_absent_buffers.py" "$ONNX_MODEL" "$W/split3/manifest.json" "$W/ref_sgd.pt" "$W/ref_adam.pt"

for n in 2 3 4; do
  sched=1f1b
  [ $n = 2 ] && sched=gpipe
  step "$SAMPLE: $n stages, $sched: inference"
  check_inference "$W/split$n" $n $sched "$W/ref_out.pt" outputs
done

train() {  # N SCHEDULE OPT
  local n=$1 sched=$2 opt=$3 args=$SGD
  [ "$opt" = adam ] && args=$ADAM
  step "$SAMPLE: $n stages, $sched: 3 training steps, $opt"
  # shellcheck disable=SC2086
  train_onnx_and_compare "$W/split$n" "$n" "$sched" "$ONNX_MODEL" "$MODEL" "$W/ref_$opt" --loss $LOSS $args
}
train 2 gpipe sgd
train 3 1f1b adam

step "$SAMPLE: the saved pipeline runs the trained model"
# The reference takes a whole state_dict: the buffers in no stage (above) at
# their exported value, which training does not change.
"$PY" - "$W/ck_torch.pt" "$W/model/${SAMPLE}_params.pt" <<'PYEOF'
import sys, torch
trained, exported = torch.load(sys.argv[1]), torch.load(sys.argv[2])
torch.save({**{k: v for k, v in exported.items() if k not in trained}, **trained}, sys.argv[1])
PYEOF
check_saved_pipeline "$MODEL" "$W/ck_torch.pt" "$W/ck" 3 2 $OUTPUT_NAME

step "$SAMPLE: all checks passed"
