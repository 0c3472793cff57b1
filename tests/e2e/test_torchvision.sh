#!/bin/bash
# End-to-end split of two real torchvision models (random seeded weights):
# exports resnet18 and mobilenet_v2 with samples/export_torchvision.py, splits
# each with its spec and with an automatic 4-stage split, and checks every
# result independently with check_split.py.  Budget: < 3 minutes on 2 cores.
#
# Usage: tests/e2e/test_torchvision.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0


step "export torchvision models"
"$PY" "$ROOT/samples/export_torchvision.py" "$OUT_TMP/models" resnet18 mobilenet_v2
"$PY" "$ROOT/tests/e2e/validate_json.py" "$ROOT/schemas/split-spec.schema.json" "$OUT_TMP"/models/*_spec.json

for name in resnet18 mobilenet_v2; do
  model="$OUT_TMP/models/$name.onnx"

  step "$name: split with ${name}_spec.json"
  out="$OUT_TMP/${name}_spec"
  rm -rf "$out"
  "$PPC" split "$model" --splits "$OUT_TMP/models/${name}_spec.json" -o "$out"
  "$PY" "$ROOT/tests/e2e/check_split.py" "$model" "$out" --schema-dir "$ROOT/schemas"
  n=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["stages"]))' "$out/manifest.json")
  if [ "$n" != 4 ]; then
    echo "$name: the spec has 3 split points but ppc made $n stages" >&2
    exit 1
  fi

  step "$name: automatic split, --stages 4"
  out="$OUT_TMP/${name}_auto4"
  rm -rf "$out"
  "$PPC" split "$model" --stages 4 -o "$out"
  "$PY" "$ROOT/tests/e2e/check_split.py" "$model" "$out" --schema-dir "$ROOT/schemas"
  n=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["stages"]))' "$out/manifest.json")
  if [ "$n" != 4 ]; then
    echo "$name: --stages 4 made $n stages" >&2
    exit 1
  fi
done

step "done"
# Time is reported, never asserted: a correctness test must not fail on a busy machine.
if [ "$SECONDS" -ge 180 ]; then
  echo "test_torchvision: warning: took ${SECONDS}s, over the 3 minute budget" >&2
fi
echo "test_torchvision: OK in ${SECONDS}s"
