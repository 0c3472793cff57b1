#!/bin/bash
# A long run stays flat: tinygpt (ONNX, 2 stages, its tied embedding across
# them), 1F1B with 4 micro-batches, Adam, trained for PPC_SOAK_STEPS steps
# (default 2000; thousands more for the documented run) on 2 local ranks.
# Every rank's resident memory and open descriptors are sampled each 0.5 s:
# after warm-up (the first quarter of the steps) the resident memory may
# grow by at most max(8 MiB, 3%) and the descriptor count must stay at its
# level (files opened for a moment, as each step's batch, aside; samples
# after the last step, when the ranks tear down, aside); the run exits 0 and
# leaves no process behind.
#
# Usage: tests/e2e/test_pprun_soak.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
SECONDS=0
STEPS=${PPC_SOAK_STEPS:-2000}
W=$OUT_TMP/soak
rm -rf "$W"
mkdir -p "$W"

"$PPC" split "$ROOT/samples/tinygpt/tinygpt.onnx" --stages 2 -o "$W/m" >/dev/null 2>&1 || fail "ppc split"
"$PY" "$E2E/make_batches.py" tinygpt "$W/b" --batches 4 --batch-size 8 --seed 5 >/dev/null

step "tinygpt, 2 ranks, $STEPS steps of Adam (1F1B, 4 micro-batches)"
"$PPRUN" --manifest "$W/m" --nproc 2 --schedule 1f1b --chunks 4 --inputs "$W/b" --steps "$STEPS" --train \
  --loss cross_entropy --optimizer adam --lr 1e-4 --threads 1 >"$W/run.log" 2>&1 &
launcher=$!
ranks=()
for _ in $(seq 100); do
  mapfile -t ranks < <(pgrep -P $launcher || true)
  [ ${#ranks[@]} = 2 ] && break
  sleep 0.1
done
[ ${#ranks[@]} = 2 ] || fail "the launcher did not start 2 ranks"
: >"$W/samples.txt"
while kill -0 $launcher 2>/dev/null; do
  line=""
  for p in "${ranks[@]}"; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    fds=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l || true)  # the rank may just have exited
    [ -n "$rss" ] && line="$line $rss $fds"
  done
  steps_done=$(grep -c "^\[rank 0\] step " "$W/run.log" || true)
  [ "$(echo "$line" | wc -w)" = 4 ] && echo "$steps_done$line" >>"$W/samples.txt"
  sleep 0.5
done
rc=0
wait $launcher || rc=$?
[ $rc = 0 ] || { tail -20 "$W/run.log" >&2; fail "the run exited $rc"; }
grep -q "step $STEPS/$STEPS" "$W/run.log" || fail "the run did not reach step $STEPS"
sleep 0.2
for p in "${ranks[@]}"; do
  if kill -0 "$p" 2>/dev/null; then fail "rank process $p outlived the run"; fi
done

"$PY" - "$W/samples.txt" "$SECONDS" "$STEPS" <<'PYEOF'
import sys
# Samples taken once the last step is logged may catch a rank tearing down.
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r[0] < int(sys.argv[3])]
if len(rows) < 8:
    sys.exit("FAIL: only %d samples: the run was too short to judge" % len(rows))
# Warm-up: the first quarter of the steps (by step, not by time: a loaded
# machine stretches the start).
warm = sum(1 for r in rows if r[0] < int(sys.argv[3]) // 4)
if warm < 2 or len(rows) - warm < 6:
    sys.exit("FAIL: %d samples in warm-up and %d after: too few to judge" % (warm, len(rows) - warm))
for r in range(2):
    rss = [row[1 + 2 * r] for row in rows]
    fds = [row[2 + 2 * r] for row in rows]
    base, last = max(rss[:warm]), max(rss[warm:])
    allowed = max(8 * 1024, 0.03 * base)
    print("   rank %d: resident %.1f MiB after warm-up (step %d), at most %.1f MiB after (to step %d); "
          "descriptors %d..%d" % (r, base / 1024, rows[warm - 1][0], last / 1024, rows[-1][0],
                                  min(fds[warm:]), max(fds[warm:])))
    if last - base > allowed:
        sys.exit("FAIL: rank %d's resident memory grew by %.1f MiB after warm-up: %s" % (r, (last - base) / 1024, rss))
    # Reading each step's batch file opens descriptors for a moment: a leak
    # is a count that does not come back, or keeps climbing.
    low = min(fds[warm:])
    if min(fds[-5:]) != low or max(fds[warm:]) > low + 4:
        sys.exit("FAIL: rank %d's open descriptors grew after warm-up: %s" % (r, fds[warm:]))
print("   %d samples over %s s" % (len(rows), sys.argv[2]))
PYEOF
echo "test_pprun_soak: OK: $STEPS steps in ${SECONDS}s"
