#!/bin/bash
# Pipeline x data parallel (pprun --dp), real processes over Gloo, against
# PyTorch training the unsplit model on the whole global batch:
#   - 2x2 and 2x3 (pipeline ranks x replicas) on the samples (mlp; skip: a
#     skip connection across stages; tinygpt: its embedding tied to the LM
#     head across stages), for 1F1B, GPipe and interleaved 1F1B, both rank
#     layouts: every parameter and each step's loss equal PyTorch's (1e-5);
#   - --save from a DP run writes one checkpoint, and --resume from it goes on
#     exactly as the uninterrupted run;
#   - --trace shows every rank of every replica, and each rank's gradient
#     all-reduce in flight while later actions of the step run;
#   - inference: replica 0 writes every replica's outputs, in batch order;
#   - bad input: --dp that does not divide the world, a batch too small for
#     the replicas x micro-batches: one line, exit 2, no rank started.
#
# Usage: tests/e2e/test_pprun_dp.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
W=$OUT_TMP
rm -rf "${W:?}"/*
SECONDS=0
SGD="--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.01"

for sample in mlp skip tinygpt; do
  case $sample in
    mlp | skip) LOSS=mse ;;
    tinygpt) LOSS=cross_entropy ;;
  esac
  MODEL=$ROOT/samples/$sample/${sample}_traced.pt
  step "$sample: batches of 12 and PyTorch on the whole batch"
  "$PY" "$E2E/make_batches.py" "$sample" "$W/$sample/batches" --batches 3 --batch-size 12 --seed 3 --loss $LOSS \
    >/dev/null
  # shellcheck disable=SC2086
  "$PY" "$E2E/reference_train.py" "$MODEL" "$W/$sample/batches" "$W/$sample/ref.pt" --steps 3 --loss $LOSS $SGD \
    --losses-out "$W/$sample/ref.json" >/dev/null
  "$PY" "$E2E/reference_infer.py" "$MODEL" "$W/$sample/batches" "$W/$sample/ref_out.pt" --steps 1 \
    --output-name output >/dev/null
  for n in 2 4; do
    "$PPC" split "$MODEL" --stages $n -o "$W/$sample/split$n" >/dev/null 2>&1 || fail "ppc split $sample $n"
  done
  # pipeline ranks x replicas, schedule, stages, layout (skip: the first two)
  configs=("2 2 1f1b 2 pipeline-major" "2 3 gpipe 2 data-major" "2 2 interleaved-1f1b 4 data-major"
    "2 3 1f1b 2 pipeline-major")
  [ $sample != skip ] || configs=("${configs[@]:0:2}")
  for c in "${configs[@]}"; do
    read -r p d sched stages layout <<<"$c"
    step "$sample: ${p}x$d ($sched, $stages stages, $layout)"
    # shellcheck disable=SC2086
    "$PPRUN" --manifest "$W/$sample/split$stages" --nproc $((p * d)) --dp "$d" --dp-layout "$layout" \
      --schedule "$sched" --chunks 2 --inputs "$W/$sample/batches" --steps 3 --train --loss $LOSS $SGD \
      --save "$W/$sample/ck" >"$W/$sample/train.log" 2>&1 || { cat "$W/$sample/train.log" >&2; fail "pprun --dp $d"; }
    grep -q "$((p * d)) ranks = $d replicas x $p pipeline ranks ($layout" "$W/$sample/train.log" ||
      fail "no layout line: $(head -3 "$W/$sample/train.log")"
    compare "$W/$sample/ck/params.pt" "$W/$sample/ref.pt" "params after 3 steps"
    compare_losses "$W/$sample/train.log" "$W/$sample/ref.json" "per-step loss"
  done
done

W2=$W/tinygpt
step "tinygpt: --save after 2 steps of a 2x2 run, --resume for the third = 3 uninterrupted steps"
# shellcheck disable=SC2086
"$PPRUN" --manifest "$W2/split2" --nproc 4 --dp 2 --chunks 2 --inputs "$W2/batches" --steps 2 --train \
  --loss cross_entropy $SGD --save "$W2/first" --quiet || fail "first two steps"
[ "$(find "$W2/first/" -name params.pt | wc -l)" = 1 ] || fail "expected one params.pt"
# shellcheck disable=SC2086
"$PPRUN" --resume "$W2/first" --nproc 4 --dp 2 --chunks 2 --inputs "$W2/batches" --steps 1 --train \
  --loss cross_entropy $SGD --save "$W2/resumed" --quiet || fail "resume"
"$PPRUN" --manifest "$W2/split2" --nproc 4 --dp 2 --chunks 2 --inputs "$W2/batches" --steps 3 --train \
  --loss cross_entropy $SGD --save "$W2/whole" --quiet || fail "uninterrupted"
# The batches cycle: the resumed step reads batch 3 like the third step of the whole run.
compare "$W2/resumed/params.pt" "$W2/whole/params.pt" "resumed vs uninterrupted"
compare "$W2/whole/params.pt" "$W2/ref.pt" "uninterrupted vs PyTorch"

step "mlp: --trace --trace-memory of a 2x2 run: 4 ranks, the gradient all-reduce in flight beside the actions, heap samples"
"$PPRUN" --manifest "$W/mlp/split2" --nproc 4 --dp 2 --chunks 4 --inputs "$W/mlp/batches" --steps 2 --train \
  --loss mse --trace "$W/trace.json" --trace-memory --timeline "$W/run.svg" --quiet || fail "traced run"
"$PY" - "$W/trace.json" <<'PYEOF'
import json, sys
trace = json.load(open(sys.argv[1]))
names = {e["tid"]: e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
assert [names[r] for r in range(4)] == [f"rank {r}" for r in range(4)], names
assert all(names[4 + r] == f"rank {r} gradient all-reduce" for r in range(4)), names
events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
for r in range(4):
    mine = [e for e in events if e["tid"] == r]
    assert {e["cat"] for e in mine} >= {"F", "B"}, (r, {e["cat"] for e in mine})
    reduces = [e for e in events if e["tid"] == 4 + r]
    assert len(reduces) == 2 and all(e["cat"] == "dp" for e in reduces), reduces  # one bucket per step
for step in range(2):
    # Rank 1 holds the last stage: its backwards finish first, so its
    # all-reduce starts while rank 0 still runs backwards of that step.
    start = min(e["ts"] for e in events if e["tid"] == 4 + 1 and e["args"]["step"] == step)
    later = [e for e in events if e["tid"] == 0 and e["cat"] == "B" and e["args"]["step"] == step and e["ts"] >= start]
    assert later, f"step {step}: no backward of rank 0 after rank 1's all-reduce started"
# --trace-memory: each rank's heap in use after each of its actions, a counter per rank, that grows
# while a step's forwards hold activations and falls back as its backwards free them.
heap = [e for e in trace["traceEvents"] if e.get("ph") == "C"]
for r in range(4):
    mine = sorted((e["ts"], e["args"]["MiB"]) for e in heap if e["name"] == f"heap MiB rank {r}")
    acts = [e for e in events if e["tid"] == r and e["cat"] not in ("wait", "allreduce", "optimizer")]
    assert len(mine) == len(acts), (r, len(mine), len(acts))
    assert all(v > 1 for _, v in mine) and max(v for _, v in mine) > mine[0][1], (r, mine[:3])
print(f"   {len(events)} slices; every rank's all-reduce started before its replica's step was done; "
      f"{len(heap)} heap samples")
PYEOF

step "mlp: a 2x2 --profile -> ppc split --costs with the spec's defaults.dp 2: the predicted step includes the all-reduce"
"$PPRUN" --manifest "$W/mlp/split2" --nproc 4 --dp 2 --chunks 2 --inputs "$W/mlp/batches" --steps 3 --train \
  --loss mse --profile "$W/costs.json" --quiet || fail "profiled run"
for d in 1 2; do
  echo "{\"version\": 1, \"auto\": {\"stages\": 2}, \"defaults\": {\"dp\": $d}}" >"$W/dp$d.json"
  "$PPC" split "$ROOT/samples/mlp/mlp_traced.pt" --splits "$W/dp$d.json" --costs "$W/costs.json" -o "$W/costs_dp$d" \
    >"$W/costs_dp$d.txt" 2>&1 || { cat "$W/costs_dp$d.txt" >&2; fail "ppc split --costs (dp $d)"; }
done
grep -q "2 data-parallel replicas" "$W/costs_dp2.txt" || fail "no replicas in the summary: $(cat "$W/costs_dp2.txt")"
"$PY" - "$W/costs_dp1/manifest.json" "$W/costs_dp2/manifest.json" <<'PYEOF'
import json, sys
one, two = (json.load(open(p)) for p in sys.argv[1:])
assert two["defaults"]["dp"] == 2 and one["defaults"]["dp"] == 1, (one["defaults"], two["defaults"])
p1, p2 = one["cost"]["model"]["predicted_step_ms"], two["cost"]["model"]["predicted_step_ms"]
assert p2 > p1, (p1, p2)  # mlp's 1 MB of parameters take time to sum
print(f"   predicted step {p1:.2f} ms on one replica, {p2:.2f} ms with the all-reduce across 2")
PYEOF
# pprun takes --dp from the manifest's defaults unless given.
"$PPRUN" --manifest "$W/costs_dp2" --nproc 4 --chunks 2 --inputs "$W/mlp/batches" --steps 1 --train --loss mse \
  >"$W/default_dp.log" 2>&1 || { cat "$W/default_dp.log" >&2; fail "run with the manifest's dp"; }
grep -q "4 ranks = 2 replicas x 2 pipeline ranks" "$W/default_dp.log" || fail "manifest dp not used"
"$PPRUN" --manifest "$W/costs_dp2" --simulate --world-size 4 --chunks 2 --costs "$W/costs.json" | grep -q \
  "with the gradient all-reduce across 2 replicas" || fail "--simulate with the manifest's dp"

step "inference: replica 0 writes every replica's outputs"
"$PPRUN" --manifest "$W/mlp/split2" --nproc 6 --dp 3 --chunks 2 --inputs "$W/mlp/batches/$(ls "$W/mlp/batches" | head -1)" \
  --output "$W/out.pt" --quiet || fail "inference"
compare "$W/out.pt" "$W/mlp/ref_out.pt" "outputs of 3 replicas"

step "bad input: one line, exit 2"
expect_bad() {  # WHAT EXPECTED_SUBSTRING ARGS...
  local what=$1 want=$2 rc=0
  shift 2
  "$PPRUN" "$@" >"$W/bad.out" 2>"$W/bad.err" || rc=$?
  [ $rc -eq 2 ] || fail "$what: exit $rc, expected 2: $(cat "$W/bad.err")"
  [ "$(wc -l <"$W/bad.err")" -eq 1 ] || fail "$what: expected one line: $(cat "$W/bad.err")"
  grep -q -- "$want" "$W/bad.err" || fail "$what: message lacks '$want': $(cat "$W/bad.err")"
  echo "   $what: $(cat "$W/bad.err")"
}
expect_bad "--dp 3 of 4 ranks" "--dp 3 does not divide the 4 ranks" --manifest "$W/mlp/split2" --nproc 4 --dp 3 \
  --inputs "$W/mlp/batches" --train
expect_bad "batch too small" "cannot be split into 3 replicas x 8 micro-batches" --manifest "$W/mlp/split2" \
  --nproc 6 --dp 3 --chunks 8 --inputs "$W/mlp/batches" --train
expect_bad "--dp 0" "--dp" --manifest "$W/mlp/split2" --nproc 2 --dp 0 --inputs "$W/mlp/batches" --train
expect_bad "--dp-layout" "--dp-layout" --manifest "$W/mlp/split2" --nproc 2 --dp 2 --dp-layout diagonal \
  --inputs "$W/mlp/batches" --train
step "all data-parallel checks passed"
