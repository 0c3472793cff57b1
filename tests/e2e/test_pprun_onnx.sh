#!/bin/bash
# End-to-end: one ONNX sample split by ppc into 2, 3 and 4 stages and run by
# pprun (ONNX stages executed on ATen) on as many local ranks, against
# PyTorch running the unsplit model (/usr/bin/python3, the sample's
# *_traced.pt: the same module and weights as the .onnx export):
#   - inference: outputs of 3 batches equal the model's (max abs diff <= 1e-5),
#     GPipe on 2 stages, 1F1B on 3 and 4;
#   - training (mlp, skip, tinygpt opset 17 and 13; not convnet, whose eval
#     export folds BatchNorm into the convolutions, so its parameters are not
#     PyTorch's): 3 steps of SGD with momentum on 2 stages (GPipe) and of
#     Adam on 3 stages (1F1B; tinygpt: the spec's cuts, so the tied
#     wte.weight / transposed onnx::MatMul_289 pair spans stages 0 and 2; its
#     2- and 4-stage splits are plain --stages N, which tie the pair by
#     default, and a spec with "detect_folded": false leaves it untied): every
#     parameter and buffer equals PyTorch's training (<= 1e-5), and so does
#     each step's loss; tinygpt also with ZB-H1 (split backward); mlp also
#     with each GEMM library (--blas torch, --blas openblas);
#   - the saved stages (--save) pass the ONNX checker, tied copies are equal
#     (transposed where the manifest says so), and the saved pipeline runs
#     the trained model.
# Parameter names: pprun's params.pt is keyed by the manifest's
# params[].original, which for ONNX are initializer names. torch's exporter
# keeps PyTorch names where it stores a parameter as is, but a Linear weight
# used by MatMul is folded into a transposed copy named onnx::MatMul_<N>;
# onnx_param_names.py maps those back by content (exact, or transposed) before
# comparing. The secondary member of a tie group (onnx::MatMul_289) is not in
# params.pt: its primary (wte.weight) is PyTorch's one tied parameter.
# References: as in test_pprun.sh (SGD full batch; Adam with eps 1e-5 against
# PyTorch accumulating the same micro-batches).
#
# Usage: tests/e2e/test_pprun_onnx.sh BUILD_DIR|PPC_BINARY OUT_TMP SAMPLE
#   SAMPLE: mlp | skip | tinygpt | tinygpt_op13 | convnet
set -euo pipefail

SAMPLE=${3:?usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP SAMPLE}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$1" "$2"
SECONDS=0

TRAIN=1
SPEC3=
case $SAMPLE in
  mlp | skip) BASE=$SAMPLE ONNX=$SAMPLE LOSS=mse OUTPUT_NAME=y ;;
  tinygpt | tinygpt_op13) BASE=tinygpt ONNX=$SAMPLE LOSS=cross_entropy OUTPUT_NAME=logits
    SPEC3=$ROOT/samples/tinygpt/spec.json ;;
  convnet) BASE=convnet ONNX=convnet LOSS=cross_entropy OUTPUT_NAME=y TRAIN= ;;
  *) echo "unknown sample $SAMPLE" >&2; exit 2 ;;
esac
MODEL=$ROOT/samples/$BASE/${BASE}_traced.pt
ONNX_MODEL=$ROOT/samples/$BASE/$ONNX.onnx
CHUNKS=4
W=$OUT_TMP/$SAMPLE
rm -rf "$W"
mkdir -p "$W"

to_torch_names() {  # IN.pt OUT.pt
  "$PY" "$E2E/onnx_param_names.py" "$ONNX_MODEL" "$MODEL" "$1" "$2" || fail "cannot map ONNX initializer names"
}
# tinygpt: the folded transposed copy of wte.weight is tied by default, as
# PyTorch's one parameter; its 3-stage split is the sample's spec.
split() {  # N OUT
  local args=(--stages "$1")
  [ -n "$SPEC3" ] && [ "$1" = 3 ] && args=(--splits "$SPEC3")
  "$PPC" split "$ONNX_MODEL" "${args[@]}" -o "$2" >/dev/null 2>"$W/split.log" || { cat "$W/split.log" >&2; fail "ppc split $*"; }
}

step "$SAMPLE: batches and PyTorch references ($MODEL)"
"$PY" "$E2E/make_batches.py" "$BASE" "$W/batches" --batches 3 --batch-size 8 --seed 7 --loss $LOSS
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 3 --output-name $OUTPUT_NAME >/dev/null
SGD="--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.01"
ADAM="--optimizer adam --lr 0.001 --eps 1e-5"
if [ -n "$TRAIN" ]; then
  "$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_sgd.pt" --steps 3 --loss $LOSS $SGD \
    --chunks $CHUNKS --losses-out "$W/ref_sgd.json" >/dev/null
  "$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_adam.pt" --steps 3 --loss $LOSS $ADAM \
    --chunks $CHUNKS --accumulate --losses-out "$W/ref_adam.json" >/dev/null
fi

train() {  # N SCHEDULE OPT [BLAS]
  local n=$1 sched=$2 opt=$3 blas=${4:-auto} args=$SGD
  [ "$opt" = adam ] && args=$ADAM
  step "$SAMPLE: $n stages, $sched: 3 training steps, $opt, --blas $blas"
  # shellcheck disable=SC2086
  "$PPRUN" --manifest "$W/split$n" --nproc "$n" --schedule "$sched" --chunks $CHUNKS --inputs "$W/batches" --steps 3 \
    --train --loss $LOSS $args --save "$W/ck" --blas "$blas" >"$W/train.log" 2>&1 ||
    { cat "$W/train.log" >&2; fail "pprun training ($n stages, $sched, $opt, --blas $blas)"; }
  local gemms
  gemms=$(grep -o "float32 GEMMs on .*" "$W/train.log") || fail "rank 0 did not say what its GEMMs run on"
  echo "   $gemms"
  case $blas in
    torch) [[ $gemms == *", LibTorch's own (--blas torch)"* ]] || fail "--blas torch: $gemms" ;;
    openblas) [[ $gemms == "float32 GEMMs on OpenBLAS "* ]] || fail "--blas openblas: $gemms" ;;
  esac
  to_torch_names "$W/ck/params.pt" "$W/ck_torch.pt"
  compare "$W/ck_torch.pt" "$W/ref_$opt.pt" "params after 3 steps"
  compare_losses "$W/train.log" "$W/ref_$opt.json" "per-step loss"
}

for n in 2 3 4; do
  split $n "$W/split$n"
  sched=1f1b
  [ $n = 2 ] && sched=gpipe
  step "$SAMPLE: $n stages, $sched: inference"
  check_inference "$W/split$n" $n $sched "$W/ref_out.pt" outputs
done

if [ -n "$SPEC3" ]; then
  step "$SAMPLE: the default ties the folded copy; \"detect_folded\": false opts out"
  "$PY" - "$W/split2/manifest.json" <<'EOF' || fail "the default 2-stage split of $SAMPLE"
import json, sys
ties = json.load(open(sys.argv[1])).get("ties") or []
if not any(t["detected_by"] == "content" and any(m["relation"] == "transpose" for m in t["members"]) for t in ties):
    sys.exit("FAIL: no content-detected transposed tie in %s: %r" % (sys.argv[1], ties))
print("   tied by default: %s" % [m["param"] for m in ties[0]["members"]])
EOF
  echo '{"version": 1, "auto": {"stages": 2}, "ties": {"detect_folded": false}}' >"$W/untied.json"
  "$PPC" split "$ONNX_MODEL" --splits "$W/untied.json" -o "$W/untied" >/dev/null 2>"$W/split.log" ||
    { cat "$W/split.log" >&2; fail "ppc split with detect_folded false"; }
  grep -q "not tied: .* is the transpose of .*, but ties.detect_folded is false" "$W/split.log" ||
    { cat "$W/split.log" >&2; fail "no note on the untied folded copy"; }
  "$PY" -c 'import json,sys; t=json.load(open(sys.argv[1])).get("ties") or []; sys.exit("FAIL: ties %r" % t if t else 0)' \
    "$W/untied/manifest.json" || fail "detect_folded false still tied the copy"
  echo "   opted out: untied, with a note"
fi

if [ -n "$TRAIN" ]; then
  train 2 gpipe sgd
  # Both GEMM libraries train to PyTorch's parameters (the default above is one of them).
  if [ "$SAMPLE" = mlp ]; then
    train 2 gpipe sgd torch
    train 2 gpipe sgd openblas
  fi
  # Zero bubble: the backward split into input- and weight-gradient passes.
  [ "$SAMPLE" = tinygpt ] && train 3 zb-h1 adam
  train 3 1f1b adam

  step "$SAMPLE: the saved ONNX stages: checker, tied copies"
  "$PY" "$E2E/check_onnx_save.py" "$W/ck" | sed 's/^/   /' || fail "saved stages"
  step "$SAMPLE: the saved pipeline runs the trained model"
  check_saved_pipeline "$MODEL" "$W/ck_torch.pt" "$W/ck" 3 2 $OUTPUT_NAME
fi

step "$SAMPLE: all checks passed"
