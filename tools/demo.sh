#!/usr/bin/env bash
# The main job: set up and build; split the mlp sample (TorchScript) into 3
# stages and show the split; train it with pprun on 3 local ranks (Gloo over
# 127.0.0.1, 1F1B, 4 micro-batches) on a learnable synthetic task; then run the
# trained pipeline on a fresh batch and compare with PyTorch running the
# unsplit model with the trained parameters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
PY=/usr/bin/python3
rm -rf out/demo
mkdir -p out/demo
show() { echo; echo "\$ $*"; "$@"; }

show build/ppc split samples/mlp/mlp_traced.pt --splits samples/mlp/spec_typed.json -o out/demo/mlp
show build/ppc inspect out/demo/mlp
if command -v dot >/dev/null; then
  build/ppc inspect out/demo/mlp --dot | dot -Tsvg -o out/demo/mlp/stages.svg
  echo "stage graph drawn to out/demo/mlp/stages.svg"
fi

show build/pprun --manifest out/demo/mlp --nproc 3 --schedule 1f1b --chunks 4 --train --synthetic --batch-size 64 \
  --steps 40 --loss mse --optimizer adam --lr 1e-3 --save out/demo/trained

echo
echo "# inference with the trained pipeline on a new batch, against PyTorch"
"$PY" -c 'import torch; torch.manual_seed(123); torch.save({"x": torch.randn(32, 512)}, "out/demo/batch.pt")'
show build/pprun --manifest out/demo/trained --nproc 3 --chunks 4 --inputs out/demo/batch.pt --output out/demo/pprun_out.pt
"$PY" - <<'EOF'
import torch
model = torch.jit.load("samples/mlp/mlp_traced.pt")
params = torch.load("out/demo/trained/params.pt")
with torch.no_grad():
    for name, p in model.named_parameters():
        p.copy_(params[name])
    ref = model(torch.load("out/demo/batch.pt")["x"])
got = torch.load("out/demo/pprun_out.pt")["output"]
diff = (got - ref).abs().max().item()
print(f"pprun (3 ranks) vs PyTorch (unsplit, trained parameters): max abs diff {diff:.3g} over {got.numel()} outputs")
assert diff <= 1e-5, "outputs differ"
EOF
