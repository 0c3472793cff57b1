#!/usr/bin/env bash
# Step time and bubble of every schedule, measured by pprun and predicted by
# its simulator, on the mlp sample split into 4 stages (layer0 | layer1 |
# layer2 | output_proj), training on synthetic batches, 1 intra-op thread per
# rank. One-stage-per-rank schedules run on 4 ranks; two-stages-per-rank
# schedules (interleaved, looped BFS, ZB-V) on 2 ranks. The simulated bubble
# uses the stage times measured in the same run. Also prints, from the
# zb-h1 run's profile, the input-gradient (I) and weight-gradient (W) passes
# against the full backward (B) of the 1f1b run, per stage.
#
# Usage: tools/bench_schedules.sh [BUILD_DIR] [--batch-size N] [--chunks M] [--steps S]
# Timings on a machine with fewer cores than ranks include time-sharing: the
# measured bubble then also counts ranks waiting for a core.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
BATCH=256 CHUNKS=8 STEPS=12
while [ $# -gt 0 ]; do
  case $1 in
    --batch-size) BATCH=$2; shift 2 ;;
    --chunks) CHUNKS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cat >"$W/spec.json" <<'EOF'
{"version": 1,
 "split_points": [{"module": "layer0", "at": "end"}, {"module": "layer1", "at": "end"}, {"module": "layer2", "at": "end"}],
 "inputs": {"x": {"dtype": "float32", "shape": ["batch", 512]}}}
EOF
"$BUILD/ppc" split "$ROOT/samples/mlp/mlp_traced.pt" --splits "$W/spec.json" -o "$W/mlp4" >/dev/null 2>&1
echo "mlp, 4 stages, batch $BATCH, $CHUNKS micro-batches, $STEPS steps (first excluded), 1 thread per rank, $(nproc) cores"
printf "%-18s %5s %12s %12s %14s\n" schedule ranks "step (ms)" "bubble" "simulated"
for cfg in gpipe:4 1f1b:4 zb-h1:4 interleaved-1f1b:2 looped-bfs:2 zb-v:2; do
  sched=${cfg%%:*} ranks=${cfg##*:}
  "$BUILD/pprun" --manifest "$W/mlp4" --nproc "$ranks" --threads 1 --schedule "$sched" --chunks "$CHUNKS" \
    --synthetic --batch-size "$BATCH" --steps "$STEPS" --train --loss mse --optimizer sgd --lr 0.01 \
    --profile "$W/$sched.json" >"$W/$sched.log" 2>&1 || { cat "$W/$sched.log" >&2; exit 1; }
  /usr/bin/python3 - "$W/$sched.log" "$sched" "$ranks" <<'EOF'
import re, sys, statistics
rows = [tuple(map(float, m.groups())) for m in
        re.finditer(r"step (\d+)/\d+ .*? step ([0-9.]+) ms  bubble ([0-9.]+)% \(simulated ([0-9.]+)%\)", open(sys.argv[1]).read())]
rows = rows[1:]  # the first step pays one-time costs (graph executor profiling, allocations)
med = lambda k: statistics.median(r[k] for r in rows)
print(f"{sys.argv[2]:<18} {sys.argv[3]:>5} {med(1):12.2f} {med(2):11.1f}% {med(3):13.1f}%")
EOF
done
echo
echo "per-stage backward, ms per micro-batch (1f1b's B vs zb-h1's I and W):"
/usr/bin/python3 - "$W/1f1b.json" "$W/zb-h1.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))["stages"]
z = json.load(open(sys.argv[2]))["stages"]
print(f"{'stage':>5} {'F':>8} {'B':>8} {'I':>8} {'W':>8} {'I+W':>8} {'(I+W)/B':>8}")
for sb, sz in zip(b, z):
    iw = sz["i"] + sz["w"]
    print(f"{sb['stage']:>5} {sb['f']:8.3f} {sb['b']:8.3f} {sz['i']:8.3f} {sz['w']:8.3f} {iw:8.3f} {iw / sb['b']:8.2f}")
EOF
