#!/bin/bash
# pprun across hosts, for real: two Linux network namespaces made here (each
# with its own loopback, joined by a veth pair with addresses of this test's
# own), one `pprun --nproc 2 --nnodes 2 --node-rank i --master-addr HOST0`
# launcher per namespace, 4 ranks in all:
#   - a 4-stage pipeline spanning both hosts trains to PyTorch's parameters
#     (reference: the unsplit model trained by PyTorch), launched by pprun on
#     both hosts, and with host 1's ranks started by hand in torchrun's
#     environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
#     MASTER_ADDR, MASTER_PORT); and 2x2 pipeline x data parallel (--dp 2),
#     one replica per host;
#   - host 1's link cut mid-run (ip link set down): every rank on both hosts
#     exits non-zero within the timeout, naming the lost host;
#   - host 1's ranks killed: host 0's ranks exit non-zero, naming them;
#   - a rank that cannot reach the store: one line naming address:port;
#   - bad input, exit 2 and one line on every rank of both hosts: a world size
#     that differs between hosts, two hosts with the same --node-rank, a rank
#     missing from a host, a manifest that differs between hosts; and, before
#     anything starts, --node-rank >= --nnodes and --nnodes without a port.
# Needs root (ip netns); exits 77 (skipped) where namespaces cannot be made.
#
# Usage: tests/e2e/test_pprun_hosts.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
W=$OUT_TMP
rm -rf "${W:?}"/*
SECONDS=0

# --- two hosts --------------------------------------------------------------
N0=pph$$a N1=pph$$b V0=vph$$a V1=vph$$b A0=10.231.7.1 A1=10.231.7.2
cleanup() {
  local ns pid
  for ns in "$N0" "$N1"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}
trap cleanup EXIT
skip() {
  echo "SKIP: cannot make network namespaces here ($1); this test needs root and 'ip netns'"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "not root"
command -v ip >/dev/null || skip "no ip command"
ip netns add "$N0" 2>"$W/netns.err" || skip "ip netns add: $(cat "$W/netns.err")"
ip netns add "$N1" 2>"$W/netns.err" || skip "ip netns add: $(cat "$W/netns.err")"
ip link add "$V0" type veth peer name "$V1" 2>"$W/netns.err" || skip "veth: $(cat "$W/netns.err")"
ip link set "$V0" netns "$N0"
ip link set "$V1" netns "$N1"
ip -n "$N0" addr add "$A0/24" dev "$V0"
ip -n "$N1" addr add "$A1/24" dev "$V1"
for ns in "$N0" "$N1"; do ip -n "$ns" link set lo up; done
ip -n "$N0" link set "$V0" up
ip -n "$N1" link set "$V1" up
step "hosts: $N0 ($A0) and $N1 ($A1), joined by $V0-$V1"

MODEL=$ROOT/samples/mlp/mlp_traced.pt
"$PPC" split "$MODEL" --stages 4 -o "$W/four" >/dev/null 2>&1
"$PPC" split "$MODEL" --stages 4 --balance params -o "$W/other" >/dev/null 2>&1
cmp -s "$W/four/manifest.json" "$W/other/manifest.json" && fail "the two splits should differ"
"$PY" "$E2E/make_batches.py" mlp "$W/batches" --batches 2 --batch-size 8 --seed 5 >/dev/null
OPT=(--loss mse --optimizer sgd --lr 0.05 --momentum 0.9)
"$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref.pt" --steps 2 "${OPT[@]}" \
  --losses-out "$W/ref.json" >/dev/null

PORT=29400
TIMEOUT=10
# host NS NODE LOG PPRUN_ARGS...: one launcher for host NODE in the background
# ($!), its output (all ranks, prefixed) in LOG.
host() {
  local ns=$1 node=$2 log=$3
  shift 3
  ip netns exec "$ns" "$PPRUN" --nproc 2 --nnodes 2 --node-rank "$node" --master-addr "$A0" --master-port "$PORT" \
    --threads 1 --timeout "$TIMEOUT" "$@" >"$log" 2>&1 &
}
# started LOG: waits until rank 0 has logged 3 steps.
started() {
  for _ in $(seq 150); do
    if [ "$(grep -c 'step [0-9]' "$1" 2>/dev/null || true)" -ge 3 ]; then return 0; fi
    sleep 0.2
  done
  fail "training did not start: $(cat "$W"/*.log)"
}
# own_lines LOG RANK: rank RANK's lines in LOG, but for PyTorch 2.x's c10d
# warning that it cannot reverse-resolve a socket's address
# ("[W1207 ... socket.cpp:207] [c10d] The hostname of the client socket cannot
# be retrieved. err=-3"), which is c10d's, not pprun's, and depends on DNS.
own_lines() {
  grep "^\[rank $2\] " "$1" | grep -v '^\[rank [0-9]*\] \[W[0-9]* [0-9:.]* socket\.cpp:[0-9]*\] \[c10d\] ' || true
}
# wait_rc PID: its exit status in RC (wait must run in this shell, not in $(...)).
wait_rc() {
  RC=0
  wait "$1" || RC=$?
}

step "a pipeline spanning 2 hosts (ranks 0, 1 on host 0; 2, 3 on host 1) trains like PyTorch"
TRAIN=(--manifest "$W/four" --inputs "$W/batches" --chunks 4 --steps 2 --train "${OPT[@]}" --save "$W/ck")
host "$N0" 0 "$W/train0.log" "${TRAIN[@]}"
p0=$!
host "$N1" 1 "$W/train1.log" "${TRAIN[@]}"
p1=$!
wait_rc $p1
[ $RC -eq 0 ] || fail "host 1: $(cat "$W/train1.log")"
wait_rc $p0
[ $RC -eq 0 ] || fail "host 0: $(cat "$W/train0.log")"
compare "$W/ck/params.pt" "$W/ref.pt" "params after 2 steps, 2 hosts"
compare_losses "$W/train0.log" "$W/ref.json" "per-step loss, 2 hosts"

step "the same with host 1's ranks started in torchrun's environment (gpipe)"
PORT=$((PORT + 1))
TRAIN=(--manifest "$W/four" --inputs "$W/batches" --chunks 4 --steps 2 --train "${OPT[@]}" --schedule gpipe)
host "$N0" 0 "$W/env0.log" "${TRAIN[@]}" --save "$W/ck_env"
p0=$!
pids=()
for local in 0 1; do
  ip netns exec "$N1" env RANK=$((2 + local)) WORLD_SIZE=4 LOCAL_RANK=$local LOCAL_WORLD_SIZE=2 GROUP_RANK=1 \
    GROUP_WORLD_SIZE=2 MASTER_ADDR=$A0 MASTER_PORT=$PORT \
    "$PPRUN" "${TRAIN[@]}" --save "$W/ck_env" --threads 1 --timeout $TIMEOUT >"$W/env1.$local.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait_rc "$p"
  [ $RC -eq 0 ] || fail "host 1 (torchrun env): $(cat "$W"/env1.*.log)"
done
wait_rc $p0
[ $RC -eq 0 ] || fail "host 0: $(cat "$W/env0.log")"
compare "$W/ck_env/params.pt" "$W/ref.pt" "params after 2 steps, torchrun's environment on host 1"

step "2x2 pipeline x data parallel across the hosts (--dp 2: a replica per host, gradients all-reduced between them)"
PORT=$((PORT + 1))
"$PPC" split "$MODEL" --stages 2 -o "$W/two" >/dev/null 2>&1
TRAIN=(--manifest "$W/two" --inputs "$W/batches" --chunks 2 --steps 2 --train "${OPT[@]}" --dp 2 --save "$W/ck_dp")
host "$N0" 0 "$W/dp0.log" "${TRAIN[@]}"
p0=$!
host "$N1" 1 "$W/dp1.log" "${TRAIN[@]}"
p1=$!
wait_rc $p1
[ $RC -eq 0 ] || fail "host 1 (--dp 2): $(cat "$W/dp1.log")"
wait_rc $p0
[ $RC -eq 0 ] || fail "host 0 (--dp 2): $(cat "$W/dp0.log")"
compare "$W/ck_dp/params.pt" "$W/ref.pt" "params after 2 steps, 2 replicas on 2 hosts"
compare_losses "$W/dp0.log" "$W/ref.json" "per-step loss, 2 replicas on 2 hosts"

LONG=(--manifest "$W/four" --inputs "$W/batches" --chunks 4 --steps 100000000 --train --loss mse --optimizer sgd
      --lr 0.001)
# lost_within LIMIT PID LOG WHAT PATTERN: PID exits non-zero within LIMIT s of
# $CUT, and each of its ranks' error line matches PATTERN.
lost_within() {
  local limit=$1 pid=$2 log=$3 what=$4 pattern=$5
  wait_rc "$pid"
  local rc=$RC took=$((SECONDS - CUT))
  [ "$rc" -ne 0 ] || fail "$what exited 0"
  [ "$took" -le "$limit" ] || fail "$what took ${took}s to exit (limit ${limit}s)"
  grep -q "error: .*$pattern" "$log" || fail "$what does not name '$pattern': $(cat "$log")"
  echo "   $what: exit $rc after ${took}s: $(grep -m1 'error:' "$log" | cut -c1-240)"
}

step "host 1's link cut mid-run: every rank exits within the timeout ($TIMEOUT s), naming the lost host"
PORT=$((PORT + 1))
host "$N0" 0 "$W/cut0.log" "${LONG[@]}"
p0=$!
host "$N1" 1 "$W/cut1.log" "${LONG[@]}"
p1=$!
started "$W/cut0.log"
CUT=$SECONDS
ip -n "$N1" link set "$V1" down
lost_within $((TIMEOUT + 10)) $p1 "$W/cut1.log" "host 1" "lost node 0 (10.231.7.1: ranks 0, 1)"
lost_within $((TIMEOUT + 10)) $p0 "$W/cut0.log" "host 0" "node 1 (10.231.7.2: ranks 2, 3)"
for r in 0 1; do grep -q "^\[rank $r\] pprun: rank $r: error: .*node 1" "$W/cut0.log" || fail "rank $r: $(cat "$W/cut0.log")"; done
for r in 2 3; do grep -q "^\[rank $r\] pprun: rank $r: error: .*node 0" "$W/cut1.log" || fail "rank $r: $(cat "$W/cut1.log")"; done
ip -n "$N1" link set "$V1" up

step "host 1's ranks killed: host 0's ranks exit at once, naming them"
PORT=$((PORT + 1))
host "$N0" 0 "$W/kill0.log" "${LONG[@]}"
p0=$!
host "$N1" 1 "$W/kill1.log" "${LONG[@]}"
p1=$!
started "$W/kill0.log"
ranks=$(pgrep -P "$p1")
[ -n "$ranks" ] || fail "no ranks under host 1's launcher"
CUT=$SECONDS
# shellcheck disable=SC2086
kill -9 $ranks
wait $p1 || true
lost_within $TIMEOUT $p0 "$W/kill0.log" "host 0" "rank [23] (node 1, 10.231.7.2)"
for r in 0 1; do grep -q "^\[rank $r\] pprun: rank $r: error: .*node 1" "$W/kill0.log" || fail "rank $r: $(cat "$W/kill0.log")"; done

step "a rank that cannot reach the store (no host 0): one line naming address:port, within the timeout"
PORT=$((PORT + 1))
CUT=$SECONDS
host "$N1" 1 "$W/alone1.log" "${LONG[@]}"
lost_within $((TIMEOUT + 5)) $! "$W/alone1.log" "host 1 alone" "cannot reach the rendezvous store at $A0:$PORT from rank [23] (node 1)"
for r in 2 3; do
  [ "$(own_lines "$W/alone1.log" $r | wc -l)" -eq 1 ] || fail "rank $r: expected one line: $(cat "$W/alone1.log")"
done

# bad_pair WHAT PATTERN HOST1_ARGS...: host 0 runs 2 ranks of the 4-stage run,
# host 1 what HOST1_ARGS say (its launcher's options); every rank of both
# exits 2 with one line matching PATTERN, within the timeout.
bad_pair() {
  local what=$1 pattern=$2
  shift 2
  PORT=$((PORT + 1))
  local start=$SECONDS
  host "$N0" 0 "$W/bad0.log" --manifest "$W/four" --inputs "$W/batches" --chunks 4 --steps 2 --train --loss mse
  local q0=$!
  ip netns exec "$N1" "$PPRUN" --inputs "$W/batches" --chunks 4 --steps 2 --train --loss mse --master-addr "$A0" \
    --master-port "$PORT" --threads 1 --timeout "$TIMEOUT" "$@" >"$W/bad1.log" 2>&1 &
  local q1=$!
  wait_rc $q1
  local rc1=$RC
  wait_rc $q0
  local rc0=$RC
  [ "$rc0" -eq 2 ] && [ "$rc1" -eq 2 ] || fail "$what: exit $rc0 / $rc1, expected 2: $(cat "$W/bad0.log" "$W/bad1.log")"
  [ $((SECONDS - start)) -le $((TIMEOUT + 15)) ] || fail "$what: took $((SECONDS - start))s"
  local log ranks r
  for log in "$W/bad0.log" "$W/bad1.log"; do
    ranks=$(grep -o '^\[rank [0-9]*\]' "$log" | sort -u | tr -dc '0-9\n')
    [ -n "$ranks" ] || ranks=none
    for r in $ranks; do
      [ "$r" != none ] || break
      [ "$(own_lines "$log" $r | wc -l)" -eq 1 ] || fail "$what: rank $r: expected one line: $(cat "$log")"
      grep -q "^\[rank $r\] pprun: error: .*$pattern" "$log" || fail "$what: rank $r: lacks '$pattern': $(cat "$log")"
    done
  done
  for r in 0 1; do grep -q "^\[rank $r\] pprun: error:" "$W/bad0.log" || fail "$what: rank $r: $(cat "$W/bad0.log")"; done
  echo "   $what: every rank exits 2 within $((SECONDS - start))s: $(grep -m1 'error:' "$W/bad0.log" | cut -c1-200)"
}

step "bad input across hosts: exit 2, one line, every rank down"
bad_pair "host 1 with another --nproc (world size 2, not 4)" \
  "the ranks disagree on the world size: 2 on rank 1 (node 1, $A1), 4 on rank 0 (node 0, $A0)" \
  --manifest "$W/four" --nproc 1 --nnodes 2 --node-rank 1
bad_pair "host 1 with another --nnodes (the same world size)" "the ranks disagree on the number of nodes: 4 on rank 2" \
  --manifest "$W/four" --nproc 1 --nnodes 4 --node-rank 2
bad_pair "both hosts --node-rank 0" "rank [01] was started twice: on node 0 (10.231.7.[12]) and on node 0" \
  --manifest "$W/four" --nproc 2 --nnodes 2 --node-rank 0
bad_pair "host 1 with another manifest" "rank 2 was started differently from rank 0: another manifest.json" \
  --manifest "$W/other" --nproc 2 --nnodes 2 --node-rank 1

step "a rank missing from host 1 (torchrun's environment, LOCAL_WORLD_SIZE 2, only rank 2 started)"
PORT=$((PORT + 1))
start=$SECONDS
host "$N0" 0 "$W/miss0.log" --manifest "$W/four" --inputs "$W/batches" --chunks 4 --steps 2 --train
p0=$!
ip netns exec "$N1" env RANK=2 WORLD_SIZE=4 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 GROUP_RANK=1 GROUP_WORLD_SIZE=2 \
  MASTER_ADDR=$A0 MASTER_PORT=$PORT "$PPRUN" --manifest "$W/four" --inputs "$W/batches" --chunks 4 --steps 2 \
  --train --threads 1 --timeout $TIMEOUT >"$W/miss1.log" 2>&1 &
p1=$!
wait_rc $p1
[ $RC -eq 2 ] || fail "rank 2: $(cat "$W/miss1.log")"
wait_rc $p0
[ $RC -eq 2 ] || fail "host 0: $(cat "$W/miss0.log")"
want="rank 3 is missing from node 1 ($A1): it started 1 of its 2 ranks"
[ "$(grep -v '^\[W[0-9]* [0-9:.]* socket\.cpp:[0-9]*\] \[c10d\] ' "$W/miss1.log")" = \
  "pprun: error: $want (LOCAL_WORLD_SIZE); waited $TIMEOUT s at $A0:$PORT" ] || fail "rank 2: $(cat "$W/miss1.log")"
for r in 0 1; do grep -qF "[rank $r] pprun: error: $want" "$W/miss0.log" || fail "rank $r: $(cat "$W/miss0.log")"; done
echo "   every rank exits 2 after $((SECONDS - start))s: $(grep error: "$W/miss1.log")"

step "launcher options checked before anything starts"
check_bad() {  # check_bad EXPECTED ARGS...
  local want=$1 rc=0
  shift
  "$PPRUN" --manifest "$W/four" --inputs "$W/batches" "$@" >"$W/opt.out" 2>"$W/opt.err" || rc=$?
  [ $rc -eq 2 ] || fail "pprun $*: exit $rc, expected 2: $(cat "$W/opt.err")"
  [ "$(wc -l <"$W/opt.err")" -eq 1 ] || fail "pprun $*: expected one line: $(cat "$W/opt.err")"
  grep -qF -- "$want" "$W/opt.err" || fail "pprun $*: lacks '$want': $(cat "$W/opt.err")"
  echo "   $(cat "$W/opt.err")"
}
check_bad "--node-rank 2 is outside 0..1 (--nnodes 2)" --nproc 2 --nnodes 2 --node-rank 2 --master-addr $A0 \
  --master-port 29999
check_bad "--nnodes 2 needs --master-port" --nproc 2 --nnodes 2 --node-rank 1 --master-addr $A0
check_bad "--nnodes 2 needs --master-addr" --nproc 2 --nnodes 2 --node-rank 1 --master-port 29999
check_bad "--nnodes goes with --nproc" --nnodes 2 --node-rank 1
check_bad "--world-size 2 differs from --nproc 2 x --nnodes 2" --nproc 2 --nnodes 2 --world-size 2 \
  --master-addr $A0 --master-port 29999
export GROUP_RANK=2 GROUP_WORLD_SIZE=2 RANK=0 WORLD_SIZE=4
check_bad "GROUP_RANK 2 (the node rank) is outside 0..1"
unset GROUP_RANK GROUP_WORLD_SIZE RANK WORLD_SIZE

step "all cross-host checks passed in ${SECONDS}s"
