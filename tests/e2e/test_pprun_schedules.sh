#!/bin/bash
# pprun's schedules as data, end to end (real processes over Gloo):
#   - CSV round trip: --print-schedule --format csv writes a schedule that
#     --schedule-file runs to the same parameters as the named schedule;
#     a hand-written, torch-style CSV (empty cells for idle slots) trains
#     like PyTorch, and so do interleaved-zb and dualpipev;
#   - malformed schedule files are rejected before any rank starts, naming
#     the file, rank and action (missing forward, backward before forward,
#     W before I, a stage on two ranks, a deadlock);
#   - --trace (Chrome trace JSON), --timeline (SVG), --profile and
#     --simulate --costs, and the per-step measured vs simulated bubble.
# (Every schedule x sample gradient equality runs in-process in
# ppc_engine_tests.)
#
# Usage: tests/e2e/test_pprun_schedules.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
W=$OUT_TMP
rm -rf "${W:?}"/*
SECONDS=0

MODEL=$ROOT/samples/mlp/mlp_traced.pt
"$PPC" split "$MODEL" --stages 2 -o "$W/two" >/dev/null 2>&1
"$PPC" split "$MODEL" --stages 4 -o "$W/four" >/dev/null 2>&1
"$PY" "$E2E/make_batches.py" mlp "$W/batches" --batches 2 --batch-size 8 --seed 5 >/dev/null
TRAIN=(--inputs "$W/batches" --steps 2 --train --loss mse --optimizer sgd --lr 0.05 --momentum 0.9 --quiet)
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref.pt" --steps 2 --loss mse --optimizer sgd --lr 0.05 \
  --momentum 0.9 >/dev/null

step "CSV round trip: zb-h1 written as CSV and run from the file"
"$PPRUN" --manifest "$W/four" --print-schedule --format csv --schedule zb-h1 --nproc 4 --chunks 4 --train >"$W/zb.csv"
cat "$W/zb.csv"
grep -q "0I0" "$W/zb.csv" && ! grep -q "SEND" "$W/zb.csv" || fail "the CSV should be compute-only with I/W"
"$PPRUN" --manifest "$W/four" --nproc 4 --schedule zb-h1 --chunks 4 "${TRAIN[@]}" --save "$W/named" || fail "zb-h1"
"$PPRUN" --manifest "$W/four" --nproc 4 --schedule-file "$W/zb.csv" "${TRAIN[@]}" --save "$W/file" || fail "from file"
compare "$W/file/params.pt" "$W/named/params.pt" "schedule file vs named schedule"
compare "$W/file/params.pt" "$W/ref.pt" "schedule file vs PyTorch"

step "a hand-written, torch-style CSV: idle cells, quoted cells, backward in reverse micro-batch order"
printf '0F0,0F1,0F2,,,0B2,0B1,0B0\r\n,"1F0",1F1,1F2,1B2,1B1,1B0\r\n' >"$W/custom.csv"
"$PPRUN" --manifest "$W/two" --nproc 2 --schedule-file "$W/custom.csv" "${TRAIN[@]}" --save "$W/custom" ||
  fail "custom schedule"
compare "$W/custom/params.pt" "$W/ref.pt" "custom schedule vs PyTorch"

step "interleaved-zb and dualpipev, 4 stages on 2 ranks, real processes: trained like PyTorch"
for s in interleaved-zb dualpipev; do
  "$PPRUN" --manifest "$W/four" --nproc 2 --schedule "$s" --chunks 4 "${TRAIN[@]}" --save "$W/$s" || fail "$s"
  compare "$W/$s/params.pt" "$W/ref.pt" "$s vs PyTorch"
done

step "malformed schedule files: exit 2, one line naming file, rank and action"
reject() {  # reject NAME CSV EXPECTED_SUBSTRING
  printf "$2" >"$W/$1.csv"
  local rc=0
  "$PPRUN" --manifest "$W/two" --nproc 2 --schedule-file "$W/$1.csv" "${TRAIN[@]}" >"$W/bad.out" 2>"$W/bad.err" || rc=$?
  [ $rc -eq 2 ] || fail "$1: exit $rc, expected 2: $(cat "$W/bad.err")"
  [ "$(wc -l <"$W/bad.err")" -eq 1 ] || fail "$1: expected one line: $(cat "$W/bad.err")"
  grep -q -- "$W/$1.csv: .*$3" "$W/bad.err" || fail "$1: message lacks '$3': $(cat "$W/bad.err")"
  echo "   $1: $(cat "$W/bad.err")"
}
reject missing_forward '0F0,0B0,0B1\n1F0,1F1,1B0,1B1\n' "rank 0"
reject backward_first '0F0,0F1,0B0,0B1\n1B0,1F0,1F1,1B1\n' "rank 1, action 0 (1B0)"
reject w_before_i '0F0,0F1,0W0,0I0,0I1,0W1\n1F0,1F1,1I0,1W0,1I1,1W1\n' "rank 0, action 2 (0W0)"
reject two_ranks '0F0,0F1,0B0,0B1\n1F0,1F1,1B0,1B1,0F0\n' "rank 1, action 4 (0F0)"
reject deadlock '0F0,0B0,0F1,0B1\n1F1,1B1,1F0,1B0\n' "deadlock"
reject lowered '0F0,0SEND_F0\n1RECV_F0,1F0\n' "compute actions only"

step "--trace, --timeline, --profile, per-step bubble"
"$PPRUN" --manifest "$W/four" --nproc 4 --schedule zb-h1 --chunks 4 --inputs "$W/batches" --steps 2 --train \
  --loss mse --trace "$W/trace.json" --timeline "$W/run.svg" --profile "$W/costs.json" >"$W/run.log" 2>&1 ||
  { cat "$W/run.log" >&2; fail "traced run"; }
grep -E "step 2/2 .* bubble [0-9.]+% \(simulated [0-9.]+%\)" "$W/run.log" || fail "no bubble in the log: $(cat "$W/run.log")"
"$PY" - "$W" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
w = sys.argv[1]
trace = json.load(open(w + "/trace.json"))
events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
tracks = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
assert tracks == {"rank 0", "rank 1", "rank 2", "rank 3"}, tracks
for rank in range(4):
    for kind in "FIW":
        got = sorted((e["args"]["step"], e["args"]["microbatch"]) for e in events
                     if e["tid"] == rank and e["cat"] == kind)
        want = sorted((s, m) for s in range(2) for m in range(4))
        assert got == want, (rank, kind, got)
    assert all(e["args"]["stage"] == rank for e in events if e["tid"] == rank and "stage" in e["args"])
    assert any(e["cat"] == "optimizer" for e in events if e["tid"] == rank)
assert all(e["dur"] >= 0 for e in events)
assert not any(e.get("ph") == "C" for e in trace["traceEvents"]), "heap samples without --trace-memory"
svg = ET.parse(w + "/run.svg").getroot()
ns = "{http://www.w3.org/2000/svg}"
assert svg.tag == ns + "svg"
texts = [t.text for t in svg.iter(ns + "text")]
assert all(f"rank {r}" in texts for r in range(4)), texts
assert len(svg.findall(ns + "rect")) >= 4 * 3 * 4, "one slice per F, I and W of the last step"
costs = json.load(open(w + "/costs.json"))
assert [s["stage"] for s in costs["stages"]] == [0, 1, 2, 3] and all(s["f"] > 0 for s in costs["stages"])
# Rank 0's host: 4 local ranks of pprun's default threads (the machine's cores / ranks, at least 1) on
# the cores this process may use, all 4 of the run's; ranks x threads beyond them time-share the
# cores, which the log says.
import os
h = costs["host"]
assert h == {"cores": len(os.sched_getaffinity(0)), "threads": max(1, os.cpu_count() // 4), "local_ranks": 4,
             "ranks": 4}, h
noted = "costs.json: measured with 4 ranks x" in open(w + "/run.log").read()
assert noted == (4 * h["threads"] > h["cores"]), (noted, h)
# With one thread per rank, each stage's CPU time too: its work without the waits for a core.
for s in costs["stages"]:
    total = s["f"] + (s["b"] or s["i"] + s["w"])
    assert ("cpu_ms" in s) == (h["threads"] == 1), (s, h)
    assert "cpu_ms" not in s or 0 < s["cpu_ms"] <= 1.1 * total, (s, total)
print(f"   trace: {len(events)} slices on 4 tracks; timeline: {len(svg.findall(ns + 'rect'))} rects; costs for 4 stages")
EOF

step "--simulate from measured costs, with a picture"
"$PPRUN" --manifest "$W/four" --simulate --schedule zb-h1 --chunks 8 --world-size 4 --costs "$W/costs.json" \
  --timeline "$W/sim.svg" >"$W/sim.txt" || fail "simulate"
cat "$W/sim.txt"
grep -q "^makespan .*, bubble " "$W/sim.txt" || fail "no summary"
grep -q "^rank 3 |" "$W/sim.txt" || fail "no timeline"
"$PY" -c 'import sys, xml.etree.ElementTree as ET; ET.parse(sys.argv[1])' "$W/sim.svg" || fail "simulated SVG"
"$PPRUN" --manifest "$W/two" --simulate --schedule-file "$W/custom.csv" --world-size 2 >/dev/null ||
  fail "simulate a schedule file"
# A message costs the ping-pong's latency and its bytes (at the ping-pong's
# rate) in flight, and k times that at each end's rank, with the k at which
# the simulator, fed the run's measured stage times, reproduces the measured
# step less its time outside the pipeline (or falls short with k = 0).
read -r comm cpu step overhead < <("$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); l = c["link"]; print(l["message_ms"], l["message_cpu_ms"], c["step_ms"], c["overhead_ms"])' "$W/costs.json")
makespan=$("$PPRUN" --manifest "$W/four" --simulate --schedule zb-h1 --chunks 4 --world-size 4 --costs "$W/costs.json" \
  | sed -n 's/^makespan \([0-9.e+-]*\).*/\1/p')
"$PY" -c "import sys; m, c, s, o = map(float, sys.argv[1:]); assert 0 <= o < s; sys.exit(0 if (abs(m - (s - o)) <= 1e-3 * s if c > 0 else m >= (s - o) * (1 - 1e-3)) else 1)" \
  "$makespan" "$cpu" "$step" "$overhead" ||
  fail "calibration: makespan $makespan ms at $cpu ms per message and end, measured step $step ms less overhead $overhead ms"
echo "   calibrated: makespan $makespan ms at $comm ms in flight and $cpu ms at each end per message = step $step ms - overhead $overhead ms"
step "measured costs into ppc: --profile of a 4-stage split -> ppc split --balance time --costs -> a 2-stage split"
"$PY" - "$W/costs.json" "$ROOT/samples/mlp/mlp_traced.pt" <<'EOF'
import hashlib, json, sys
c = json.load(open(sys.argv[1]))
assert c["source_sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert c["micro_batch_size"] == 2.0, c["micro_batch_size"]  # batches of 8 in 4 micro-batches
assert c["loss_stage"] == 3 and 0 < c["loss_ms"] < c["stages"][3]["f"], c
assert c["link"]["latency_ms"] > 0 and c["link"]["bytes_per_second"] > 1e6, c["link"]  # measured ping-pong
assert c["link"]["message_ms"] == c["link"]["latency_ms"], c["link"]  # in flight: the ping-pong's
# Every stage pair's message bytes, per micro-batch each way (the engine test
# checks them against the wire format); the calibration charged them at the
# ping-pong's rate.
assert [(e["from"], e["to"]) for e in c["edges"]] == [(0, 1), (1, 2), (2, 3)], c["edges"]
assert all(e["bytes"] > 0 and e["grad_bytes"] == e["bytes"] for e in c["edges"]), c["edges"]
assert c["link"]["message_bytes_per_second"] == c["link"]["bytes_per_second"], c["link"]
assert all(s["first_node"] and s["last_node"] for s in c["stages"])
EOF
"$PPC" split "$MODEL" --stages 2 --balance time --costs "$W/costs.json" -o "$W/timed" >"$W/timed.txt" 2>&1 ||
  { cat "$W/timed.txt" >&2; fail "ppc split --balance time"; }
cat "$W/timed.txt"
# ppc says so too.
"$PY" - "$W/costs.json" "$W/timed.txt" <<'EOF' || fail "ppc's note on an oversubscribed profile"
import json, sys
h = json.load(open(sys.argv[1]))["host"]
noted = [l for l in open(sys.argv[2]) if l.startswith(f"note: {sys.argv[1]}: measured with 4 ranks x {h['threads']} thread")]
assert len(noted) == (1 if 4 * h["threads"] > h["cores"] else 0), (noted, h)
EOF
"$PY" - "$W/timed/manifest.json" "$W/costs.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
cm = m["cost"]["model"]
assert cm["balance"] == "time" and cm["unit"] == "ms" and cm["partition"] == "auto", cm
# Every measured millisecond of work lands on some node: the model's compute
# sums to the profile's per-sample total, each stage's time capped at its CPU
# time where the profiled ranks time-shared the cores.
h = c["host"]
shared = h["local_ranks"] * h["threads"] > h["cores"] and all("cpu_ms" in s for s in c["stages"])
total = sum(min(t, s["cpu_ms"]) if shared else t for s in c["stages"]
            for t in [s["f"] + (s["b"] or s["i"] + s["w"])]) / c["micro_batch_size"]  # zb-h1: I + W
got = sum(s["cost"]["model_compute"] for s in m["stages"])
assert abs(got - total) <= 1e-4 * total, (got, total)
assert max(s["cost"]["model"] for s in m["stages"]) == cm["bottleneck"]
# The profiled pipeline's message costs are kept for prediction, not charged to the stages.
assert abs(cm["message_ms"] - c["link"]["message_ms"]) <= 1e-5 * max(1.0, c["link"]["message_ms"]), (cm, c["link"])
assert abs(cm.get("message_cpu_ms", 0) - c["link"]["message_cpu_ms"]) <= 1e-5 * max(1.0, c["link"]["message_cpu_ms"]), (cm, c["link"])
# Its rank time at each end is k times its idle one-way time: k x latency, and its bytes at bandwidth / k.
l = c["link"]
if l["message_cpu_ms"] > 0:
    k = l["message_cpu_ms"] / l["latency_ms"]
    assert abs(l["message_cpu_bytes_per_second"] * k / l["bytes_per_second"] - 1) <= 1e-9, l
    assert abs(cm["message_cpu_bytes_per_second"] / l["message_cpu_bytes_per_second"] - 1) <= 1e-5, (cm, l)
else:
    assert "message_cpu_bytes_per_second" not in l and "message_cpu_bytes_per_second" not in cm, (cm, l)
# And the bytes of the one stage pair's message with it. TorchScript records
# no shapes: a value of unknown size counts the profiled messages' mean.
assert abs(cm["message_bytes_per_second"] / c["link"]["message_bytes_per_second"] - 1) <= 1e-5, cm
mean = sum(e["bytes"] for e in c["edges"]) / len(c["edges"]) / c["micro_batch_size"]
assert [(e["from"], e["to"]) for e in cm["message_bytes"]] == [(0, 1)], cm["message_bytes"]
assert abs(cm["message_bytes"][0]["bytes_per_sample"] / mean - 1) <= 1e-5, (cm["message_bytes"], mean)
print(f"   time-balanced: stage costs {[s['cost']['model'] for s in m['stages']]} ms/sample, imbalance {cm['imbalance']}")
EOF
# ppc's predicted step is pprun's simulator on the manifest's stage compute (the simulator charges
# every message: latency, bytes and time at both ends, so the stage costs' share of communication
# stays out), plus the profiled step's time outside the pipeline.
# The same for 4 stages from this profile of 4 ranks: on a host with fewer
# cores than that (in ranks: cores / threads), the manifest says the ranks
# share them, and so does the host in the costs file rebuilt for pprun.
"$PPC" split "$MODEL" --stages 4 --balance time --costs "$W/costs.json" -o "$W/timed4" >/dev/null 2>&1 ||
  fail "ppc split --stages 4 --balance time"
for split in timed timed4; do
"$PY" - "$W/$split/manifest.json" "$W/costs.json" "$W/pred.$split.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
c = json.load(open(sys.argv[2]))
cm = m["cost"]["model"]
assert cm["predicted_schedule"] == "zb-h1" and cm["predicted_step_ms"] > 0, cm  # the profile's schedule
mb, ff = c["micro_batch_size"], cm["forward_fraction"]
assert any(s["cost"]["model"] > s["cost"]["model_compute"] for s in m["stages"]), m["stages"]  # or this proves nothing
h, S = c["host"], len(m["stages"])
shared = h["cores"] / h["threads"]
assert (cm.get("predicted_cores") is not None) == (shared < S), (cm, h)
assert shared >= S or abs(cm["predicted_cores"] / shared - 1) <= 1e-5, (cm, h)
st = [{"stage": s["index"], "f": c * mb * ff, "b": c * mb * (1 - ff), "i": c * mb * (1 - ff) / 2, "w": c * mb * (1 - ff) / 2,
       "cpu_ms": c * mb} for s in m["stages"] for c in [s["cost"]["model_compute"]]]
edges = [{"from": e["from"], "to": e["to"], "bytes": e["bytes_per_sample"] * mb,
          "grad_bytes": e["grad_bytes_per_sample"] * mb} for e in cm["message_bytes"]]
json.dump({"version": 1, "unit": "ms", "stages": st, "edges": edges,
           "host": {"cores": h["cores"], "threads": h["threads"], "local_ranks": S},
           "link": {"message_bytes_per_second": cm["message_bytes_per_second"], "message_ms": cm["message_ms"],
                    "message_cpu_ms": cm.get("message_cpu_ms", 0),
                    "message_cpu_bytes_per_second": cm.get("message_cpu_bytes_per_second", 0)}}, open(sys.argv[3], "w"))
EOF
read -r comm predicted overhead < <("$PY" -c 'import json, sys; c = json.load(open(sys.argv[1]))["cost"]["model"]; print(c["message_ms"], c["predicted_step_ms"], c.get("step_overhead_ms", 0))' "$W/$split/manifest.json")
ranks=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["stages"]))' "$W/$split/manifest.json")
simulated=$("$PPRUN" --manifest "$W/$split" --world-size "$ranks" --schedule zb-h1 --chunks 4 --simulate \
  --costs "$W/pred.$split.json" --comm "$comm" | sed -n 's/^makespan \([0-9.e+-]*\).*/\1/p')
"$PY" - "$predicted" "$simulated" "$overhead" "$W/costs.json" <<'EOF' ||
import json, sys
p, s, o = map(float, sys.argv[1:4])
c = json.load(open(sys.argv[4]))
# The overhead is the profile's: before the first compute and after the last action, within the step.
assert 0 <= o < c["step_ms"] and abs(o - c["overhead_ms"]) <= 1e-5 * c["overhead_ms"], (o, c)
sys.exit(0 if abs(p - (s + o)) <= 1e-3 * p + 1e-6 else 1)
EOF
  fail "$split: ppc predicted $predicted ms, pprun --simulate gives $simulated ms + $overhead ms"
echo "   $split: predicted step $predicted ms = pprun --simulate $simulated ms + overhead $overhead ms"
done
"$PPRUN" --manifest "$W/timed" --nproc 2 "${TRAIN[@]}" --save "$W/timed_run" || fail "run the time-balanced split"
compare "$W/timed_run/params.pt" "$W/ref.pt" "time-balanced split vs PyTorch"
code=0
"$PPC" split "$ROOT/samples/skip/skip_traced.pt" --stages 2 --balance time --costs "$W/costs.json" -o "$W/bad" \
  >/dev/null 2>"$W/bad.txt" || code=$?
[ "$code" = 2 ] && grep -q "costs.json: measured on a different model" "$W/bad.txt" ||
  fail "a profile of another model: exit $code, $(cat "$W/bad.txt")"
[ ! -e "$W/bad" ] || fail "a failed split left output behind"

step "runtime defaults from the manifest (the split spec's \"defaults\": 1f1b, 4 chunks), overridable"
"$PPC" split "$ROOT/samples/tinygpt/tinygpt.onnx" --splits "$ROOT/samples/tinygpt/spec_explicit.json" -o "$W/defaults" \
  >/dev/null 2>&1
"$PPRUN" --manifest "$W/defaults" --print-schedule --train >"$W/defaults.txt"
grep -q "0F3" "$W/defaults.txt" && ! grep -q "0F4" "$W/defaults.txt" || fail "manifest chunks not used: $(cat "$W/defaults.txt")"
"$PPRUN" --manifest "$W/defaults" --print-schedule --train --chunks 2 | grep -q "0F2" && fail "--chunks 2 not used"
step "all schedule checks passed"
