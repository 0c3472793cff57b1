#!/bin/bash
# End-to-end numeric checks of TorchScript splits: every TorchScript sample
# (traced and scripted variants of mlp, skip, tinygpt, convnet) split with its
# spec.json, tinygpt also with spec_transmit.json (tied embedding sent from
# stage 0 to the LM head's stage), and torchvision's resnet18 traced at test
# time (random seeded weights) split at the ends of layer1, layer2, layer3.
# Each result is checked with check_torchscript_stages.py: stages chained in
# one process reproduce the full model's outputs and parameter gradients.
# Budget: < 3 minutes on 2 cores.
#
# Usage: tests/e2e/test_torchscript.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0


# split_and_check MODEL SPEC OUT EXPECTED_STAGES
split_and_check() {
  local model=$1 spec=$2 out=$3 want=$4
  rm -rf "$out"
  "$PPC" split "$model" --splits "$spec" -o "$out" 2>"$OUT_TMP/split.log" >/dev/null || {
    cat "$OUT_TMP/split.log" >&2
    echo "ppc split failed on $model with $spec" >&2
    exit 1
  }
  local n
  n=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["stages"]))' "$out/manifest.json")
  if [ "$n" != "$want" ]; then
    echo "$model with $spec: expected $want stages, ppc made $n" >&2
    exit 1
  fi
  "$PY" "$ROOT/tests/e2e/check_torchscript_stages.py" "$model" "$out"
}

n=0
for name in mlp skip tinygpt convnet; do
  for variant in traced scripted; do
    model="$ROOT/samples/$name/${name}_$variant.pt"
    step "${name}_$variant.pt with $name/spec.json"
    split_and_check "$model" "$ROOT/samples/$name/spec.json" "$OUT_TMP/${name}_${variant}__spec" 3
    n=$((n + 1))
  done
done

# Transmitted tie: wte.weight (== lm_head.weight) lives in stage 0 only; the
# LM head's stage receives it as an input, and the gradients of both uses
# meet in stage 0's parameter through autograd.
for variant in traced scripted; do
  model="$ROOT/samples/tinygpt/tinygpt_$variant.pt"
  out="$OUT_TMP/tinygpt_${variant}__spec_transmit"
  step "tinygpt_$variant.pt with tinygpt/spec_transmit.json"
  split_and_check "$model" "$ROOT/samples/tinygpt/spec_transmit.json" "$out" 3
  "$PY" - "$out/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
ties = m.get("ties") or []
assert len(ties) == 1 and ties[0]["policy"] == "transmit", "expected one transmitted tie group: %r" % ties
owner = ties[0]["owner"]
names = {p["param"] for p in ties[0]["members"]}
for st in m["stages"]:
    stored = {p["original"] for p in st["params"]}
    if st["index"] != owner and stored & names:
        sys.exit("stage %d stores the transmitted tied param(s) %s" % (st["index"], sorted(stored & names)))
print("transmit: tie %s owned by stage %d, stored nowhere else" % (sorted(names), owner))
EOF
  n=$((n + 1))
done

step "export torchvision resnet18 (traced, random seeded weights)"
"$PY" "$ROOT/samples/export_torchvision.py" --torchscript "$OUT_TMP/models" resnet18
"$PY" "$ROOT/tests/e2e/validate_json.py" "$ROOT/schemas/split-spec.schema.json" "$OUT_TMP/models/resnet18_spec.json"
step "resnet18_traced.pt: split at the ends of layer1, layer2, layer3"
split_and_check "$OUT_TMP/models/resnet18_traced.pt" "$OUT_TMP/models/resnet18_spec.json" "$OUT_TMP/resnet18_traced__spec" 4
n=$((n + 1))

step "done"
# Time is reported, never asserted: a correctness test must not fail on a busy machine.
if [ "$SECONDS" -ge 180 ]; then
  echo "test_torchscript: warning: took ${SECONDS}s, over the 3 minute budget" >&2
fi
echo "test_torchscript: OK, $n splits checked numerically in ${SECONDS}s"
