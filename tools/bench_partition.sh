#!/usr/bin/env bash
# Automatic partitioning from measured costs, end to end, on every sample
# (ONNX export), training on synthetic batches with 1F1B, 1 thread per rank:
#  1. profile the split a user starts from, as it runs: the sample's
#     hand-written 3-stage spec on 3 ranks, and a uniform 2-stage split on 2
#     ranks; `pprun --profile` writes each stage's measured forward/backward
#     ms and what a message costs in that pipeline;
#  2. `ppc split --stages N --balance time --costs PROFILE` puts those times
#     on the nodes and finds the optimal N-stage split (N = 3 from the 3-rank
#     profile, N = 2 from the 2-rank one);
#  3. hand vs auto: the hand-written split (samples/<name>/spec.json, 3
#     stages) and the auto 3-stage split train on 3 ranks, alternating runs:
#     median step time (first step of each run excluded), and the slowest
#     stage's measured F+B per micro-batch (what bounds a pipeline with a core
#     per rank), and ppc's predicted stage costs against the measured ones;
#  4. every hand split at a block boundary vs auto, 2 stages on 2 ranks (no
#     time-sharing): one spec per boundary between the sample's blocks
#     (mlp/convnet: top-level modules, skip: blocks.N, tinygpt: h.N), each
#     run like the auto 2-stage split; the best of them against auto;
#  5. prediction vs measurement: the auto 2-stage split on 2 ranks (one per
#     core); its predicted step is ppc's (manifest cost.model.predicted_step_ms:
#     the per-stage costs, compute + bytes received per micro-batch, through
#     the schedule simulator with the profiled pipeline's message latency),
#     next to the simulator run on the same run's measured stage times.
#
# Usage: [KEEP=1] tools/bench_partition.sh [BUILD_DIR] [--batch-size N] [--chunks M] [--steps S] [--rounds R] [--samples "mlp skip"]
# Ranks beyond the machine's cores time-share them (3 ranks on 2 cores here),
# which the simulator does not model; that is why steps 4 and 5 use 2 ranks.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
BATCH=512 CHUNKS=8 STEPS=10 ROUNDS=3 SAMPLES="mlp skip tinygpt convnet"
while [ $# -gt 0 ]; do
  case $1 in
    --batch-size) BATCH=$2; shift 2 ;;
    --chunks) CHUNKS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --samples) SAMPLES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PY=/usr/bin/python3
W=$(mktemp -d)
if [ -n "${KEEP:-}" ]; then echo "work files kept in $W" >&2; else trap 'rm -rf "$W"' EXIT; fi
RUN=(--threads 1 --chunks "$CHUNKS" --synthetic --batch-size "$BATCH" --dim seq=16 --steps "$STEPS" --train --loss mse
     --optimizer sgd --lr 0.001)

median_step() {  # LOG... -> median step ms over all logs, first step of each excluded
  "$PY" - "$@" <<'EOF'
import re, sys, statistics
ms = []
for f in sys.argv[1:]:
    rows = [float(m.group(1)) for m in re.finditer(r"step \d+/\d+ .*? step ([0-9.]+) ms", open(f).read())]
    ms += rows[1:]
print(f"{statistics.median(ms):.3f}")
EOF
}

pred() {  # SPLIT_DIR -> ppc's predicted step ms (stage costs and message latency through the simulator)
  "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["cost"]["model"]["predicted_step_ms"])' "$1/manifest.json"
}

stage_times() {  # PROFILE... -> per-stage f+b ms per micro-batch, median over the profiles
  "$PY" - "$@" <<'EOF'
import json, statistics, sys
runs = [[s["f"] + (s["b"] or s["i"] + s["w"]) for s in json.load(open(f))["stages"]] for f in sys.argv[1:]]
print(" ".join(f"{statistics.median(col):.4f}" for col in zip(*runs)))
EOF
}

echo "batch $BATCH, $CHUNKS micro-batches, $STEPS steps x $ROUNDS runs per split, 1f1b, 1 thread per rank, $(nproc) cores"
echo "step: median ms per step; slowest stage: measured F+B ms per micro-batch of the slowest stage;"
echo "stage p/m: ppc's predicted stage compute over the measured F+B (min..max over stages), auto3 and auto2;"
echo "auto2 runs: each run's median step over the median of all runs (min..max: this machine's noise);"
echo "auto2 predicted: ppc's predicted step (stage costs through the simulator, message latency as profiled);
simulated: the run's own measured stage times through it, messages free"
printf "%-8s | %8s %8s %6s | %8s %8s %6s | %11s %11s | %8s %11s %9s %9s %9s\n" sample "hand3" "auto3" "a/h" "hand3" "auto3" "a/h" \
  "stage p/m" "stage p/m" "auto2" "runs" "predicted" "simulated" "pred/meas"
printf "%-8s | %24s | %24s | %11s %11s | %51s\n" "" "step ms (3 ranks)" "slowest stage ms" "auto3" "auto2" "step ms (2 ranks)"
for s in $SAMPLES; do
  model="$ROOT/samples/$s/$s.onnx"
  # The splits profiled: the hand-written one, and a uniform 2-stage one.
  "$BUILD/ppc" split "$model" --splits "$ROOT/samples/$s/spec.json" -o "$W/$s.prof3" >/dev/null 2>&1
  "$BUILD/ppc" split "$model" --stages 2 --balance uniform -o "$W/$s.prof2" >/dev/null 2>&1
  for n in 2 3; do
    "$BUILD/pprun" --manifest "$W/$s.prof$n" --nproc $n --schedule 1f1b "${RUN[@]}" --profile "$W/$s.prof$n.json" \
      >"$W/$s.prof$n.log" 2>&1 || { cat "$W/$s.prof$n.log" >&2; exit 1; }
    "$BUILD/ppc" split "$model" --stages $n --balance time --costs "$W/$s.prof$n.json" -o "$W/$s.auto$n" >"$W/$s.auto$n.txt" 2>&1 ||
      { cat "$W/$s.auto$n.txt" >&2; exit 1; }
  done
  # The hand split, evaluated under the same measured costs.
  "$BUILD/ppc" split "$model" --splits "$ROOT/samples/$s/spec.json" --costs "$W/$s.prof3.json" -o "$W/$s.hand3" \
    >"$W/$s.hand3.txt" 2>&1 || { cat "$W/$s.hand3.txt" >&2; exit 1; }
  # Hand-written 2-stage splits: one per boundary between blocks.
  hand2=()
  depth=$(case $s in skip|tinygpt) echo 2 ;; *) echo 1 ;; esac)
  units=$("$BUILD/ppc" split "$model" --stages 1 --emit ir 2>/dev/null | sed -n 's/^node [^ ]* [^ ]* @\([^ ]*\) .*/\1/p' |
    cut -d. -f1-"$depth" | awk '!seen[$0]++')
  for u in $(echo "$units" | sed '$d'); do
    k="h2_${u//./_}"
    echo "{\"version\": 1, \"split_points\": [{\"module\": \"$u\", \"at\": \"end\"}]}" >"$W/$s.$k.spec.json"
    "$BUILD/ppc" split "$model" --splits "$W/$s.$k.spec.json" -o "$W/$s.$k" >/dev/null 2>&1 && hand2+=("$k:2")
  done
  for r in $(seq "$ROUNDS"); do
    for kind in hand3:3 auto3:3 auto2:2 "${hand2[@]}"; do
      k=${kind%%:*}
      "$BUILD/pprun" --manifest "$W/$s.$k" --nproc "${kind##*:}" --schedule 1f1b "${RUN[@]}" --profile "$W/$s.$k.$r.json" \
        >"$W/$s.$k.$r.log" 2>&1 || { cat "$W/$s.$k.$r.log" >&2; exit 1; }
    done
  done
  hand=$(median_step "$W/$s".hand3.*.log)
  auto=$(median_step "$W/$s".auto3.*.log)
  auto2=$(median_step "$W/$s".auto2.*.log)
  p2=$(pred "$W/$s.auto2")
  # The simulator on the auto2 runs' own measured stage times.
  read -r -a t2 <<<"$(stage_times "$W/$s".auto2.*.json)"
  "$PY" -c "import json,sys; print(json.dumps({'version': 1, 'unit': 'ms', 'stages': [{'stage': i, 'f': float(x) / 3, 'b': 2 * float(x) / 3, 'i': 0, 'w': 0} for i, x in enumerate(sys.argv[1:])]}))" \
    "${t2[@]}" >"$W/$s.auto2.meas.json"
  sim2=$("$BUILD/pprun" --manifest "$W/$s.auto2" --world-size 2 --schedule 1f1b --chunks "$CHUNKS" --simulate \
    --costs "$W/$s.auto2.meas.json" | sed -n 's/^makespan \([0-9.]*\).*/\1/p')
  best=; best_ms=
  for kind in "${hand2[@]}"; do
    k=${kind%%:*}
    ms=$(median_step "$W/$s.$k".*.log)
    if [ -z "$best" ] || "$PY" -c "import sys; sys.exit(0 if $ms < $best_ms else 1)"; then best=${k#h2_} best_ms=$ms; fi
  done
  echo "$s ${#hand2[@]} ${best//_/.} $best_ms $auto2" >>"$W/hand2.txt"
  th=$(stage_times "$W/$s".hand3.*.json)
  ta=$(stage_times "$W/$s".auto3.*.json)
  runs2=$(for f in "$W/$s".auto2.*.log; do median_step "$f"; done | tr '\n' ' ')
  "$PY" - "$s" "$hand" "$auto" "$auto2" "$p2" "$sim2" "$th" "$ta" "$W/$s.auto3/manifest.json" "$BATCH" "$CHUNKS" \
    "${t2[*]}" "$W/$s.auto2/manifest.json" "$runs2" <<'EOF'
import json, sys
s, h, a, a2, p2, sim2, th, ta, man, batch, chunks, t2, man2, runs2 = sys.argv[1:]
h, a, a2, p2, sim2 = map(float, (h, a, a2, p2, sim2))
mb = int(batch) / int(chunks)
def stage_ratio(man, meas):
    pred = [st["cost"]["model_compute"] * mb for st in json.load(open(man))["stages"]]
    r = [p / float(m) for p, m in zip(pred, meas.split())]
    return f"{min(r):5.2f}..{max(r):4.2f}"
th = [float(x) for x in th.split()]
ta = [float(x) for x in ta.split()]
runs = [float(x) / a2 for x in runs2.split()]
print(f"{s:<8} | {h:8.2f} {a:8.2f} {a / h:6.2f} | {max(th):8.3f} {max(ta):8.3f} {max(ta) / max(th):6.2f} | "
      f"{stage_ratio(man, ' '.join(map(str, ta)))} {stage_ratio(man2, t2)} | {a2:8.2f} {min(runs):5.2f}..{max(runs):4.2f} "
      f"{p2:9.2f} {sim2:9.2f} {p2 / a2:9.2f}")
EOF
done
echo
echo "2 stages on 2 ranks: the best hand split at a block boundary vs auto (median step ms)"
printf "%-8s %6s %-14s %10s %10s %9s\n" sample splits "best hand" "hand ms" "auto ms" auto/hand
while read -r s n u h a; do
  "$PY" -c "print('%-8s %6s %-14s %10.2f %10.2f %9.2f' % ('$s', '$n', 'end of $u', $h, $a, $a / $h))"
done <"$W/hand2.txt"
