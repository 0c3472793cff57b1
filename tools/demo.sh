#!/usr/bin/env bash
# The main job: set up, build, split the mlp sample into 3 stages, and show
# what was made (the stage graph as text, and as Graphviz when dot exists).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
mkdir -p out
out=out/mlp
echo
echo "\$ ppc split samples/mlp/mlp.onnx --splits samples/mlp/spec.json -o $out"
build/ppc split samples/mlp/mlp.onnx --splits samples/mlp/spec.json -o "$out"
echo
echo "\$ ls -l $out"
ls -l "$out"
echo
echo "\$ ppc inspect $out"
build/ppc inspect "$out"
if command -v dot >/dev/null; then
  build/ppc inspect "$out" --dot | dot -Tsvg -o "$out/stages.svg"
  echo "stage graph drawn to $out/stages.svg"
fi
echo
echo "\$ ppc split samples/tinygpt/tinygpt.onnx --splits samples/tinygpt/spec.json -o out/tinygpt"
build/ppc split samples/tinygpt/tinygpt.onnx --splits samples/tinygpt/spec.json -o out/tinygpt
