#!/usr/bin/env bash
# The whole test suite from a clean clone: set up, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)"
