#!/usr/bin/env bash
# The whole test suite from a clean clone: set up, build, run every test.
#   bash tools/test.sh            # build/ (Debian's LibTorch 1.13; references by Debian's torch 1.13),
#                                 # then the libFuzzer targets in build-fuzz/ (tools/fuzz.sh), 15 s each
#   bash tools/test.sh --torch2   # build-torch2/ (PyTorch 2.x's LibTorch; references by .venv's torch 2.x,
#                                 # plus the dynamo ONNX exporter's end-to-end tests)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh "$@"
build=build
[[ " $* " == *" --torch2 "* ]] && build=build-torch2
cd "$build"
ctest --output-on-failure -j"$(nproc)"
cd ..
if [[ $build == build ]]; then
  # libFuzzer campaigns (clang, ASan+UBSan; build-fuzz/ builds only the fuzz
  # targets): every committed input replayed, then each target for
  # PPC_FUZZ_SECONDS (15 by default: the stage stays near 5 minutes on 2
  # cores, build included), from the committed seeds, with a fixed random
  # seed (PPC_FUZZ_SEED, 1 by default): longer campaigns with fresh seeds are
  # run apart from CI (docs/testing.md), and what they find is fixed and
  # committed as a regression input. The two LibTorch targets stop at 1000
  # inputs (their readers are slow; LibTorch 1.13's own crashes are skipped
  # by the torchscript target, docs/testing.md).
  bash tools/fuzz.sh build
  bash tools/fuzz.sh replay
  PPC_FUZZ_SEED=${PPC_FUZZ_SEED:-1} PPC_FUZZ_TORCH_RUNS=${PPC_FUZZ_TORCH_RUNS:-1000} \
    bash tools/fuzz.sh run "${PPC_FUZZ_SECONDS:-15}"
fi
