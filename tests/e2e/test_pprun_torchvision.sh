#!/bin/bash
# End-to-end training of a torchvision model that the project did not write:
# shufflenet_v2_x0_5, traced (eval mode: BatchNorm uses its running
# statistics, so micro-batching changes nothing), random seeded weights, at
# 64x64. Its channel shuffle (view / transpose / chunk) leaves the traced
# graph without a dtype for the values that cross its stage boundaries; such
# an edge once went out as non-differentiable and the backward pass stopped
# there, so only the last stage trained. Split by the spec (ends of stage2
# and stage3), automatically into 3 stages, and at the end of a BatchNorm
# whose output the next stage's first node (ReLU(inplace=True)) modifies in
# place (the stage must copy that input: a received input is a leaf that
# requires grad); for GPipe and 1F1B:
#   - inference: outputs of 2 batches equal PyTorch's (<= 1e-5);
#   - 3 steps of SGD with momentum: every parameter equals PyTorch's training
#     of the unsplit model (<= 1e-5), every stage's parameters moved, and each
#     step's loss matches.
# The buffers no stage holds (BatchNorm's num_batches_tracked: the traced
# graph never reads them) are the only keys of the reference that pprun's
# params.pt may lack.
#
# Usage: tests/e2e/test_pprun_torchvision.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
NAME=shufflenet_v2_x0_5
CHUNKS=4
W=$OUT_TMP/$NAME
rm -rf "$W"
mkdir -p "$W"

step "$NAME: traced export, batches and PyTorch references"
"$PY" "$ROOT/samples/export_torchvision.py" --torchscript "$W" $NAME >/dev/null
MODEL=$W/${NAME}_traced.pt
"$PY" "$E2E/make_batches.py" image64 "$W/batches" --batches 2 --batch-size 8 --seed 7 >/dev/null
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 2 --output-name output >/dev/null
SGD="--optimizer sgd --lr 0.05 --momentum 0.9"
# shellcheck disable=SC2086
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref.pt" --steps 3 --loss cross_entropy $SGD \
  --losses-out "$W/ref.json" >/dev/null

# check_params PARAMS.pt: every parameter of the model within 1e-5 of the
# reference, the only missing keys buffers, and every stage trained.
check_params() {
  compare "$1" "$W/ref.pt" "params after 3 steps" --keys-from A
  "$PY" - "$1" "$W/ref.pt" "$MODEL" "$2/manifest.json" <<'PYEOF' || fail "params.pt of $2"
import json, sys
import torch
got, ref = torch.load(sys.argv[1]), torch.load(sys.argv[2])
model = torch.jit.load(sys.argv[3])
params = dict(model.named_parameters())
missing = sorted(set(ref) - set(got))
bad = [k for k in missing if k in params]
if bad:
    sys.exit("FAIL: parameters missing from pprun's params.pt: %s" % bad)
for st in json.load(open(sys.argv[4]))["stages"]:
    names = [p["original"] for p in st["params"] if p["original"] in params]
    if names and all(torch.equal(got[n], params[n]) for n in names):
        sys.exit("FAIL: no parameter of stage %d moved in 3 steps" % st["index"])
print("   %d reference buffers in no stage (%s, ...); every stage trained" % (len(missing), missing[0] if missing else "-"))
PYEOF
}

echo '{"version": 1, "split_points": [{"module": "stage2", "at": "end"}, {"module": "stage3.0.branch2.1", "at": "end"}]}' \
  >"$W/inplace.json"
for how in spec auto inplace; do
  out=$W/split_$how
  case $how in
    spec) args=(--splits "$W/${NAME}_spec.json") ;;
    auto) args=(--stages 3) ;;
    inplace) args=(--splits "$W/inplace.json") ;;
  esac
  "$PPC" split "$MODEL" "${args[@]}" -o "$out" >/dev/null 2>"$W/split.log" ||
    { cat "$W/split.log" >&2; fail "ppc split ${args[*]}"; }
  for sched in gpipe 1f1b; do
    run=(--manifest "$out" --nproc 3 --schedule $sched --chunks $CHUNKS --inputs "$W/batches")
    step "$NAME: $how split, $sched: inference"
    "$PPRUN" "${run[@]}" --steps 2 --output "$W/out.pt" --quiet || fail "pprun inference ($how, $sched)"
    compare "$W/out.pt" "$W/ref_out.pt" "outputs"
    step "$NAME: $how split, $sched: 3 training steps, sgd"
    # shellcheck disable=SC2086
    "$PPRUN" "${run[@]}" --steps 3 --train --loss cross_entropy $SGD --save "$W/ck" >"$W/train.log" 2>&1 ||
      { cat "$W/train.log" >&2; fail "pprun training ($how, $sched)"; }
    check_params "$W/ck/params.pt" "$out"
    compare_losses "$W/train.log" "$W/ref.json" "per-step loss"
  done
done

step "done"
echo "test_pprun_torchvision: OK in ${SECONDS}s"
