#!/bin/bash
# Splits every committed sample model with every one of its specs and checks
# each result independently with check_split.py.
#
# Usage: tests/e2e/test_all_samples.sh BUILD_DIR|PPC_BINARY OUT_TMP
#   samples/<name>/<name>.onnx (and samples/tinygpt/tinygpt_op13.onnx)
#   x samples/<name>/spec*.json
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

# The specs themselves must match the published schema.
"$PY" "$ROOT/tests/e2e/validate_json.py" "$ROOT/schemas/split-spec.schema.json" "$ROOT"/samples/*/spec*.json

# Model x spec pairs that ppc must reject, with the reason, instead of splitting:
#   tinygpt_op13 x spec_explicit: the spec ties 'onnx::MatMul_289', the
#   constant-folded LM head weight of tinygpt.onnx; in tinygpt_op13.onnx that
#   initializer is 'onnx::MatMul_339'.
expect_reject() {
  case "$(basename "$1") $2" in
    "tinygpt_op13.onnx tinygpt/spec_explicit.json") echo "is not a parameter of the model" ;;
    *) echo "" ;;
  esac
}

n=0
rejected=0
for dir in "$ROOT"/samples/*/; do
  name=$(basename "$dir")
  models=()
  for m in "$dir$name.onnx" "$dir${name}_op13.onnx"; do
    [ -f "$m" ] && models+=("$m")
  done
  [ ${#models[@]} -gt 0 ] || continue
  for model in "${models[@]}"; do
    for spec in "$dir"spec*.json; do
      [ -f "$spec" ] || continue
      out="$OUT_TMP/$(basename "$model" .onnx)__$(basename "$spec" .json)"
      rm -rf "$out"
      echo "== $(basename "$model") with $name/$(basename "$spec")"
      want_error=$(expect_reject "$model" "$name/$(basename "$spec")")
      if [ -n "$want_error" ]; then
        if "$PPC" split "$model" --splits "$spec" -o "$out" >"$OUT_TMP/reject.log" 2>&1; then
          echo "ppc split accepted $model with $spec; expected an error containing '$want_error'" >&2
          exit 1
        fi
        if ! grep -qF -- "$want_error" "$OUT_TMP/reject.log"; then
          echo "ppc split rejected $model with $spec, but not with '$want_error':" >&2
          cat "$OUT_TMP/reject.log" >&2
          exit 1
        fi
        if [ -e "$out" ]; then
          echo "ppc split failed but left $out behind" >&2
          exit 1
        fi
        echo "  rejected as expected: $(grep -F -- "$want_error" "$OUT_TMP/reject.log" | head -1)"
        rejected=$((rejected + 1))
        continue
      fi
      "$PPC" split "$model" --splits "$spec" -o "$out" 2>"$OUT_TMP/split.log" >/dev/null || {
        cat "$OUT_TMP/split.log" >&2
        exit 1
      }
      "$PY" "$ROOT/tests/e2e/check_split.py" "$model" "$out" --schema-dir "$ROOT/schemas"
      n=$((n + 1))
    done
  done
done
if [ "$n" -lt 8 ]; then
  echo "test_all_samples: only $n model x spec combinations found under samples/" >&2
  exit 1
fi
echo "test_all_samples: OK, $n splits checked, $rejected rejected as expected"
