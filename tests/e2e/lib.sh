# Shared prologue of the e2e shell tests. Source it with the script's own
# arguments: `source "$(dirname "$0")/lib.sh" "$@"`. It checks for exactly
# two arguments (BUILD_DIR|PPC_BINARY OUT_TMP) and sets
#   ROOT     the repository root
#   PY       the Python with torch/onnx: $PPC_PYTHON (the build's, which CMake
#            gives every test), else /usr/bin/python3 (Debian's torch 1.13)
#   PPC      the absolute path of the ppc binary
#   OUT_TMP  an absolute, existing scratch directory
#   PPRUN    the pprun binary next to ppc
#   E2E      this folder (the e2e helpers)
if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP" >&2
  exit 2
fi
OUT_TMP=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PPC_PYTHON:-/usr/bin/python3}
# BUILD_DIR holds the ppc binary; the path of the binary itself works too.
if [ -f "$1" ]; then
  PPC="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
else
  PPC="$(cd "$1" && pwd)/ppc"
fi
if [ ! -x "$PPC" ]; then
  echo "$0: no ppc binary at $PPC" >&2
  exit 2
fi
mkdir -p "$OUT_TMP"
OUT_TMP=$(cd "$OUT_TMP" && pwd)
PPRUN="$(dirname "$PPC")/pprun"
E2E="$ROOT/tests/e2e"

# Helpers shared by the pprun scripts.
step() { echo "== [${SECONDS}s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# compare A.pt B.pt WHAT [COMPARE_PT_ARGS...]: same keys, shapes and dtypes,
# every tensor within 1e-5 (further arguments go to compare_pt.py). Model
# outputs also get --rtol 1e-5: pprun's GEMMs may run on another BLAS than the
# reference's (OpenBLAS in place of MKL, docs/runtime.md), whose rounding
# grows with the outputs' size; parameters keep the absolute 1e-5.
compare() {
  local log="$OUT_TMP/compare.$$.log" a=$1 b=$2 what=$3
  shift 3
  "$PY" "$ROOT/tests/e2e/compare_pt.py" "$a" "$b" --atol 1e-5 "$@" >"$log" || { cat "$log" >&2; fail "$what"; }
  echo "   $what: $(tail -1 "$log")"
}
# compare_losses LOG JSON WHAT: the losses rank 0 logged ("step i/N  loss X")
# against the reference's JSON list, to 1e-5 relative.
compare_losses() {
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, re, sys
log, ref, what = sys.argv[1:]
got = [float(m.group(1)) for m in re.finditer(r"step \d+/\d+  loss ([0-9.eE+-]+)", open(log).read())]
want = json.load(open(ref))
if len(got) != len(want):
    sys.exit(f"FAIL: {what}: {len(got)} logged losses, reference has {len(want)}")
worst = max(abs(g - w) / max(1.0, abs(w)) for g, w in zip(got, want))
if worst > 1e-5:
    sys.exit(f"FAIL: {what}: losses {got} vs reference {want}")
print(f"   {what}: losses match (max rel diff {worst:.2e})")
PYEOF
}
# check_inference SPLIT N SCHEDULE REF WHAT: 3 steps of inference of the ppc
# output SPLIT on N local ranks over $W/batches ($CHUNKS micro-batches), the
# outputs against REF.
check_inference() {
  "$PPRUN" --manifest "$1" --nproc "$2" --schedule "$3" --chunks "$CHUNKS" --inputs "$W/batches" --steps 3 \
    --output "$W/out.pt" --quiet || fail "pprun inference ($2 stages, $3)"
  compare "$W/out.pt" "$4" "$5" --rtol 1e-5
}
# check_saved_pipeline MODEL PARAMS CK N CHUNKS OUTPUT_NAME: the pipeline that
# pprun --save wrote to CK, run for inference on N local ranks (CHUNKS
# micro-batches), gives the outputs of MODEL (reference_infer.py) with the
# trained parameters PARAMS.
check_saved_pipeline() {
  local model=$1 params=$2 ck=$3 n=$4 chunks=$5 output=$6
  "$PY" "$E2E/reference_infer.py" "$model" "$W/batches" "$W/ref_trained_out.pt" --steps 3 --params "$params" \
    --output-name "$output" >/dev/null
  "$PPRUN" --manifest "$ck" --nproc "$n" --chunks "$chunks" --inputs "$W/batches" --steps 3 \
    --output "$W/trained_out.pt" --quiet || fail "pprun inference from --save"
  compare "$W/trained_out.pt" "$W/ref_trained_out.pt" "outputs of the saved pipeline" --rtol 1e-5
}
# train_onnx_and_compare SPLIT N SCHEDULE ONNX_MODEL TORCH_MODEL REF PPRUN_ARGS...:
# 3 training steps of the ppc output SPLIT on N local ranks over $W/batches
# ($CHUNKS micro-batches, saved to $W/ck), params.pt renamed to TORCH_MODEL's
# names (onnx_param_names.py; the exporter's frozen constants that match no
# PyTorch tensor dropped), then every parameter against REF.pt and each step's
# loss against REF.json.
train_onnx_and_compare() {
  local split=$1 n=$2 sched=$3 onnx=$4 model=$5 ref=$6
  shift 6
  "$PPRUN" --manifest "$split" --nproc "$n" --schedule "$sched" --chunks "$CHUNKS" --inputs "$W/batches" --steps 3 \
    --train "$@" --save "$W/ck" >"$W/train.log" 2>&1 ||
    { cat "$W/train.log" >&2; fail "pprun training ($n stages, $sched, $*)"; }
  "$PY" "$E2E/onnx_param_names.py" "$onnx" "$model" "$W/ck/params.pt" "$W/ck_torch.pt" \
    --constants "$split/manifest.json" || fail "cannot map ONNX initializer names"
  compare "$W/ck_torch.pt" "$ref.pt" "params after 3 steps"
  compare_losses "$W/train.log" "$ref.json" "per-step loss"
}
