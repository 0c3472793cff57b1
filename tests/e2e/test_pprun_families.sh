#!/bin/bash
# End-to-end on the transformer families of samples/export_families.py
# (transformers models built from tiny configs, random weights): GPT-2 (tied LM
# head), BERT (attention mask read by every layer), T5 (encoder-decoder: the
# decoder's stages read the encoder's output), LLaMA (RMSNorm, rotary
# embedding, grouped-query attention). $PPC_PYTHON must have torch 2.x and
# transformers.
#   - inference: the dynamo exporter's default output (optimized), split by
#     module path at the middle layer (`transformer.h.1`, `bert.encoder.layer.1`,
#     `decoder.block.0`, `model.layers.1`) and automatically into 3 stages; pprun's
#     logits for 3 batches equal PyTorch's (<= 1e-5);
#   - training: the same model exported with export_families.py --optimize safe
#     (the exporter's own optimizer, told not to fold parameters). At these tiny
#     sizes its default folds parameters of up to 8192 elements that pass
#     through a Transpose or a constant Gather into constants (T5 keeps none of
#     its attention weights), which no one can train (ppc names them in a
#     note); real-sized weights are not folded, so "safe" is the graph a
#     real model exports to. 3 steps of SGD with momentum (GPipe, 2 stages) and of
#     AdamW (1F1B, 3 stages): every parameter and each step's loss equal
#     PyTorch's (<= 1e-5), the reference being torch.jit.trace of the same
#     module (exact against eager: export_families.py checks it). pprun's
#     params.pt, as saved, must load into the family's nn.Module with
#     load_state_dict(strict=True): PyTorch's names, tied parameters under
#     every name, no renaming script.
#     GPT-2 also as 2 stages x 2 data-parallel replicas, each on half the batch.
#   - the torch.jit.trace of the module (the reference), split like the
#     export (cut, auto 3) and run by pprun: inference, and 3 steps of AdamW
#     (1F1B, 3 stages) whose params.pt loads strictly into the traced module
#     (TorchScript keeps no persistent=False flag: its state_dict() has BERT's
#     position_ids and LLaMA's inv_freq, which the eager module's has not;
#     a buffer forward never reads, LLaMA's original_inv_freq, is in no stage
#     and the only key allowed missing).
#
# Usage: tests/e2e/test_pprun_families.sh BUILD_DIR|PPC_BINARY OUT_TMP FAMILY
set -euo pipefail

FAMILY=${3:?usage: $0 BUILD_DIR|PPC_BINARY OUT_TMP FAMILY}
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh" "$1" "$2"
SECONDS=0
case $FAMILY in
  gpt2) CUT=transformer.h.1 ;;
  bert) CUT=bert.encoder.layer.1 ;;
  t5) CUT=decoder.block.0 ;;
  llama) CUT=model.layers.1 ;;
  *) echo "unknown family $FAMILY" >&2; exit 2 ;;
esac
W=$OUT_TMP/$FAMILY
rm -rf "$W"
mkdir -p "$W"
CHUNKS=2

step "$FAMILY: export (dynamo: default, and without folding parameters; torch.jit.trace for the reference)"
for v in "infer:--optimize torch" "train:--optimize safe" "ref:--exporter trace"; do
  # shellcheck disable=SC2086
  "$PY" "$ROOT/samples/export_families.py" "$W/${v%%:*}" --family "$FAMILY" ${v#*:} --no-check >"$W/export.log" 2>&1 ||
    { cat "$W/export.log" >&2; fail "export_families.py ${v#*:}"; }
done
MODEL=$W/ref/$FAMILY/${FAMILY}_traced.pt

step "$FAMILY: 3 batches of 4 (the family's inputs, random targets)"
"$PY" - "$ROOT/samples/export_families.py" "$FAMILY" "$W/batches" <<'PYEOF'
import importlib.util, os, sys, torch
spec = importlib.util.spec_from_file_location("families", sys.argv[1])
fam = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fam)
s = fam.build(sys.argv[2], "eager")
os.makedirs(sys.argv[3], exist_ok=True)
g = torch.Generator().manual_seed(11)
vocab = s["cfg"].vocab_size
for k in range(3):
    batch = s["make_inputs"](g, 4, k == 0)
    ids = next(v for n, v in batch.items() if n.endswith("input_ids"))
    batch["target"] = torch.randint(0, vocab, ids.shape, generator=g)
    torch.save(batch, os.path.join(sys.argv[3], f"batch_{k:03d}.pt"))
PYEOF
"$PY" "$E2E/reference_infer.py" "$MODEL" "$W/batches" "$W/ref_out.pt" --steps 3 --output-name logits >/dev/null

split() {  # MODEL OUT ARGS...
  local model=$1 out=$2
  shift 2
  "$PPC" split "$model" "$@" -o "$out" >/dev/null 2>"$W/split.log" || { cat "$W/split.log" >&2; fail "ppc split $*"; }
}
printf '{"version": 1, "split_points": [{"module": "%s", "at": "begin"}]}\n' "$CUT" >"$W/cut.json"
echo '{"version": 1, "auto": {"stages": 3}}' >"$W/auto3.json"

INFER=$W/infer/$FAMILY/$FAMILY.onnx
split "$INFER" "$W/i2" --splits "$W/cut.json"
split "$INFER" "$W/i3" --splits "$W/auto3.json"
for n in 2 3; do
  step "$FAMILY: inference, $n stages ($([ $n = 2 ] && echo "cut at $CUT" || echo auto)), 1F1B"
  check_inference "$W/i$n" $n 1f1b "$W/ref_out.pt" logits
done

TRAIN=$W/train/$FAMILY/$FAMILY.onnx
split "$TRAIN" "$W/t2" --splits "$W/cut.json"
split "$TRAIN" "$W/t3" --splits "$W/auto3.json"
SGD="--optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 0.01"
ADAMW="--optimizer adamw --lr 0.001 --eps 1e-5 --weight-decay 0.01"
# train_and_load SPLIT N SCHEDULE REF PPRUN_ARGS...: 3 steps, saved to $W/ck;
# params.pt loads into the family's nn.Module with load_state_dict(strict=True)
# as it is (every state_dict() name, tied aliases included, nothing else: no
# renaming), and equals REF.pt (PyTorch's training of the unsplit model)
# tensor by tensor; each step's loss equals REF.json's.
# INTO: "eager" (the family's nn.Module) or a TorchScript archive.
train_and_load() {
  local split=$1 n=$2 sched=$3 ref=$4 into=$5
  shift 5
  "$PPRUN" --manifest "$split" --nproc "$n" --schedule "$sched" --chunks "$CHUNKS" --inputs "$W/batches" --steps 3 \
    --train "$@" --save "$W/ck" >"$W/train.log" 2>&1 ||
    { cat "$W/train.log" >&2; fail "pprun training ($n stages, $sched, $*)"; }
  "$PY" - "$ROOT/samples/export_families.py" "$FAMILY" "$W/ck/params.pt" "$into" "$split/manifest.json" <<'PYEOF' ||
import importlib.util, json, sys, torch
params = torch.load(sys.argv[3])
if sys.argv[4] == "eager":
    spec = importlib.util.spec_from_file_location("families", sys.argv[1])
    fam = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fam)
    model = fam.build(sys.argv[2], "eager")["model"]
    model.load_state_dict(params, strict=True)  # raises on a missing or unexpected key
    print(f"   params.pt: {len(params)} tensors, load_state_dict(strict=True) into {type(model).__name__} passes")
    sys.exit(0)
# A trace: its state_dict() also lists persistent=False buffers (TorchScript
# drops the flag); one that forward never reads is in no stage, so pprun
# cannot save it (LLaMA's rotary original_inv_freq). Anything else missing,
# or any unexpected key, fails.
model = torch.jit.load(sys.argv[4])
held = {n for s in json.load(open(sys.argv[5]))["stages"] for p in s["params"] for n in [p["original"]] + p.get("aliases", [])}
unread = {n for n, _ in model.named_buffers()} - held
missing = sorted(set(model.state_dict()) - set(params))
unexpected = sorted(set(params) - set(model.state_dict()))
if unexpected or set(missing) - unread:
    sys.exit(f"params.pt vs the traced module: missing {missing}, unexpected {unexpected}")
if missing:
    model.load_state_dict(params, strict=False)
    print(f"   params.pt: {len(params)} tensors; load_state_dict into the trace lacks only buffers no stage holds "
          f"(forward never reads them): {', '.join(missing)}")
else:
    model.load_state_dict(params, strict=True)
    print(f"   params.pt: {len(params)} tensors, load_state_dict(strict=True) into the trace passes")
PYEOF
    fail "params.pt does not load strictly"
  compare "$W/ck/params.pt" "$ref.pt" "params after 3 steps (PyTorch's names, no mapping)" --keys-from A
  compare_losses "$W/train.log" "$ref.json" "per-step loss"
}
train() {  # N SCHEDULE OPT ARGS
  local n=$1 sched=$2 opt=$3 args=$4
  step "$FAMILY: training, $n stages, $sched, 3 steps of $opt"
  # shellcheck disable=SC2086
  "$PY" "$E2E/reference_train.py" "$MODEL" "$W/batches" "$W/ref_$opt.pt" --steps 3 --loss cross_entropy $args \
    --chunks $CHUNKS --accumulate --losses-out "$W/ref_$opt.json" >/dev/null
  # shellcheck disable=SC2086
  train_and_load "$W/t$n" "$n" "$sched" "$W/ref_$opt" eager --loss cross_entropy $args
}
train 2 gpipe sgd "$SGD"
train 3 1f1b adamw "$ADAMW"
if [ "$FAMILY" = gpt2 ]; then
  step "$FAMILY: pipeline x data parallel, 2 stages x 2 replicas (--dp 2), 1F1B, 3 steps of sgd"
  # shellcheck disable=SC2086
  train_and_load "$W/t2" 4 1f1b "$W/ref_sgd" eager --loss cross_entropy $SGD --dp 2
fi

# The TorchScript trace (the reference above) split by ppc and run by pprun.
# A traced module's result has no name: the manifest calls it `output`.
"$PY" -c 'import sys, torch; torch.save({"output": torch.load(sys.argv[1])["logits"]}, sys.argv[2])' \
  "$W/ref_out.pt" "$W/ref_out_ts.pt"
split "$MODEL" "$W/ts2" --splits "$W/cut.json"
split "$MODEL" "$W/ts3" --splits "$W/auto3.json"
for n in 2 3; do
  step "$FAMILY: TorchScript trace, inference, $n stages ($([ $n = 2 ] && echo "cut at $CUT" || echo auto)), 1F1B"
  check_inference "$W/ts$n" $n 1f1b "$W/ref_out_ts.pt" logits
done
step "$FAMILY: TorchScript trace, training, 3 stages, 1f1b, 3 steps of adamw"
# shellcheck disable=SC2086
train_and_load "$W/ts3" 3 1f1b "$W/ref_adamw" "$MODEL" --loss cross_entropy $ADAMW

step "$FAMILY: all checks passed"
