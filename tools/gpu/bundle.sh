#!/bin/bash
# Prepares the GPU check for a machine that holds PyTorch 2.11 with CUDA (its
# LibTorch) but neither this project's build dependencies nor a network:
# gpu-bundle/ (git-ignored) gets pprun and ppc from the LibTorch 2.x build
# (stripped) and the libraries they need besides LibTorch and the C library
# (about 12 MB). Then, on the GPU machine, from the project root:
# python3 tools/gpu/check.py (it splits the samples and exports the benchmark
# model there, with that machine's PyTorch).
#
#   bash tools/gpu/bundle.sh [BUILD_DIR]     # default build-torch2
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-torch2}
for f in "$B/pprun" "$B/ppc" "$B/libppc_torchscript.so"; do
  [ -e "$f" ] || { echo "bundle.sh: $f is missing (bash tools/setup.sh --torch2, then build $B)" >&2; exit 2; }
done
OUT=gpu-bundle
rm -rf "$OUT" "$OUT.tmp"
mkdir -p "$OUT.tmp/bin" "$OUT.tmp/lib"
strip -o "$OUT.tmp/bin/pprun" "$B/pprun"
strip -o "$OUT.tmp/bin/ppc" "$B/ppc"
strip -o "$OUT.tmp/bin/libppc_torchscript.so" "$B/libppc_torchscript.so"  # ppc reads .pt models with it
# Libraries outside LibTorch and glibc (protobuf for ONNX stages, the C++ runtime it was built with).
ldd "$B/pprun" "$B/ppc" "$B/libppc_torchscript.so" | sort -u | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|libutil.so*|ld-linux*) continue ;;
  esac
  case "$lib" in */site-packages/*) continue ;; esac
  [ -e "$OUT.tmp/lib/$(basename "$lib")" ] || cp -L "$lib" "$OUT.tmp/lib/"
done
mv "$OUT.tmp" "$OUT"
du -sh "$OUT"
echo "carry $OUT to the GPU machine and run there: python3 tools/gpu/check.py"
