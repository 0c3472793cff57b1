#!/usr/bin/env bash
# libFuzzer campaigns (clang 14, AddressSanitizer + UBSan) over every reader of
# untrusted input, in their own build folder build-fuzz/ (-DPPC_FUZZ=ON, clang++).
#
#   bash tools/fuzz.sh build                 # configure build-fuzz/, build only the fuzz targets
#   bash tools/fuzz.sh run SECONDS [TARGET...]   # each target SECONDS long (all when none named)
#   bash tools/fuzz.sh replay [TARGET...]    # every committed corpus and regression input, once
#   bash tools/fuzz.sh list                  # the targets
#   bash tools/fuzz.sh soak [STEPS]          # e2e_pprun_soak (default 2000 steps) with pprun built in
#                                            # build-fuzz/ (ASan+UBSan) and build/'s ppc
#
# A run starts from the committed seeds (tests/fuzz/corpus/<target>/) and the
# regression inputs (tests/fuzz/regressions/<target>/), grows a scratch corpus
# in build-fuzz/corpus/<target>/ (never the committed one) and stops at the
# first finding: the crashing input is written to build-fuzz/findings/<target>/
# and the script exits 1. Each target's last libFuzzer line (executions, cov:,
# ft:) is printed. PPC_FUZZ_SEED=N fixes libFuzzer's seed (tools/test.sh
# uses 1: the short CI run then takes the same first steps on every machine,
# so what it finds, a local run finds too). The sanitizer options are the
# ones in tests/fuzz/sanitizers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$(realpath -m "${PPC_FUZZ_BUILD:-build-fuzz}")  # PPC_FUZZ_BUILD: another build folder
# Readers that LibTorch parses (torch.jit.load, torch.save's zip and pickle)
# come last: they are the slow ones.
TORCH_TARGETS=(torchscript pt_inputs)
TARGETS=(split_spec manifest profile schedule_csv ir_text onnx_model onnx_external pt2_archive "${TORCH_TARGETS[@]}")
. tests/fuzz/sanitizers.sh

configure() {
  local cxx=${PPC_FUZZ_CXX:-clang++-14}
  command -v "$cxx" >/dev/null || {
    echo "fuzz.sh: $cxx not found (apt-get install clang-14 libclang-rt-14-dev; tools/setup.sh does)" >&2
    exit 2
  }
  local onnx_prefix
  onnx_prefix=$(bash tools/build_onnx.sh | tail -1)
  # -O1 and line tables only: the build is part of CI's time.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -fno-omit-frame-pointer" -DPPC_FUZZ=ON \
    -DPPC_BUILD_BENCHMARKS=OFF -DONNX_DIR="$onnx_prefix/lib/cmake/ONNX" >/dev/null
}

build_targets() {
  configure
  local names=()
  for t in "${TARGETS[@]}"; do names+=("fuzz_$t"); done
  cmake --build "$build" -j"$(nproc)" --target "${names[@]}"
}

# The committed inputs of a target: seeds and regression inputs.
inputs_of() {
  local t=$1
  for d in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do
    [[ -d $d ]] && find "$d" -type f | sort
  done
  return 0
}

replay() {
  local t=$1 files
  mapfile -t files < <(inputs_of "$t")
  if ((${#files[@]} == 0)); then
    echo "fuzz.sh: $t has no committed inputs" >&2
    return 1
  fi
  local asan=$ASAN_OPTIONS
  [[ " ${TORCH_TARGETS[*]} " == *" $t "* ]] && asan=$asan:fast_unwind_on_malloc=0
  ASAN_OPTIONS=$asan "$build/tests/fuzz_$t" -runs=0 "${files[@]}" >"$build/fuzz_$t.replay.log" 2>&1 || {
    tail -40 "$build/fuzz_$t.replay.log" >&2
    echo "fuzz.sh: $t: a committed input fails (log: $build/fuzz_$t.replay.log)" >&2
    return 1
  }
  echo "$t: ${#files[@]} committed inputs replayed, clean"
}

campaign() {
  local t=$1 seconds=$2
  local corpus=$build/corpus/$t findings=$build/findings/$t log=$build/fuzz_$t.log
  mkdir -p "$corpus" "$findings"
  local seeds=()
  for d in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do [[ -d $d ]] && seeds+=("$d"); done
  # LibTorch is built without frame pointers: only the slow unwinder sees
  # the frames that tests/fuzz/lsan.supp names for its leaks.
  local asan=$ASAN_OPTIONS rss_mb=4096
  # LibTorch's unpickler allocates a string's declared length before it reads
  # it (a corrupt length of up to 4 GiB becomes a 4 GiB allocation, then
  # LibTorch's error): the LibTorch targets get room for that, so that the
  # limit flags memory that ppc's own code holds.
  local runs=()
  if [[ " ${TORCH_TARGETS[*]} " == *" $t "* ]]; then
    asan=$asan:fast_unwind_on_malloc=0
    rss_mb=10240
    # PPC_FUZZ_TORCH_RUNS=N: at most N inputs (tools/test.sh: 1000), whatever
    # the machine's speed (a slow one stops at the time limit). (LibTorch 1.13's importer
    # itself crashes on some damaged archives, out of ppc's reach: the
    # torchscript target tries it in a child first; docs/testing.md.)
    [[ -n ${PPC_FUZZ_TORCH_RUNS:-} ]] && runs=(-runs="$PPC_FUZZ_TORCH_RUNS")
  fi
  # One process, one job: the machine is shared; -timeout flags an input
  # that takes more than 10 s (a hang), -rss_limit_mb one that takes 4 GB.
  # PPC_FUZZ_SEED: libFuzzer's random seed (default: a new one each run).
  local seed=()
  [[ -n ${PPC_FUZZ_SEED:-} ]] && seed=(-seed="$PPC_FUZZ_SEED")
  if ! ASAN_OPTIONS=$asan "$build/tests/fuzz_$t" "$corpus" "${seeds[@]}" "${seed[@]}" "${runs[@]}" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=$rss_mb -max_len=1048576 -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1; then
    tail -60 "$log" >&2
    echo "fuzz.sh: $t found a crash, leak or UB (input in $findings/, log $log)" >&2
    return 1
  fi
  local last execs
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/ +/ /g')
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "$t: ${seconds}s, $execs executions, clean; last: $last"
}

# The soak test (tests/e2e/test_pprun_soak.sh) with this folder's pprun
# (ASan+UBSan) beside build/'s ppc: the run must end 0 with nothing reported,
# its memory flat once ASan's quarantine has filled (during warm-up).
soak() {
  local steps=${1:-2000}
  [[ -x build/ppc ]] || {
    echo "fuzz.sh: soak needs build/ppc (bash tools/setup.sh)" >&2
    exit 2
  }
  configure
  cmake --build "$build" -j"$(nproc)" --target pprun
  local bin=$build/soak_bin
  mkdir -p "$bin"
  ln -sfn "$root/build/ppc" "$bin/ppc"
  ln -sfn "$build/pprun" "$bin/pprun"
  # malloc_context_size=0: ASan keeps every distinct allocation and free
  # stack it records, and LibTorch's frames (no frame pointers) keep making
  # new ones - 40 MiB over 1,500 steps that the soak would read as growth
  # (with the default the run is as clean, but not flat). Reports then lack
  # the allocation's stack: rerun with ASAN_OPTIONS set to see it.
  ASAN_OPTIONS=$ASAN_OPTIONS:malloc_context_size=0 PPC_SOAK_STEPS=$steps \
    bash tests/e2e/test_pprun_soak.sh "$bin/ppc" "$build/soak"
  if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$build/soak/soak/run.log" >&2; then
    echo "fuzz.sh: the soak run reported the above" >&2
    exit 1
  fi
  echo "soak: $steps steps under ASan+UBSan, clean"
}

cmd=${1:-}
shift || true
case $cmd in
  build)
    build_targets
    ;;
  list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
  replay)
    [[ $# -gt 0 ]] && TARGETS=("$@")
    for t in "${TARGETS[@]}"; do replay "$t"; done
    ;;
  run)
    seconds=${1:?usage: fuzz.sh run SECONDS [TARGET...]}
    shift
    [[ $# -gt 0 ]] && TARGETS=("$@")
    status=0
    for t in "${TARGETS[@]}"; do campaign "$t" "$seconds" || status=1; done
    exit $status
    ;;
  soak)
    soak "$@"
    ;;
  *)
    echo "usage: fuzz.sh build | run SECONDS [TARGET...] | replay [TARGET...] | list | soak [STEPS]" >&2
    exit 2
    ;;
esac
