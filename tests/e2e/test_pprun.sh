#!/bin/bash
# End-to-end: one TorchScript sample split by ppc into 2, 3 and 4 stages and
# run by pprun on as many local ranks (Gloo over 127.0.0.1), with GPipe and
# 1F1B, against PyTorch running the unsplit model (/usr/bin/python3):
#   - inference: outputs of 3 batches equal the model's (max abs diff <= 1e-5);
#   - training, 3 steps of SGD with momentum and of Adam: every parameter and
#     buffer in params.pt equals PyTorch's training of the unsplit model on
#     the same batches (<= 1e-5), and so does each step's logged loss;
#   - the saved pipeline (--save) runs inference like the trained model;
#   - --resume after 2 steps + 1 step gives the parameters of 3 steps.
# References: SGD is compared with full-batch training. Adam is compared with
# PyTorch accumulating the same micro-batches, with eps 1e-5: Adam's first
# steps are about lr * g / (|g| + eps) per element, which turns float rounding
# in gradient elements that are exactly zero in exact arithmetic (tinygpt's
# attention key bias: softmax ignores it) into updates of order lr. PyTorch's
# own full-batch and accumulated runs of mlp differ by 3e-4 at lr 0.01 and
# eps 1e-8; with eps 1e-5 rounding noise (< 1e-8) moves a parameter by at most
# lr * 1e-3 per step, while real gradients (>= 1e-4) stay normalised. convnet (scripted, so
# BatchNorm uses batch statistics in training) is always compared with
# accumulation: micro-batching changes BatchNorm's statistics by definition.
#
# Usage: tests/e2e/test_pprun.sh BUILD_DIR|PPC_BINARY OUT_TMP SAMPLE
set -euo pipefail

SAMPLE=${3:?usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP SAMPLE}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$1" "$2"
SECONDS=0

case $SAMPLE in
  mlp | skip) MODEL=$ROOT/samples/$SAMPLE/${SAMPLE}_traced.pt LOSS=mse ACC= ;;
  tinygpt) MODEL=$ROOT/samples/tinygpt/tinygpt_traced.pt LOSS=cross_entropy ACC= ;;
  convnet) MODEL=$ROOT/samples/convnet/convnet_scripted.pt LOSS=cross_entropy ACC="--accumulate" ;;
  *) echo "unknown sample $SAMPLE" >&2; exit 2 ;;
esac
OUTPUT_NAME=output
CHUNKS=4
W=$OUT_TMP/$SAMPLE
rm -rf "$W"
mkdir -p "$W"


step "$SAMPLE: batches and PyTorch references ($MODEL)"
"$PY" "$E2E/make_batches.py" "$SAMPLE" "$W/batches" --batches 3 --batch-size 8 --seed 7 --loss $LOSS
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 3 --output-name $OUTPUT_NAME >/dev/null
SGD="--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.01"
ADAM="--optimizer adam --lr 0.001 --eps 1e-5"
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_sgd.pt" --steps 3 --loss $LOSS $SGD \
  --chunks $CHUNKS $ACC --losses-out "$W/ref_sgd.json" >/dev/null
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_adam.pt" --steps 3 --loss $LOSS $ADAM \
  --chunks $CHUNKS --accumulate --losses-out "$W/ref_adam.json" >/dev/null

for n in 2 3 4; do
  out=$W/split$n
  "$PPC" split "$MODEL" --stages $n -o "$out" >/dev/null 2>"$W/split.log" || { cat "$W/split.log" >&2; fail "ppc split --stages $n"; }
  for sched in gpipe 1f1b; do
    run=(--manifest "$out" --nproc $n --schedule $sched --chunks $CHUNKS --inputs "$W/batches" --steps 3)
    step "$SAMPLE: $n stages, $sched: inference"
    "$PPRUN" "${run[@]}" --output "$W/out.pt" --quiet || fail "pprun inference ($n stages, $sched)"
    compare "$W/out.pt" "$W/ref_out.pt" "outputs"
    for opt in sgd adam; do
      step "$SAMPLE: $n stages, $sched: 3 training steps, $opt"
      args=$SGD
      [ $opt = adam ] && args=$ADAM
      # shellcheck disable=SC2086
      "$PPRUN" "${run[@]}" --train --loss $LOSS $args --save "$W/ck" >"$W/train.log" 2>&1 ||
        { cat "$W/train.log" >&2; fail "pprun training ($n stages, $sched, $opt)"; }
      compare "$W/ck/params.pt" "$W/ref_$opt.pt" "params after 3 steps"
      compare_losses "$W/train.log" "$W/ref_$opt.json" "per-step loss"
    done
  done
done

step "$SAMPLE: the saved pipeline runs the trained model"
check_saved_pipeline "$MODEL" "$W/ck/params.pt" "$W/ck" 4 2 $OUTPUT_NAME

step "$SAMPLE: --resume after 2 steps + 1 step equals 3 steps (3 stages, 1f1b, adam)"
run=(--nproc 3 --chunks $CHUNKS --inputs "$W/batches" --train --loss $LOSS $ADAM --quiet)
"$PPRUN" --manifest "$W/split3" "${run[@]}" --steps 3 --save "$W/three" || fail "3 steps"
"$PPRUN" --manifest "$W/split3" "${run[@]}" --steps 2 --save "$W/two" || fail "2 steps"
"$PPRUN" --resume "$W/two" "${run[@]}" --steps 1 --save "$W/two_plus_one" || fail "resume + 1 step"
compare "$W/two_plus_one/params.pt" "$W/three/params.pt" "resumed vs uninterrupted"
compare "$W/two_plus_one/params.pt" "$W/ref_adam.pt" "resumed vs PyTorch"
# A checkpoint whose step is not a whole number: one line, exit 2.
cp -rL "$W/two" "$W/two_bad"  # -L: the checkpoint folder is a link into two.d
"$PY" - "$W/two_bad/pprun_state.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); j["step"] = 1e30; json.dump(j, open(sys.argv[1], "w"))
PYEOF
rc=0
"$PPRUN" --resume "$W/two_bad" "${run[@]}" --steps 1 2>"$W/bad_step.err" || rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$W/bad_step.err")" = 1 ] &&
  grep -qF "pprun_state.json: 'step' must be a whole number of 0 or more" "$W/bad_step.err" ||
  fail "resume from a checkpoint with step 1e30: exit $rc, $(cat "$W/bad_step.err")"

if [ "$SAMPLE" = mlp ]; then
  # --device cuda: on a GPU the same outputs; without one (or with a CPU-only
  # LibTorch) one line saying why, exit 2, before any rank starts.
  step "$SAMPLE: --device cuda"
  rc=0
  "$PPRUN" --manifest "$W/split2" --nproc 2 --chunks $CHUNKS --inputs "$W/batches" --steps 3 --device cuda \
    --output "$W/out_cuda.pt" --quiet 2>"$W/cuda.err" || rc=$?
  if [ $rc = 0 ]; then
    compare "$W/out_cuda.pt" "$W/ref_out.pt" "outputs on the GPU"
  else
    [ $rc = 2 ] && [ "$(wc -l <"$W/cuda.err")" = 1 ] &&
      grep -qE "^pprun: error: --device cuda: (no CUDA GPU is visible to this process \(LibTorch's CUDA runtime [0-9.]+ is loaded|this pprun's LibTorch .* has no CUDA libraries)" "$W/cuda.err" ||
      fail "--device cuda without a GPU: exit $rc, $(cat "$W/cuda.err")"
    [ -e "$W/out_cuda.pt" ] && fail "--device cuda without a GPU left its output behind"
    echo "   $(cat "$W/cuda.err")"
  fi

  step "$SAMPLE: activation memory: 1F1B holds P micro-batches on the first stage, GPipe all M"
  for sched in gpipe 1f1b; do
    "$PPRUN" --manifest "$W/split3" --nproc 3 --schedule $sched --chunks 8 --inputs "$W/batches" --steps 1 --train \
      --loss $LOSS >"$W/mem.log" 2>&1 || { cat "$W/mem.log" >&2; fail "$sched run"; }
    want=3
    [ $sched = gpipe ] && want=8
    grep -q "rank 0 held at most $want of 8 micro-batches" "$W/mem.log" || fail "$sched: $(grep held "$W/mem.log")"
    echo "   $sched: $(grep -o 'held at most.*' "$W/mem.log")"
  done
fi

step "$SAMPLE: all checks passed"
