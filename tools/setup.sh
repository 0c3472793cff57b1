#!/usr/bin/env bash
# Installs what ppc/pprun need on Debian 12 (as root), builds ONNX
# (tools/build_onnx.sh, cached), then configures and builds into build/.
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libprotobuf-dev protobuf-compiler
  libcli11-dev nlohmann-json3-dev libgtest-dev
  libtorch-dev libgloo-dev libopenblas0-pthread
  python3-torch python3-onnx python3-torchvision python3-jsonschema
  graphviz
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

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DONNX_DIR="$onnx_prefix/lib/cmake/ONNX" >/dev/null
cmake --build build -j"$(nproc)"
