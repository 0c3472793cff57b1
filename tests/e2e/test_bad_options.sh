#!/bin/bash
# Every command-line option of ppc and pprun, given a bad value (or a bad
# combination, for flags): exit code 2, one line on stderr that names the
# option or the file, never "internal error", and nothing written. The
# table must cover every option that --help lists: a new option without a
# row fails this test.
#
# Usage: tests/e2e/test_bad_options.sh BUILD_DIR|PPC_BINARY OUT_TMP
set -euo pipefail

# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
W=$OUT_TMP/bad_options
rm -rf "$W"
mkdir -p "$W"
"$PPC" split "$ROOT/samples/mlp/mlp.onnx" --stages 2 -o "$W/m" >/dev/null 2>&1 || fail "ppc split of the mlp sample"
"$PY" "$E2E/make_batches.py" mlp "$W/b" --batches 1 --batch-size 4 --seed 1 >/dev/null
mkdir -p "$W/not_a_checkpoint"
touch "$W/not_a_checkpoint/x"
printf 'not json' >"$W/bad.json"
MODEL=$ROOT/samples/mlp/mlp.onnx
# A pprun command that works, to which each row adds its bad option.
RUN=(--manifest "$W/m" --nproc 2 --inputs "$W/b" --steps 1 --quiet)

covered=()
pass=0
# row BIN OPTION FRAGMENT ARGS...: BIN is ppc or pprun; OPTION the option the
# row covers; FRAGMENT a piece of the expected error line.
row() {
  local bin=$1 opt=$2 want=$3
  shift 3
  covered+=("$bin $opt")
  local exe=$PPC
  [ "$bin" = pprun ] && exe=$PPRUN
  local rc=0
  (cd "$W" && timeout 120 "$exe" "$@") >"$W/stdout" 2>"$W/stderr" || rc=$?
  local lines
  lines=$(wc -l <"$W/stderr")
  if [ $rc != 2 ] || [ "$lines" != 1 ] || ! grep -qF -- "$want" "$W/stderr" || grep -q "internal error" "$W/stderr"; then
    echo "FAIL: $bin $opt ($*): exit $rc, $lines stderr lines, expected exit 2 and one line with: $want" >&2
    cat "$W/stderr" >&2
    exit 1
  fi
  for f in out.pt trace.json timeline.svg profile.json ck o; do
    [ -e "$W/$f" ] && fail "$bin $opt: left $f behind"
  done
  pass=$((pass + 1))
}

# --- ppc split / ppc inspect ---
row ppc split "model file" split "$W/nope.onnx" --stages 2 -o "$W/o"
row ppc --splits "bad.json" split "$MODEL" --splits "$W/bad.json" -o "$W/o"
row ppc --stages "--stages" split "$MODEL" --stages 0 -o "$W/o"
row ppc -o "give an output directory" split "$MODEL" --stages 2 -o ""
row ppc --balance "--balance" split "$MODEL" --stages 2 --balance nope -o "$W/o"
row ppc --costs "cannot open the costs file" split "$MODEL" --stages 2 --balance time --costs "$W/nope.json" -o "$W/o"
row ppc --dim "--dim seq=12abc" split "$MODEL" --stages 2 --dim seq=12abc -o "$W/o"
row ppc --emit "--emit" split "$MODEL" --stages 2 --emit nope
row ppc inspect "no such manifest" inspect "$W/nope"
row ppc --dot "no such manifest" inspect "$W/nope" --dot

# --- pprun ---
row pprun --manifest "no such manifest" --manifest "$W/nope" --nproc 2 --inputs "$W/b"
row pprun --rank "--rank" "${RUN[@]}" --rank -1
row pprun --world-size "--world-size 0 differs from --nproc 2" "${RUN[@]}" --world-size 0
row pprun --master-addr "--master-addr 'nosuchhost.invalid' is unusable" "${RUN[@]}" --master-addr nosuchhost.invalid
row pprun --master-port "master port 70000 is outside 1..65535" "${RUN[@]}" --master-port 70000
row pprun --nproc "--nproc" --manifest "$W/m" --nproc 0 --inputs "$W/b"
row pprun --nnodes "--nnodes: Value 0 not in range" "${RUN[@]}" --nnodes 0
row pprun --node-rank "--node-rank 2 is outside 0..1 (--nnodes 2)" "${RUN[@]}" --nnodes 2 --node-rank 2 \
  --master-addr 127.0.0.1 --master-port 29999
row pprun --backend "--backend" "${RUN[@]}" --backend mpi
row pprun --device "--device 'gpu': expected cpu, cuda or cuda:N" "${RUN[@]}" --device gpu
row pprun --timeout "--timeout: must be > 0, not 0" "${RUN[@]}" --timeout 0
row pprun --threads "--threads" "${RUN[@]}" --threads 0
row pprun --blas "--blas: mkl not in {auto,torch,openblas}" "${RUN[@]}" --blas mkl
row pprun --print-schedule "--schedule" "${RUN[@]}" --print-schedule --schedule nope
row pprun --format "--format" "${RUN[@]}" --print-schedule --format xml
row pprun --simulate "cannot open the costs file" "${RUN[@]}" --simulate --costs "$W/nope.json"
# A folder where a file is read (it was "internal error: basic_filebuf::underflow").
row pprun --costs "not_a_checkpoint: cannot open the costs file: Is a directory" "${RUN[@]}" --simulate --costs "$W/not_a_checkpoint"
row pprun --costs "bad.json" "${RUN[@]}" --simulate --costs "$W/bad.json"
row pprun --schedule-file "cannot open the schedule file" "${RUN[@]}" --schedule-file "$W/nope.csv"
row pprun --trace "--trace $W/nope/trace.json: no folder" "${RUN[@]}" --trace "$W/nope/trace.json"
row pprun --trace-memory "--trace-memory needs --trace FILE" "${RUN[@]}" --trace-memory
row pprun --timeline "--timeline $W/nope/timeline.svg: no folder" "${RUN[@]}" --timeline "$W/nope/timeline.svg"
row pprun --comm "--comm: must be >= 0, not -1" "${RUN[@]}" --simulate --comm -1
row pprun --profile "--profile $W/nope/profile.json: no folder" "${RUN[@]}" --profile "$W/nope/profile.json"
row pprun --schedule "--schedule" "${RUN[@]}" --schedule nope
row pprun --chunks "--chunks" "${RUN[@]}" --chunks 0
row pprun --steps "--steps" "${RUN[@]}" --steps 0
row pprun --inputs "nope.pt" --manifest "$W/m" --nproc 2 --inputs "$W/nope.pt"
# A folder named like a batch file is no batch (it was read as one: "internal error: std::bad_alloc").
mkdir -p "$W/only_folders/batch.pt"
row pprun --inputs "only_folders: the directory holds no .pt files" --manifest "$W/m" --nproc 2 --inputs "$W/only_folders"
row pprun --synthetic "give either --inputs or --synthetic, not both" "${RUN[@]}" --synthetic
row pprun --batch-size "--batch-size" --manifest "$W/m" --nproc 2 --synthetic --batch-size 0
row pprun --seed "--seed: must be >= 0, not -5" --manifest "$W/m" --nproc 2 --synthetic --batch-size 4 --seed -5
row pprun --dim "--dim 'q=3x': expected NAME=N" --manifest "$W/m" --nproc 2 --synthetic --batch-size 4 --dim q=3x
row pprun --train "--output is for inference" "${RUN[@]}" --train --output "$W/out.pt"
row pprun --loss "--loss" "${RUN[@]}" --train --loss hinge
row pprun --target-key "no target 'nope' for the loss" "${RUN[@]}" --train --target-key nope
row pprun --optimizer "--optimizer" "${RUN[@]}" --train --optimizer lbfgs
row pprun --lr "--lr: must be >= 0, not -1" "${RUN[@]}" --train --lr -1
row pprun --momentum "--momentum: must be >= 0, not -0.5" "${RUN[@]}" --train --momentum -0.5
row pprun --weight-decay "--weight-decay: must be >= 0, not -1" "${RUN[@]}" --train --weight-decay -1
row pprun --beta1 "--beta1: must be in [0, 1), not 1" "${RUN[@]}" --train --optimizer adam --beta1 1
row pprun --beta2 "--beta2: must be in [0, 1), not -0.1" "${RUN[@]}" --train --optimizer adam --beta2 -0.1
row pprun --eps "--eps: must be >= 0, not -1" "${RUN[@]}" --train --optimizer adam --eps -1
row pprun --output "--output $W/nope/out.pt: no folder" "${RUN[@]}" --output "$W/nope/out.pt"
row pprun --dp "--dp 3 does not divide the 2 ranks" "${RUN[@]}" --dp 3
row pprun --dp-layout "--dp-layout" "${RUN[@]}" --dp 2 --dp-layout diagonal
row pprun --dp-bucket-mb "--dp-bucket-mb: must be > 0, not 0" "${RUN[@]}" --dp-bucket-mb 0
row pprun --save "exists and is not a pprun checkpoint" "${RUN[@]}" --train --save "$W/not_a_checkpoint"
row pprun --save-every "--save-every needs --save DIR" "${RUN[@]}" --train --save-every 2
row pprun --keep "--keep" "${RUN[@]}" --train --save "$W/ck" --keep 0
row pprun --resume "carries its own manifest" "${RUN[@]}" --train --resume "$W/nope"

# Every option --help lists has a row (-h/--help aside, and --quiet: a flag
# that no value or combination makes wrong).
missing=()
for bin in ppc pprun; do
  exe=$PPC
  helps=("$PPC split --help" "$PPC inspect --help")
  [ $bin = pprun ] && helps=("$PPRUN --help")
  for h in "${helps[@]}"; do
    for opt in $($h | grep -oE '^ +(-[a-z],)?--[a-z0-9-]+' | sed -E 's/^ +(-[a-z],)?//' | sort -u); do
      [ "$opt" = --help ] || [ "$opt" = --quiet ] && continue
      [ "$opt" = --out ] && opt=-o
      found=0
      for c in "${covered[@]}"; do [ "$c" = "$bin $opt" ] && found=1; done
      [ $found = 1 ] || missing+=("$bin $opt")
    done
  done
done
[ ${#missing[@]} = 0 ] || fail "options with no bad-value row: ${missing[*]}"
echo "test_bad_options: OK: $pass rows, every option of ppc split, ppc inspect and pprun covered"
