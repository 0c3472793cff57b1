#!/usr/bin/env bash
# Gloo transport across 3 local processes: ring send/recv, all_reduce_sum over
# ranks {0,2}, and a rank that dies mid-run (the others must exit non-zero
# within a few seconds, naming rank 1), and a rank that stalls (the others must
# fail after the 5 s timeout, naming rank 1), and a cascade (rank 2 learns of
# rank 1's death only through rank 0's exit, yet names rank 1). Usage: test_transport.sh TRANSPORT_PROBE
set -u
probe="$1"
world=3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

free_port() {
  "${PPC_PYTHON:-/usr/bin/python3}" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_world MODE [KILL]: starts the ranks, waits (each bounded by `timeout`),
# leaves exit codes in $tmp/MODE.R.rc and output in $tmp/MODE.R.log. Rank KILL
# (if given) is waited for last and killed once the others are done.
run_world() {
  local mode="$1" kill_rank="${2:--1}" port pids=()
  port="$(free_port)"
  for ((r = 0; r < world; r++)); do
    timeout -k 2 30 "$probe" --rank "$r" --world-size "$world" --port "$port" --mode "$mode" \
      --timeout-ms 5000 >"$tmp/$mode.$r.log" 2>&1 &
    pids+=($!)
  done
  for ((r = 0; r < world; r++)); do
    [ "$r" = "$kill_rank" ] && continue
    wait "${pids[$r]}"
    echo $? >"$tmp/$mode.$r.rc"
  done
  if [ "$kill_rank" -ge 0 ]; then
    kill "${pids[$kill_rank]}" 2>/dev/null
    wait "${pids[$kill_rank]}"
    echo $? >"$tmp/$mode.$kill_rank.rc"
  fi
}

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
show() { for ((r = 0; r < world; r++)); do sed "s/^/  [$1 rank $r] /" "$tmp/$1.$r.log"; done; }

for mode in ring allreduce; do
  start=$SECONDS
  run_world "$mode"
  for ((r = 0; r < world; r++)); do
    rc="$(cat "$tmp/$mode.$r.rc")"
    [ "$rc" = 0 ] || fail "$mode: rank $r exited $rc"
    grep -q "rank $r: $mode ok" "$tmp/$mode.$r.log" || fail "$mode: rank $r did not report ok"
  done
  show "$mode"
  echo "$mode: $((SECONDS - start)) s"
done

check_peer_failure() {  # MODE MESSAGE MAX_SECONDS ELAPSED
  local mode="$1" message="$2" max="$3" elapsed="$4" r rc
  for r in 0 2; do
    rc="$(cat "$tmp/$mode.$r.rc")"
    [ "$rc" = 1 ] || fail "$mode: rank $r exited $rc, expected 1 (124 = hung until killed)"
    grep -q "peer error (rank 1)" "$tmp/$mode.$r.log" || fail "$mode: rank $r's error does not name rank 1"
    grep -q "$message" "$tmp/$mode.$r.log" || fail "$mode: rank $r's message is not '$message'"
  done
  if [ "$(echo "$elapsed > $max" | bc)" = 1 ]; then fail "$mode: took ${elapsed} s (limit $max)"; fi
}

# Rank 1 exits at step 3: a dead peer is noticed at once.
start=$(date +%s.%N)
run_world die
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
show die
echo "die: ${elapsed} s"
[ "$(cat "$tmp/die.1.rc")" = 3 ] || fail "die: rank 1 exited $(cat "$tmp/die.1.rc"), expected 3"
check_peer_failure die "connection to rank 1 closed" 10 "$elapsed"

# Rank 1 stops answering at step 3 (alive, sleeping): the others fail after 5 s.
start=$(date +%s.%N)
run_world stall 1
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
show stall
echo "stall: ${elapsed} s"
check_peer_failure stall "rank 1 did not answer within 5 s" 15 "$elapsed"

# Rank 1 dies while rank 2 waits on rank 0 only: rank 0 notices first and
# exits; rank 2 must still name rank 1 (the first failure, via the store).
start=$(date +%s.%N)
run_world cascade
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
show cascade
echo "cascade: ${elapsed} s"
check_peer_failure cascade "connection to rank 1 closed" 10 "$elapsed"
grep -q "noticed first by rank 0" "$tmp/cascade.2.log" || fail "cascade: rank 2 does not relay rank 0's report"

# Rank 2 dies between two all_reduce_sum calls over {0,2}: rank 0 (in the
# sub-group all-reduce) and rank 1 (in the world all-reduce) both name rank 2.
start=$(date +%s.%N)
run_world allreduce-die
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
show allreduce-die
echo "allreduce-die: ${elapsed} s"
for r in 0 1; do
  rc="$(cat "$tmp/allreduce-die.$r.rc")"
  [ "$rc" = 1 ] || fail "allreduce-die: rank $r exited $rc, expected 1"
  grep -q "peer error (rank 2): connection to rank 2 closed" "$tmp/allreduce-die.$r.log" ||
    fail "allreduce-die: rank $r does not name rank 2"
done
if [ "$(echo "$elapsed > 10" | bc)" = 1 ]; then fail "allreduce-die: took ${elapsed} s"; fi

if [ "$failures" -ne 0 ]; then
  echo "test_transport: $failures failure(s)"
  exit 1
fi
echo "test_transport: ok"
