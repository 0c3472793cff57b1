#!/bin/bash
# Checkpoints survive kill -9. The mlp sample (ONNX, 2 stages, GPipe) trains
# 20 steps of SGD with momentum, saving after every step (--save-every 1
# --keep 2); saves take most of each step here, so a kill lands in one often.
# Each trial kills the whole run (launcher and ranks, SIGKILL) at a random
# moment between the start of its first save and its end, then:
#   - no rank is left running;
#   - the --save link names a complete checkpoint (pprun verifies every
#     artifact's digest against its manifest when it loads it), or, killed
#     before the first save finished, there is no link at all;
#   - --resume from it for the remaining steps ends with parameters
#     bit-for-bit equal to the uninterrupted run's (CPU, same schedule).
# Seeded (TRIALS and SEED below); prints the step each trial was killed at.
#
# Usage: tests/e2e/test_pprun_checkpoint_kill.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
TRIALS=${PPC_KILL_TRIALS:-8}
RANDOM=${PPC_KILL_SEED:-11}
STEPS=20
W=$OUT_TMP/checkpoint_kill
rm -rf "$W"
mkdir -p "$W"

"$PPC" split "$ROOT/samples/mlp/mlp.onnx" --stages 2 -o "$W/m" >/dev/null 2>&1 || fail "ppc split"
"$PY" "$E2E/make_batches.py" mlp "$W/b" --batches 3 --batch-size 8 --seed 3 >/dev/null
TRAIN=(--nproc 2 --schedule gpipe --chunks 2 --inputs "$W/b" --train --loss mse --optimizer sgd --lr 0.05 --momentum 0.9
  --threads 1 --quiet)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# wait_for_saves DIR PID: returns when the run PID starts its first save
# (DIR.d appears) or ends.
wait_for_saves() {
  while [ ! -d "$1.d" ] && kill -0 "$2" 2>/dev/null; do sleep 0.01; done
}

step "the uninterrupted run: $STEPS steps, a checkpoint after each"
"$PPRUN" --manifest "$W/m" "${TRAIN[@]}" --steps $STEPS --save "$W/ref" --save-every 1 --keep 2 >"$W/ref.log" 2>&1 &
pid=$!
wait_for_saves "$W/ref" $pid
first=$(now_ms)
wait $pid || { cat "$W/ref.log" >&2; fail "uninterrupted training"; }
run_ms=$(($(now_ms) - first))  # from the first save to the end
n=$(find "$W/ref.d" -maxdepth 1 -name 'step-*' | wc -l)
[ "$n" = 2 ] || fail "--keep 2 left $n checkpoints in ref.d"
[ "$(readlink "$W/ref")" = "ref.d/step-000000020" ] || fail "ref links to $(readlink "$W/ref"), not ref.d/step-000000020"
echo "   $run_ms ms from the first save to the end; ref -> $(readlink "$W/ref"), $n checkpoints kept"

killed_in=()
for t in $(seq 1 "$TRIALS"); do
  ck=$W/ck$t
  delay_ms=$((RANDOM % (run_ms + 1)))
  setsid "$PPRUN" --manifest "$W/m" "${TRAIN[@]}" --steps $STEPS --save "$ck" --save-every 1 --keep 2 \
    >"$W/run$t.log" 2>&1 &
  pid=$!
  wait_for_saves "$ck" $pid  # the kill falls between the first save's start and the end of the run
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sleep 0.2
  if pgrep -f -- "--save $ck " >/dev/null; then
    pgrep -af -- "--save $ck " >&2
    fail "trial $t: ranks still running after the kill"
  fi
  if [ ! -e "$ck" ]; then
    [ ! -L "$ck" ] || fail "trial $t: $ck is a dangling link"
    if [ -d "$ck.d" ] && find "$ck.d" -maxdepth 1 -name 'step-*' | grep -q .; then
      fail "trial $t: a complete checkpoint in $ck.d but no link to it"
    fi
    echo "   trial $t: killed ${delay_ms} ms into the saves, before the first checkpoint"
    killed_in+=(0)
    continue
  fi
  done_steps=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$ck/pprun_state.json")
  # Loading verifies every artifact against the manifest's digests.
  "$PPRUN" --manifest "$ck" --nproc 2 --chunks 2 --inputs "$W/b" --steps 1 --output "$W/out$t.pt" --quiet \
    >"$W/verify$t.log" 2>&1 || { cat "$W/verify$t.log" >&2; fail "trial $t: the checkpoint at step $done_steps does not load"; }
  final=$ck
  if [ "$done_steps" -lt $STEPS ]; then
    "$PPRUN" --resume "$ck" "${TRAIN[@]}" --steps $((STEPS - done_steps)) --save "$W/fin$t" >"$W/resume$t.log" 2>&1 ||
      { cat "$W/resume$t.log" >&2; fail "trial $t: --resume from step $done_steps"; }
    final=$W/fin$t
  fi
  "$PY" "$E2E/compare_pt.py" "$final/params.pt" "$W/ref/params.pt" --atol 0 >"$W/cmp$t.log" ||
    { cat "$W/cmp$t.log" >&2; fail "trial $t: killed after step $done_steps, resumed: parameters differ from the uninterrupted run"; }
  how="resumed to $STEPS steps"
  [ "$done_steps" -lt $STEPS ] || how="the run had ended"
  echo "   trial $t: killed ${delay_ms} ms into the saves, after step $done_steps; $how: bit-for-bit equal"
  killed_in+=("$done_steps")
done
echo "test_pprun_checkpoint_kill: OK: $TRIALS kills (after steps: ${killed_in[*]}) in ${SECONDS}s"
