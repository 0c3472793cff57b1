#!/bin/bash
# End-to-end on torch.export programs (.pt2): MODEL (a sample: mlp, skip,
# tinygpt; or a transformer family: gpt2, bert, t5, llama) exported at test time
# by pt2_reference.py (torch.export.export(strict=False), batch dimension a
# torch.export.Dim, eval mode), split by ppc into 2 and 3 stages and run by
# pprun, whose stages call every node's operator through LibTorch's dispatcher,
# against eager PyTorch 2.x ($PPC_PYTHON) running the unsplit nn.Module:
#   - inference: the outputs of 3 batches of 12 (micro-batches of 3; the export
#     saw batch 2) equal the module's (<= 1e-5), GPipe on 2 stages, 1F1B on 3;
#   - training: 3 steps of SGD with momentum on 2 stages (GPipe) and of AdamW
#     on 3 stages (1F1B): every parameter and each step's loss equal PyTorch's;
#   - --resume after 2 steps + 1 step gives the parameters of 3 steps, bit for bit;
#   - --save: every saved stage opens with torch.export.load and holds the
#     trained values, and pprun running the saved pipeline gives the module's
#     outputs with the trained parameters.
#
# Usage: tests/e2e/test_pprun_pt2.sh BUILD_DIR|PPC_BINARY OUT_TMP MODEL
set -euo pipefail

MODEL_NAME=${3:?usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP MODEL}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$1" "$2"
SECONDS=0

case $MODEL_NAME in
  mlp | skip) LOSS=mse SPEC=$ROOT/samples/$MODEL_NAME/spec.json ;;
  tinygpt) LOSS=cross_entropy SPEC=$ROOT/samples/$MODEL_NAME/spec.json ;;
  gpt2 | bert | t5 | llama) LOSS=cross_entropy SPEC= ;;
  *) echo "unknown model $MODEL_NAME" >&2; exit 2 ;;
esac
W=$OUT_TMP/$MODEL_NAME
rm -rf "$W"
mkdir -p "$W"
CHUNKS=4
REF="$PY $E2E/pt2_reference.py"

step "$MODEL_NAME: torch.export with $("$PY" -c 'import torch; print("torch", torch.__version__)')"
$REF export "$MODEL_NAME" "$W/model" 2>"$W/export.log" || { cat "$W/export.log" >&2; fail "export"; }
PT2=$W/model/model.pt2

split() {  # OUT ARGS...
  local out=$1
  shift
  "$PPC" split "$PT2" "$@" -o "$out" >/dev/null 2>"$W/split.log" || { cat "$W/split.log" >&2; fail "ppc split $*"; }
}
step "$MODEL_NAME: split into 2 (auto) and 3 stages"
echo '{"version": 1, "auto": {"stages": 2}}' >"$W/auto.json"
split "$W/split2" --splits "$W/auto.json" --stages 2
if [ -n "$SPEC" ]; then
  split "$W/split3" --splits "$SPEC"
else
  split "$W/split3" --splits "$W/auto.json" --stages 3
fi
read -r OUTPUT_NAME INPUTS < <("$PY" - "$W/split3/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["source"]["format"] == "pt2", m["source"]
print(m["model_outputs"][0]["name"], ",".join(i["name"] for i in m["model_inputs"]))
EOF
)
echo "   output $OUTPUT_NAME, inputs $INPUTS"

step "$MODEL_NAME: batches and eager PyTorch references"
"$PY" - "$W/model" "$W/batches" "$LOSS" "$E2E" <<'EOF'
# 3 batches of 12 with the exported inputs' dtypes and value ranges (ids in
# range, masks of 1s and 0s), and a target for the loss.
import json, os, sys
import torch
model_dir, out, loss, e2e = sys.argv[1:]
sys.path.insert(0, e2e)
import pt2_reference
source = json.load(open(os.path.join(model_dir, "source.json")))
model, example = pt2_reference.build(source["model"])
model.load_state_dict(torch.load(os.path.join(model_dir, "state.pt")))
model.eval()
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(7)
for b in range(3):
    batch = {}
    for name, t in example.items():
        shape = (12,) + tuple(t.shape[1:])
        if t.is_floating_point():
            batch[name] = torch.randn(shape, generator=g)
        elif "mask" in name:
            batch[name] = (torch.rand(shape, generator=g) > 0.2).long()
            batch[name][:, 0] = 1
        else:
            batch[name] = torch.randint(2, int(t.max()) + 1, shape, generator=g, dtype=t.dtype)
    with torch.no_grad():
        y = model(*batch.values())
    if loss == "mse":
        batch["target"] = torch.randn(y.shape, generator=g)
    else:
        batch["target"] = torch.randint(0, y.shape[-1], y.shape[:-1], generator=g)
    torch.save(batch, os.path.join(out, f"batch_{b:03d}.pt"))
EOF
$REF infer "$W/model" "$W/batches" "$W/ref_out.pt" --steps 3 --output-name "$OUTPUT_NAME" >/dev/null
SGD="--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.01"
ADAMW="--optimizer adamw --lr 0.001 --eps 1e-5 --weight-decay 0.01"
# shellcheck disable=SC2086
$REF train "$W/model" "$W/batches" "$W/ref_sgd.pt" --steps 3 --loss $LOSS $SGD --chunks $CHUNKS \
  --losses-out "$W/ref_sgd.json" >/dev/null
# shellcheck disable=SC2086
$REF train "$W/model" "$W/batches" "$W/ref_adamw.pt" --steps 3 --loss $LOSS $ADAMW --chunks $CHUNKS --accumulate \
  --losses-out "$W/ref_adamw.json" >/dev/null

for n in 2 3; do
  sched=1f1b
  [ $n = 2 ] && sched=gpipe
  step "$MODEL_NAME: $n stages, $sched: inference"
  check_inference "$W/split$n" $n $sched "$W/ref_out.pt" outputs
done

train() {  # N SCHEDULE OPT
  local n=$1 sched=$2 opt=$3 args=$SGD
  [ "$opt" = adamw ] && args=$ADAMW
  step "$MODEL_NAME: $n stages, $sched: 3 training steps, $opt"
  # shellcheck disable=SC2086
  "$PPRUN" --manifest "$W/split$n" --nproc "$n" --schedule "$sched" --chunks "$CHUNKS" --inputs "$W/batches" --steps 3 \
    --train --loss $LOSS $args --save "$W/ck_$opt" >"$W/train.log" 2>&1 ||
    { cat "$W/train.log" >&2; fail "pprun training ($n stages, $sched, $opt)"; }
  # Non-persistent buffers (LLaMA's rotary inv_freq) are no state_dict() entry,
  # so not in the reference: left out here, by the eager module's own account.
  "$PY" - "$W/model" "$W/ck_$opt/params.pt" "$W/ck_${opt}_state.pt" "$E2E" <<'EOF'
import sys, torch
model_dir, src, dst, e2e = sys.argv[1:]
sys.path.insert(0, e2e)
import pt2_reference
state = set(pt2_reference.load_eager(model_dir).state_dict())
params = torch.load(src)
dropped = sorted(k for k in params if k not in state)
torch.save({k: v for k, v in params.items() if k in state}, dst)
if dropped:
    print("   not state_dict() entries, not compared:", ", ".join(dropped))
EOF
  compare "$W/ck_${opt}_state.pt" "$W/ref_$opt.pt" "params after 3 steps" --keys-from A
  compare_losses "$W/train.log" "$W/ref_$opt.json" "per-step loss"
}
train 2 gpipe sgd
train 3 1f1b adamw

step "$MODEL_NAME: --resume after 2 steps + 1 step equals 3 steps (2 stages, gpipe, sgd)"
# shellcheck disable=SC2086
run=(--nproc 2 --schedule gpipe --chunks $CHUNKS --inputs "$W/batches" --train --loss $LOSS $SGD --quiet)
"$PPRUN" --manifest "$W/split2" "${run[@]}" --steps 2 --save "$W/two" || fail "2 steps"
"$PPRUN" --resume "$W/two" "${run[@]}" --steps 1 --save "$W/two_plus_one" || fail "resume + 1 step"
compare "$W/two_plus_one/params.pt" "$W/ck_sgd/params.pt" "resumed vs uninterrupted" --atol 0

step "$MODEL_NAME: the saved stages open with torch.export.load and hold the trained values"
"$PY" - "$W/ck_adamw" <<'EOF'
import glob, json, os, sys, warnings
import torch
warnings.filterwarnings("ignore")
ck = sys.argv[1]
params = torch.load(os.path.join(ck, "params.pt"))
m = json.load(open(os.path.join(ck, "manifest.json")))
checked = 0
for s in m["stages"]:
    ep = torch.export.load(os.path.join(ck, s["artifact"]))
    state = {**ep.state_dict, **ep.constants}
    for p in s["params"]:
        name = p["name"]
        if name in params and name in state:
            if not torch.equal(state[name], params[name]):
                sys.exit(f"FAIL: {s['artifact']}: {name} is not the trained value")
            checked += 1
if checked == 0:
    sys.exit("FAIL: no parameter checked")
print(f"   {len(m['stages'])} stages load; {checked} tensors equal params.pt")
EOF
$REF infer "$W/model" "$W/batches" "$W/ref_trained_out.pt" --steps 3 --params "$W/ck_adamw_state.pt" \
  --output-name "$OUTPUT_NAME" >/dev/null
"$PPRUN" --manifest "$W/ck_adamw" --nproc 3 --chunks 2 --inputs "$W/batches" --steps 3 --output "$W/trained_out.pt" \
  --quiet || fail "pprun inference from --save"
compare "$W/trained_out.pt" "$W/ref_trained_out.pt" "outputs of the saved pipeline"

if [ "$MODEL_NAME" = mlp ]; then
  step "$MODEL_NAME: a stage with an operator this LibTorch lacks: one line before any rank starts, exit 2"
  rm -rf "$W/bad" && cp -r "$W/split2" "$W/bad"
  "$PY" - "$W/bad" <<'EOF'
# Renames the first aten.relu of stage 1 to an operator no LibTorch has; the
# manifest's sha256 follows, so that only the operator is wrong.
import hashlib, json, os, sys, zipfile
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
art = os.path.join(d, m["stages"][1]["artifact"])
with zipfile.ZipFile(art) as z:
    records = [(i.filename, z.read(i.filename)) for i in z.infolist()]
with zipfile.ZipFile(art, "w", zipfile.ZIP_STORED) as z:
    for name, data in records:
        if name.endswith("models/model.json"):
            data = data.replace(b"torch.ops.aten.relu.default", b"torch.ops.aten.no_such_op.default", 1)
        z.writestr(name, data)
m["stages"][1]["sha256"] = hashlib.sha256(open(art, "rb").read()).hexdigest()
json.dump(m, open(os.path.join(d, "manifest.json"), "w"), indent=2)
EOF
  set +e
  "$PPRUN" --manifest "$W/bad" --nproc 2 --chunks 2 --inputs "$W/batches" --steps 1 >"$W/bad.log" 2>&1
  rc=$?
  set -e
  [ $rc = 2 ] || { cat "$W/bad.log" >&2; fail "exit code $rc, expected 2"; }
  [ "$(wc -l <"$W/bad.log")" = 1 ] || { cat "$W/bad.log" >&2; fail "more than one line"; }
  grep -q "stage1.pt2: node '.*' (torch.ops.aten.no_such_op.default): unsupported op" "$W/bad.log" ||
    { cat "$W/bad.log" >&2; fail "the error does not name the node and its target"; }
  if grep -q "rank" "$W/bad.log"; then cat "$W/bad.log" >&2; fail "a rank started"; fi
  echo "   $(cat "$W/bad.log")"
fi

step "$MODEL_NAME: all checks passed"
