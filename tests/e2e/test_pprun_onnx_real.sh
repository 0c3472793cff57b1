#!/bin/bash
# End-to-end on models written by others: torchvision resnet18 and
# mobilenet_v2 (eval mode) and a transformer built from PyTorch's own
# nn.TransformerEncoder, exported at opset 17 by export_real_onnx.py, split by
# ppc into 4 stages (automatic, balanced by FLOPs) and 2 stages, run by pprun
# (ONNX stages on ATen) on as many local ranks: the outputs equal the eager
# PyTorch model's (max abs diff <= 1e-5). The CNNs' BatchNorm is folded into
# the convolutions by the exporter; the transformer exercises Gather, Shape /
# Reshape chains, Softmax, LayerNormalization. Batches of 2 at 64x64 keep the
# test under a minute on 2 cores.
#
# Usage: tests/e2e/test_pprun_onnx_real.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
W=$OUT_TMP
rm -rf "$W/models"

step "export resnet18, mobilenet_v2, transformer (opset 17) and their PyTorch outputs"
"$PY" "$ROOT/tests/e2e/export_real_onnx.py" "$W/models" 2>/dev/null

for name in resnet18 mobilenet_v2 transformer; do
  atol=1e-5
  for n in 4 2; do
    step "$name: $n stages"
    out=$W/${name}_$n
    "$PPC" split "$W/models/$name.onnx" --stages $n -o "$out" >/dev/null 2>"$W/split.log" ||
      { cat "$W/split.log" >&2; fail "ppc split $name"; }
    "$PPRUN" --manifest "$out" --nproc $n --chunks 2 --inputs "$W/models/${name}_batch.pt" --steps 1 \
      --output "$W/out.pt" --quiet || fail "pprun $name ($n stages)"
    "$PY" "$ROOT/tests/e2e/compare_pt.py" "$W/out.pt" "$W/models/${name}_ref.pt" --atol $atol >"$W/cmp.log" ||
      { cat "$W/cmp.log" >&2; fail "$name outputs ($n stages)"; }
    echo "   outputs: $(tail -1 "$W/cmp.log")"
  done
done
step "all checks passed"
