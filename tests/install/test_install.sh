#!/usr/bin/env bash
# `cmake --install` of a build, then a program built against the installed
# package (find_package(ppc), tests/install/) that runs the runtime; and the
# installed ppc, with its TorchScript plugin from lib/ppc/, splitting a .pt.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
for f in bin/ppc bin/pprun lib/ppc/libppc_torchscript.so lib/cmake/ppc/ppcConfig.cmake lib/libppc_pprun.a \
         include/ppc/runtime/app/pprun.h include/ppc/schemas/manifest_dir.h share/ppc/manifest.schema.json; do
  [[ -e "$prefix/$f" ]] || { echo "FAIL: $f not installed"; exit 1; }
done
# The installed ppc finds its plugin under lib/ppc/ (no PPC_TORCHSCRIPT_PLUGIN).
env -u PPC_TORCHSCRIPT_PLUGIN "$prefix/bin/ppc" split "$src/samples/mlp/mlp_traced.pt" \
  --splits "$src/samples/mlp/spec.json" -o "$work/split" >"$work/split.log"
[[ -f "$work/split/stage2.pt" ]] || { echo "FAIL: the installed ppc did not split the TorchScript sample"; exit 1; }
cmake -S "$src/tests/install" -B "$work/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
"$work/consumer/consumer" "$work/split" >"$work/out.txt"
# 3 stages, 3 ranks, 2 micro-batches of 1F1B: rank 0 starts with the
# forward of micro-batch 0 and ends with the backward of micro-batch 1.
grep -qx "stages 3" "$work/out.txt" || { echo "FAIL: stage count"; cat "$work/out.txt"; exit 1; }
grep -q "^rank 0: 0F0 .*0B1" "$work/out.txt" || { echo "FAIL: rank 0's schedule"; cat "$work/out.txt"; exit 1; }
grep -q "^rank 2: " "$work/out.txt" || { echo "FAIL: no rank 2"; cat "$work/out.txt"; exit 1; }
# A tampered artifact is refused by the embedded runtime as by pprun.
printf 'x' >>"$work/split/stage1.pt"
if "$work/consumer/consumer" "$work/split" >"$work/out2.txt" 2>"$work/err2.txt"; then
  echo "FAIL: tampered artifact accepted"; exit 1
fi
grep -q "^consumer: error: .*stage1.pt: sha256 does not match" "$work/err2.txt" || { cat "$work/err2.txt"; exit 1; }
echo "install: ok"
