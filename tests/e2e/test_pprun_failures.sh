#!/bin/bash
# pprun when things go wrong:
#   - a rank killed mid-run (SIGKILL): the others exit non-zero within the
#     timeout, naming it — never a hang;
#   - a rank that stalls (SIGSTOP): the others time out, naming it;
#   - rank 0, which also holds the rendezvous store, killed first: the
#     others exit non-zero within the timeout, naming it;
#   - a rank that exits 0 mid-run (its program returned early; a preloaded
#     exit_early.c ends it with _exit(0) on SIGUSR1): the others exit
#     non-zero within the timeout, naming it, and no process is left;
#   - a message that arrives corrupted or 8 bytes short (rank 1 sends one
#     so, PPRUN_TEST_CORRUPT_MESSAGE): its receiver names rank 1, the stage
#     edge, the micro-batch and what is wrong; every rank exits non-zero
#     within 20 s, no process is left;
#   - a rank started with another manifest (same model, other cuts) or with
#     other options (--steps): every rank refuses at start, naming it;
#   - under --nproc, a killed rank makes the launcher exit non-zero and stop
#     the others;
#   - bad input: one line "pprun: error: ..." naming the problem, exit code 2.
#
# Usage: tests/e2e/test_pprun_failures.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
W=$OUT_TMP
rm -rf "${W:?}"/*
SECONDS=0

"$PPC" split "$ROOT/samples/mlp/mlp_traced.pt" --splits "$ROOT/samples/mlp/spec.json" -o "$W/mlp" >/dev/null 2>&1
"$PY" "$ROOT/tests/e2e/make_batches.py" mlp "$W/batches" --batches 2 --batch-size 8 --seed 1 >/dev/null
# A fresh free port for each case: the next port up may be some socket's
# ephemeral port by then (EADDRINUSE).
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
TRAIN=(--inputs "$W/batches" --chunks 2 --train --loss mse --optimizer sgd
       --lr 0.001 --timeout 10 --threads 1)

# Ranks 0 and 1 get the rendezvous as flags, rank 2 as torchrun's environment
# (with MANIFEST2 as its manifest and STEPS2 as its --steps).
MANIFEST2=$W/mlp
STEPS2=100000000
EXTRA2=
PRELOAD2=
launch_ranks() {
  for r in 0 1; do
    "$PPRUN" --manifest "$W/mlp" --steps 100000000 "${TRAIN[@]}" --rank $r --world-size 3 --master-addr 127.0.0.1 --master-port "$PORT" \
      >"$W/rank$r.out" 2>"$W/rank$r.err" &
    PIDS[$r]=$!
  done
  # shellcheck disable=SC2086
  LD_PRELOAD=$PRELOAD2 RANK=2 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=$PORT "$PPRUN" --manifest "$MANIFEST2" --steps "$STEPS2" "${TRAIN[@]}" \
    $EXTRA2 >"$W/rank2.out" 2>"$W/rank2.err" &
  PIDS[2]=$!
}
start_ranks() {
  launch_ranks
  # Wait until training is under way (rank 0 logs steps).
  for _ in $(seq 100); do
    if [ "$(grep -c '^step' "$W/rank0.out" 2>/dev/null || true)" -ge 3 ]; then return 0; fi
    sleep 0.2
  done
  fail "training did not start: $(cat "$W"/rank*.err)"
}

# expect_failure RANK SURVIVOR...: each survivor exits non-zero within 20 s
# and its stderr names the rank.
expect_failure() {
  local culprit=$1
  shift
  local start=$SECONDS
  for r in "$@"; do
    local rc=0
    wait "${PIDS[$r]}" || rc=$?
    [ $rc -ne 0 ] || fail "rank $r exited 0 after rank $culprit failed"
    grep -q "rank $culprit" "$W/rank$r.err" || fail "rank $r's error does not name rank $culprit: $(cat "$W/rank$r.err")"
    echo "   rank $r: exit $rc: $(head -1 "$W/rank$r.err")"
  done
  local took=$((SECONDS - start))
  [ $took -le 20 ] || fail "survivors took ${took}s to exit"
  echo "   survivors exited within ${took}s"
}

step "a rank killed mid-run"
declare -a PIDS
start_ranks
kill -9 "${PIDS[1]}"
wait "${PIDS[1]}" || true
expect_failure 1 0 2

step "a rank that stalls (SIGSTOP): the others time out after 10 s"
PORT=$(free_port)
start_ranks
kill -STOP "${PIDS[2]}"
expect_failure 2 0 1
kill -9 "${PIDS[2]}"
wait "${PIDS[2]}" || true

step "rank 0 (the rendezvous store) killed first"
PORT=$(free_port)
start_ranks
kill -9 "${PIDS[0]}"
wait "${PIDS[0]}" || true
expect_failure 0 1 2

step "a rank that exits 0 mid-run (before its schedule is done)"
cc -shared -fPIC -o "$W/exit_early.so" "$ROOT/tests/e2e/exit_early.c" || fail "cannot build exit_early.so"
PORT=$(free_port)
PRELOAD2=$W/exit_early.so
start_ranks
kill -USR1 "${PIDS[2]}"
rc=0
wait "${PIDS[2]}" || rc=$?
[ $rc = 0 ] || fail "the early rank exited $rc, not 0 (exit_early.so not in effect?)"
expect_failure 2 0 1
for r in 0 1 2; do
  if kill -0 "${PIDS[$r]}" 2>/dev/null; then fail "rank $r still runs"; fi
done
PRELOAD2=

# expect_bad_message KIND WHAT: rank 1's 10th data message goes out damaged
# (step 1: 4 activation messages, a shape header and the tensors per
# micro-batch, then 2 of gradients; step 2: the activations' shapes guessed
# from step 1, so no headers: 2 and 2; the 10th is step 2's last gradients,
# to rank 0); the rank that receives it names it, every rank is out.
expect_bad_message() {
  PORT=$(free_port)
  export PPRUN_TEST_CORRUPT_MESSAGE="1:10:$1"
  launch_ranks
  unset PPRUN_TEST_CORRUPT_MESSAGE
  local start=$SECONDS
  for r in 0 1 2; do
    local rc=0
    wait "${PIDS[$r]}" || rc=$?
    [ $rc -ne 0 ] || fail "rank $r exited 0 after a $1 message"
  done
  [ $((SECONDS - start)) -le 20 ] || fail "the ranks took $((SECONDS - start))s to exit"
  grep -h "the message from rank 1 with stage 0 -> 1's gradients of micro-batch 1 (step 2) is $2" "$W/rank0.err"  || fail "no rank names rank 1's $1 message: $(cat "$W"/rank*.err)"
  for r in 0 1 2; do
    if kill -0 "${PIDS[$r]}" 2>/dev/null; then fail "rank $r still runs"; fi
  done
  echo "   every rank out within $((SECONDS - start))s"
}

step "a message that arrives corrupted (a byte flipped)"
expect_bad_message flip "corrupted: its data fails its checksum"

step "a message that arrives 8 bytes short"
expect_bad_message short "of the wrong size: shorter than the"

# expect_refusal WHAT: every rank exits 2 at start, naming rank 2 and WHAT.
expect_refusal() {
  local start=$SECONDS
  for r in 0 1 2; do
    local rc=0
    wait "${PIDS[$r]}" || rc=$?
    [ $rc -eq 2 ] || fail "rank $r exited $rc, expected 2: $(cat "$W/rank$r.err")"
    grep -q "rank 2 was started differently from rank 0: $1" "$W/rank$r.err" ||
      fail "rank $r's error does not name rank 2 and $1: $(cat "$W/rank$r.err")"
  done
  grep -q '^step' "$W/rank0.out" && fail "a step ran before the mismatch was found"
  echo "   every rank, within $((SECONDS - start))s: $(head -1 "$W/rank0.err")"
}

step "a rank with another manifest (the same model cut elsewhere)"
"$PPC" split "$ROOT/samples/mlp/mlp_traced.pt" --stages 3 -o "$W/mlp_auto" >/dev/null 2>&1
PORT=$(free_port)
MANIFEST2=$W/mlp_auto
launch_ranks
expect_refusal "another manifest.json"
MANIFEST2=$W/mlp

step "a rank with other options (--steps)"
PORT=$(free_port)
STEPS2=5
launch_ranks
expect_refusal "--steps 5 instead of 100000000"
STEPS2=100000000

step "a rank with --save where the others have none (a save gathers from every rank)"
PORT=$(free_port)
EXTRA2="--save $W/rank2_save"
launch_ranks
expect_refusal "with --save"
EXTRA2=

step "--nproc: a killed rank fails the job"
"$PPRUN" --manifest "$W/mlp" --nproc 3 --inputs "$W/batches" --chunks 2 --steps 100000000 --train --timeout 10 \
  >"$W/nproc.out" 2>"$W/nproc.err" &
launcher=$!
for _ in $(seq 100); do
  if [ "$(grep -c 'step' "$W/nproc.out" 2>/dev/null || true)" -ge 3 ]; then break; fi
  sleep 0.2
done
victim=
for c in $(pgrep -P $launcher); do
  if tr '\0' '\n' <"/proc/$c/environ" | grep -qx 'RANK=1'; then victim=$c; fi
done
[ -n "$victim" ] || fail "no rank 1 under the launcher"
start=$SECONDS
kill -9 "$victim"
rc=0
wait $launcher || rc=$?
[ $rc -ne 0 ] || fail "launcher exited 0"
grep -q "rank 1 killed by signal 9" "$W/nproc.err" || fail "launcher did not report rank 1: $(cat "$W/nproc.err")"
[ $((SECONDS - start)) -le 25 ] || fail "launcher took $((SECONDS - start))s"
echo "   launcher exit $rc after $((SECONDS - start))s: $(grep -m1 'rank 1 killed' "$W/nproc.err")"

step "bad input: exit 2, one line"
# An ONNX model with an op pprun does not execute (Hardmax), split in 2: the
# check before any rank starts names the node, op type and opset.
"$PY" - "$W/hardmax.onnx" <<'PYEOF'
import sys
import onnx
from onnx import TensorProto, helper
nodes = [helper.make_node("Relu", ["x"], ["r"], name="/relu/Relu"),
         helper.make_node("Hardmax", ["r"], ["y"], name="/head/Hardmax", axis=-1)]
g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 512])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 512])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, sys.argv[1])
PYEOF
"$PPC" split "$W/hardmax.onnx" --stages 2 -o "$W/onnx" >/dev/null 2>&1
"$PY" -c 'import torch; torch.save({"y": torch.zeros(8, 512)}, "'"$W"'/wrongkey.pt")'
"$PY" -c 'import torch; torch.save({"x": torch.zeros(8, 512, dtype=torch.int64)}, "'"$W"'/wrongtype.pt")'
echo "not a pickle" >"$W/garbage.pt"
check_bad() {  # check_bad EXPECTED_SUBSTRING ARGS...
  local want=$1
  shift
  local rc=0
  "$PPRUN" "$@" >"$W/bad.out" 2>"$W/bad.err" || rc=$?
  [ $rc -eq 2 ] || fail "pprun $* exited $rc, expected 2: $(cat "$W/bad.err")"
  [ "$(wc -l <"$W/bad.err")" -eq 1 ] || fail "pprun $*: expected one line, got: $(cat "$W/bad.err")"
  grep -q -- "$want" "$W/bad.err" || fail "pprun $*: message lacks '$want': $(cat "$W/bad.err")"
  echo "   $(cat "$W/bad.err")"
}
ONE=(--world-size 1 --rank 0 --master-port "$PORT")
check_bad "no such manifest" --manifest "$W/nowhere" --inputs "$W/batches"
check_bad "does not divide" --manifest "$W/mlp" --world-size 2 --rank 0 --inputs "$W/batches"
check_bad "no entry for model input 'x'" --manifest "$W/mlp" --nproc 3 --inputs "$W/wrongkey.pt" --steps 1
check_bad "node '/head/Hardmax' (Hardmax, opset 17): unsupported op" --manifest "$W/onnx" --nproc 2 --inputs "$W/batches"
check_bad "not a file written by torch.save" --manifest "$W/mlp" --nproc 3 --inputs "$W/garbage.pt"
check_bad "has no shape" --manifest "$W/mlp" --nproc 3 --synthetic --batch-size 4
mkdir -p "$W/precious" && echo keep >"$W/precious/notes.txt"
check_bad "not a pprun checkpoint" --manifest "$W/mlp" --nproc 3 --inputs "$W/batches" --train --save "$W/precious"
[ -f "$W/precious/notes.txt" ] || fail "--save destroyed a directory that was not a checkpoint"
check_bad "needs --train" --manifest "$W/mlp" --nproc 3 --inputs "$W/batches" --save "$W/x"
check_bad "unknown schedule\|not in" --manifest "$W/mlp" --nproc 3 --inputs "$W/batches" --schedule zigzag
check_bad "master port 70000 is outside 1..65535" --manifest "$W/mlp" --nproc 3 --inputs "$W/batches" --master-port 70000
check_bad "cannot be split into 16" --manifest "$W/mlp" --nproc 3 --inputs "$W/batches" --chunks 16
"$PPC" split "$ROOT/samples/mlp/mlp_traced.pt" --splits "$ROOT/samples/mlp/spec_typed.json" -o "$W/typed" >/dev/null 2>&1
check_bad "the model expects float32" --manifest "$W/typed" --nproc 3 --inputs "$W/wrongtype.pt"
# Without declared dtypes the stage itself rejects the tensor, on its rank.
rc=0
"$PPRUN" --manifest "$W/mlp" --nproc 3 --inputs "$W/wrongtype.pt" >"$W/bad.out" 2>"$W/bad.err" || rc=$?
[ $rc -ne 0 ] || fail "int64 inputs to a float model ran"
grep -q "stage0.pt: the stage failed on its inputs: .*" "$W/bad.err" || fail "stage failure: $(cat "$W/bad.err")"
echo "   $(grep -m1 'stage failed' "$W/bad.err")"

step "a dict of one entry (pickled with SETITEM, which LibTorch 1.13 cannot read unaided) loads"
"$PY" -c 'import torch; torch.save({"x": torch.randn(4, 512)}, "'"$W"'/single.pt")'
"$PPRUN" --manifest "$W/mlp" --nproc 3 --inputs "$W/single.pt" --chunks 2 --output "$W/single_out.pt" --quiet ||
  fail "single-entry inputs"
"$PY" -c 'import torch,sys; o=torch.load(sys.argv[1]); assert list(o) == ["output"] and o["output"].shape == (4, 10), o' \
  "$W/single_out.pt" || fail "single-entry output"
step "all failure checks passed"
