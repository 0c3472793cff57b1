#!/usr/bin/env bash
# Installs what ppc/pprun need on Debian 12 (as root), builds ONNX, then
# configures and builds. Idempotent: skips what is already there.
#
#   bash tools/setup.sh            # build/        against Debian's LibTorch 1.13
#   bash tools/setup.sh --torch2   # build-torch2/ against the LibTorch of PyTorch 2.x from
#                                  # .venv/ (tools/requirements-torch2.txt, and the benchmarks'
#                                  # peers of tools/requirements-bench.txt), which it creates
#
# Both builds link the ONNX that tools/build_onnx.sh builds (cached in
# ${PPC_CACHE:-~/.cache/ppc}). .venv/ is a link to a virtual environment in that
# cache, keyed by the requirements file: the PyTorch wheel (several GB with its
# CUDA libraries) is installed once per machine, not once per checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
torch2=0
for arg in "$@"; do
  case $arg in
    --torch2) torch2=1 ;;
    *) echo "setup.sh: unknown option '$arg' (known: --torch2)" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libgtest-dev
  libtorch-dev libgloo-dev libopenblas0-pthread libmimalloc-dev
  python3-torch python3-onnx python3-torchvision python3-jsonschema python3-venv
  graphviz clang-format
  clang-14 libclang-rt-14-dev  # tools/fuzz.sh: libFuzzer, AddressSanitizer, UBSan
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

# LibTorch on the reference BLAS is ~30x slower; make sure OpenBLAS is the
# active BLAS/LAPACK alternative.
for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
  target=$(update-alternatives --list "$alt" 2>/dev/null | grep openblas-pthread | head -1 || true)
  [[ -n "$target" ]] && update-alternatives --set "$alt" "$target" >/dev/null
done

onnx_prefix=$(bash tools/build_onnx.sh | tail -1)

if ((torch2 == 0)); then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNX_DIR="$onnx_prefix/lib/cmake/ONNX" >/dev/null
  cmake --build build -j"$(nproc)"
  exit 0
fi

# --- the PyTorch 2.x toolchain in .venv/ ------------------------------------
cache=${PPC_CACHE:-$HOME/.cache/ppc}
req=tools/requirements-torch2.txt
venv=$cache/venv-torch2-$(sha256sum "$req" | cut -c1-12)
if [[ ! -f $venv/.complete ]]; then
  echo "setup: creating $venv from $req"
  rm -rf "$venv"
  # Any CPython 3.10-3.13 will do; Debian's /usr/bin/python3 (3.11) is the fallback.
  py=python3
  "$py" -c 'import sys, venv; assert (3, 10) <= sys.version_info[:2] <= (3, 13)' 2>/dev/null || py=/usr/bin/python3
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$req"
  touch "$venv/.complete"
fi
if [[ -L .venv || ! -e .venv ]]; then
  ln -sfn "$venv" .venv
elif ! cmp -s <(sha256sum <"$req") "$(pwd)/.venv/.ppc-requirements" 2>/dev/null; then
  # A real .venv/ of the user's own: bring it to the pins.
  .venv/bin/python -m pip install --quiet -r "$req"
  sha256sum <"$req" >.venv/.ppc-requirements
fi
# The benchmarks' peers (DeepSpeed), without their dependencies' pins.
bench_req=tools/requirements-bench.txt
if ! cmp -s <(sha256sum <"$bench_req") "$(pwd)/.venv/.ppc-bench-requirements" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --no-deps -r "$bench_req"
  sha256sum <"$bench_req" >.venv/.ppc-bench-requirements
fi
torch_dir=$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
cmake -S . -B build-torch2 -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNX_DIR="$onnx_prefix/lib/cmake/ONNX" \
  -DPPC_TORCH_WHEEL="$torch_dir" -DPPC_PYTHON="$(pwd)/.venv/bin/python" >/dev/null
cmake --build build-torch2 -j"$(nproc)"
