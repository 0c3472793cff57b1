#!/usr/bin/env python3
"""Export tiny Hugging Face transformer families (random, seeded weights) for ppc tests.

Usage:  .venv/bin/python samples/export_families.py OUTDIR
            [--family gpt2|bert|t5|llama ...] [--exporter dynamo|trace]
            [--attn auto|sdpa|eager] [--optimize safe|torch|none]
            [--opset N] [--external-data] [--keep-stack-trace] [--no-check]

Needs torch (2.11 tested), transformers (5.x tested), onnx, onnxscript and,
for the checks, onnxruntime.  Nothing is downloaded: every model is built from
a config with random weights.

For each FAMILY (default: all four) this writes into OUTDIR/<family>/:

  <family>.onnx         --exporter dynamo (default): torch.onnx.export(dynamo=True),
                        batch dim dynamic ("batch"), sequence length fixed (8)
  <family>_traced.pt    --exporter trace: torch.jit.trace(model, inputs, strict=False),
                        saved without its *.debug_pkl records (they hold absolute paths)
  <family>_inputs.pt    torch.save({onnx_input_name: example tensor}), batch 2
  <family>_params.pt    torch.save(model.state_dict()): every key, tied aliases included
  <family>_meta.json    input/output names and shapes (symbolic dims by name), the
                        layer module prefixes (split points), tied-parameter groups,
                        the ONNX op types, versions; one entry per exporter run

Families (fp32, eval(), all dropout probabilities 0 in the config, vocab 128, 2 layers):

  gpt2   GPT2LMHeadModel (lm_head.weight IS transformer.wte.weight), input input_ids
  bert   BertForMaskedLM (cls.predictions.decoder.weight IS bert.embeddings.word_embeddings
         .weight), inputs input_ids, attention_mask (row 1 padded: the mask matters)
  t5     T5ForConditionalGeneration (shared / encoder.embed_tokens / decoder.embed_tokens /
         lm_head all one tensor), inputs input_ids, attention_mask, decoder_input_ids
  llama  LlamaForCausalLM, 4 query heads / 2 key-value heads (GQA), RMSNorm, RoPE

Attention: "sdpa" exports for gpt2, bert and llama.  For t5 the dynamo export with
sdpa fails in torch.export's decomposition step ("Cannot view a tensor with shape
[s11, 8, 4, 8] and strides ... as [s11, 8, 32]"), so --attn auto falls back to
"eager" there; torch.jit.trace works with sdpa for all four.

Every model returns its logits only: the exported module is a subclass of the HF
class whose forward() takes the inputs positionally and returns .logits
(use_cache=False), so the state_dict and the ONNX initializer names are exactly
the HF names (no wrapper prefix).

Weights: HF init after torch.manual_seed(0), then every parameter gets
+= 0.02 * randn (seeded).  Without that, the freshly initialised LayerNorm
weights (all ones) and biases (all zeros) are equal tensors, and the ONNX
optimizer's DeduplicateInitializersPass merges them into one initializer (a tie
that the PyTorch model does not have), and zero biases get dropped.

--optimize (dynamo only):
  safe   export with optimize=False, then run the same onnxscript
         optimizer torch runs (onnxscript.optimizer.optimize_ir), but never fold a
         node that reads a parameter.  With the tiny sizes here the default
         optimizer would fold e.g. Transpose(lm_head.weight) into a new, unnamed
         initializer (a frozen transposed copy of the tied embedding) and
         Gather(wpe.weight, constant positions) into a constant, so those
         parameters would vanish from the graph; for real-sized weights (more
         than 8192 elements) it does not fold them.  "safe" gives the real-size
         graph structure at tiny size.
  torch  (default) torch.onnx.export(..., optimize=True): exactly what the
         exporter writes, and what a user gets.
  none   torch.onnx.export(..., optimize=False): raw torchlib output.

The node metadata key pkg.torch.onnx.stack_trace holds absolute source paths and
line numbers; it is removed unless --keep-stack-trace is given, so the files do
not depend on where the checkout and the Python environment live.

Checks (unless --no-check): onnx.checker.check_model(path, full_check=True), then
onnxruntime vs eager PyTorch on the example inputs and on a second input set with
batch 3 (exercises the dynamic batch and, for bert/t5, a different padding
pattern); for the traced module, traced vs eager on both input sets.  Every
parameter must appear as an initializer, under one of its state_dict names.

Determinism: seeds and inputs are fixed, each family runs in a fresh interpreter
with PYTHONHASHSEED=0 and one thread; the outputs are byte-identical run to run.
"""

import argparse
import ast
import collections
import json
import logging
import os
import subprocess
import sys
import warnings

import torch
import transformers

FAMILIES = ("gpt2", "bert", "t5", "llama")
SEQ = 8
BATCH = 2
CHECK_BATCH = 3
VOCAB = 128
SEED = 0


# The exported modules: subclasses of the HF classes (so the parameter names are
# exactly the HF names) whose forward takes the inputs positionally and returns
# the logits only.
class GPT2LMHeadModelLogits(transformers.GPT2LMHeadModel):
    def forward(self, input_ids):
        return super().forward(input_ids=input_ids, use_cache=False).logits


class BertForMaskedLMLogits(transformers.BertForMaskedLM):
    def forward(self, input_ids, attention_mask):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask).logits


class T5ForConditionalGenerationLogits(transformers.T5ForConditionalGeneration):
    def forward(self, input_ids, attention_mask, decoder_input_ids):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                               decoder_input_ids=decoder_input_ids, use_cache=False).logits


class LlamaForCausalLMLogits(transformers.LlamaForCausalLM):
    def forward(self, input_ids):
        return super().forward(input_ids=input_ids, use_cache=False).logits


# ---------------------------------------------------------------------------
# Models.  Each builder returns a dict:
#   model         the nn.Module (eval mode), forward(*inputs) -> logits
#   hf_class      the HF class it subclasses
#   inputs        {name: tensor}, in forward() order (batch BATCH)
#   check_inputs  {name: tensor}, a second input set (batch CHECK_BATCH)
#   outputs       [output names]
#   layers        ordered layer (block) module prefixes: the split points
#   config        the config values that matter
# ---------------------------------------------------------------------------
def _ids(gen, batch, vocab=VOCAB, lo=2):
    # Token 0 is the pad token and 1 is eos in these configs: use ids >= 2.
    return torch.randint(lo, vocab, (batch, SEQ), generator=gen, dtype=torch.int64)


def _padded_mask(batch, first_pad):
    """Row r keeps its first first_pad[r] tokens (int64 1/0), the rest is padding."""
    mask = torch.ones(batch, SEQ, dtype=torch.int64)
    for r, n in enumerate(first_pad):
        mask[r, n:] = 0
    return mask


def _set_attn(config, attn):
    # The attention implementation the model is built with ("sdpa" or "eager").
    config._attn_implementation = attn


def build_gpt2(attn):
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2,
        n_head=2, n_inner=None, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, summary_first_dropout=0.0, use_cache=False, bos_token_id=1,
        eos_token_id=1, tie_word_embeddings=True)
    _set_attn(cfg, attn)
    model = GPT2LMHeadModelLogits(cfg)
    return dict(model=model, hf_class="GPT2LMHeadModel", cfg=cfg,
                make_inputs=lambda g, b, first: {"input_ids": _ids(g, b)},
                outputs=["logits"],
                layers=[f"transformer.h.{i}" for i in range(cfg.n_layer)])


def build_bert(attn):
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, hidden_act="gelu",
        max_position_embeddings=32, type_vocab_size=2, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, classifier_dropout=0.0, pad_token_id=0, use_cache=False,
        tie_word_embeddings=True)
    _set_attn(cfg, attn)
    model = BertForMaskedLMLogits(cfg)

    def make_inputs(g, b, first):
        pads = [SEQ, SEQ - 3] if first else [SEQ - 1, SEQ, SEQ - 5]
        return {"input_ids": _ids(g, b), "attention_mask": _padded_mask(b, pads)}

    return dict(model=model, hf_class="BertForMaskedLM", cfg=cfg, make_inputs=make_inputs,
                outputs=["logits"],
                layers=[f"bert.encoder.layer.{i}" for i in range(cfg.num_hidden_layers)])


def build_t5(attn):
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
        num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
        relative_attention_max_distance=16, dropout_rate=0.0, classifier_dropout=0.0,
        feed_forward_proj="relu", use_cache=False, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0, tie_word_embeddings=True)
    _set_attn(cfg, attn)
    model = T5ForConditionalGenerationLogits(cfg)

    def make_inputs(g, b, first):
        pads = [SEQ, SEQ - 2] if first else [SEQ - 4, SEQ, SEQ - 1]
        ids = _ids(g, b)
        dec = _ids(g, b)
        dec[:, 0] = cfg.decoder_start_token_id
        return {"input_ids": ids, "attention_mask": _padded_mask(b, pads), "decoder_input_ids": dec}

    return dict(model=model, hf_class="T5ForConditionalGeneration", cfg=cfg,
                make_inputs=make_inputs, outputs=["logits"],
                layers=[f"encoder.block.{i}" for i in range(cfg.num_layers)]
                + [f"decoder.block.{i}" for i in range(cfg.num_decoder_layers)])


def build_llama(attn):
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
        max_position_embeddings=64, rms_norm_eps=1e-6, attention_dropout=0.0,
        attention_bias=False, mlp_bias=False, use_cache=False, bos_token_id=1, eos_token_id=1,
        pad_token_id=0, tie_word_embeddings=False)
    _set_attn(cfg, attn)
    model = LlamaForCausalLMLogits(cfg)
    return dict(model=model, hf_class="LlamaForCausalLM", cfg=cfg,
                make_inputs=lambda g, b, first: {"input_ids": _ids(g, b)},
                outputs=["logits"],
                layers=[f"model.layers.{i}" for i in range(cfg.num_hidden_layers)])


BUILDERS = {"gpt2": build_gpt2, "bert": build_bert, "t5": build_t5, "llama": build_llama}

CONFIG_KEYS = ("vocab_size", "n_embd", "n_layer", "n_head", "hidden_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "intermediate_size", "d_model",
               "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
               "relative_attention_num_buckets", "relative_attention_max_distance",
               "max_position_embeddings", "n_positions", "tie_word_embeddings")


def build(family, attn):
    """The family's model (seeded, perturbed, eval) plus its example and check inputs."""
    torch.manual_seed(SEED)
    spec = BUILDERS[family](attn)
    model = spec["model"]
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        # named_parameters() yields each tied tensor once: ties stay ties.
        for _, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.02)
    model.eval()
    gen = torch.Generator().manual_seed(SEED + 2)
    spec["inputs"] = spec["make_inputs"](gen, BATCH, True)
    spec["check_inputs"] = spec["make_inputs"](gen, CHECK_BATCH, False)
    cfg = spec["cfg"].to_dict()
    spec["config"] = {k: cfg[k] for k in CONFIG_KEYS if k in cfg}
    spec["attn_implementation"] = spec["cfg"]._attn_implementation
    return spec


def tied_groups(model):
    """[[name, alias, ...], ...] for every tensor that has several state_dict names."""
    by_id = collections.OrderedDict()
    for name, t in model.state_dict(keep_vars=True).items():
        by_id.setdefault(id(t), []).append(name)
    return [names for names in by_id.values() if len(names) > 1]


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
def _param_names(model):
    return {n for n, _ in model.named_parameters(remove_duplicate=False)}


def export_dynamo(spec, path, args):
    model, inputs = spec["model"], spec["inputs"]
    batch = torch.export.Dim("batch", min=1, max=64)
    dynamic_shapes = {name: {0: batch} for name in inputs}
    program = torch.onnx.export(
        model, tuple(inputs.values()), None, dynamo=True,
        input_names=list(inputs), output_names=spec["outputs"],
        dynamic_shapes=dynamic_shapes, opset_version=args.opset,
        optimize=(args.optimize == "torch"), verbose=False)
    if args.optimize == "safe":
        import onnxscript.optimizer
        import onnxscript.rewriter.onnx_fusions

        params = _param_names(model)

        def should_fold(node):
            # Never fold a node that reads a parameter (None: default rules).
            for v in node.inputs:
                if v is not None and v.is_initializer() and v.name in params:
                    return False
            return None

        onnxscript.optimizer.optimize_ir(program.model, should_fold=should_fold)
        # What torch's optimize() also runs (fusions exist for opset 23 only).
        onnxscript.rewriter.onnx_fusions.fuse(program.model)
    if not args.keep_stack_trace:
        for node in program.model.graph.all_nodes():
            node.metadata_props.pop("pkg.torch.onnx.stack_trace", None)
    data = path + ".data"
    if os.path.exists(data):
        os.remove(data)
    program.save(path, external_data=args.external_data)
    return program


def save_jit(module, path):
    """samples/export.py's save_jit: module.save(path) minus the *.debug_pkl records."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from export import save_jit as save_without_debug_records

    save_without_debug_records(module, path)


def export_trace(spec, path):
    traced = torch.jit.trace(spec["model"], tuple(spec["inputs"].values()), strict=False)
    save_jit(traced, path)
    return traced


# ---------------------------------------------------------------------------
# Inspection and checks
# ---------------------------------------------------------------------------
def _dims(value_info):
    return [d.dim_param if d.HasField("dim_param") else d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


def _scopes(node):
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            return ast.literal_eval(p.value)
    return None


def layers_reading(model_proto, input_name, layers):
    """The layer prefixes holding a node that depends (transitively) on input_name."""
    tainted = {input_name}
    hit = set()
    for node in model_proto.graph.node:  # topologically sorted
        if any(i in tainted for i in node.input):
            tainted.update(node.output)
            scopes = _scopes(node) or []
            hit.update(s for s in scopes if s in layers)
    return [l for l in layers if l in hit]


def onnx_summary(path, spec):
    import onnx

    m = onnx.load(path, load_external_data=False)
    ops = collections.Counter(f"{n.domain or 'ai.onnx'}::{n.op_type}" for n in m.graph.node)
    inits = {i.name for i in m.graph.initializer}
    summary = {
        "ir_version": m.ir_version,
        "opset_import": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "inputs": {i.name: _dims(i) for i in m.graph.input},
        "outputs": {o.name: _dims(o) for o in m.graph.output},
        "nodes": len(m.graph.node),
        "initializers": len(m.graph.initializer),
        "external_data": any(i.data_location == onnx.TensorProto.EXTERNAL for i in m.graph.initializer),
        "functions": [f"{f.domain}::{f.name}" for f in m.functions],
        "op_types": dict(sorted(ops.items())),
    }
    # Every parameter must be an initializer under one of its names.
    model = spec["model"]
    missing = []
    groups = collections.OrderedDict()
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    for names in groups.values():
        if not any(n in inits for n in names):
            missing.append(names[0])
    summary["missing_params"] = missing
    if "attention_mask" in spec["inputs"]:
        summary["layers_reading_attention_mask"] = layers_reading(m, "attention_mask", spec["layers"])
    return m, summary


def _np(d):
    return {k: v.numpy() for k, v in d.items()}


def check_onnx(path, spec):
    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(path, full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # no warnings about nodes it cannot constant-fold
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    diffs = []
    for inputs in (spec["inputs"], spec["check_inputs"]):
        with torch.no_grad():
            ref = spec["model"](*inputs.values()).numpy()
        got = sess.run(spec["outputs"], _np(inputs))[0]
        assert got.shape == ref.shape, (got.shape, ref.shape)
        diffs.append(float(np.abs(got - ref).max()))
    return diffs


def check_trace(traced, spec):
    diffs = []
    for inputs in (spec["inputs"], spec["check_inputs"]):
        with torch.no_grad():
            ref = spec["model"](*inputs.values())
            got = traced(*inputs.values())
        diffs.append(float((got - ref).abs().max()))
    return diffs


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def versions():
    import importlib.metadata as md

    out = {}
    for pkg in ("torch", "transformers", "onnx", "onnxscript", "onnx-ir"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def export_family(family, outdir, args):
    d = os.path.join(outdir, family)
    os.makedirs(d, exist_ok=True)
    attns = ["sdpa", "eager"] if args.attn == "auto" else [args.attn]
    err = None
    for attn in attns:
        try:
            spec = build(family, attn)
            if args.exporter == "dynamo":
                path = os.path.join(d, f"{family}.onnx")
                export_dynamo(spec, path, args)
            else:
                path = os.path.join(d, f"{family}_traced.pt")
                traced = export_trace(spec, path)
            break
        except Exception as e:  # try the next attention implementation
            err = e
            cause = e.__cause__ or e  # torch.onnx wraps the real error in a ConversionError
            first = (str(cause).strip().splitlines() or [""])[0]
            print(f"{family}: {args.exporter} export with attn_implementation={attn} failed: "
                  f"{type(cause).__name__}: {first}", file=sys.stderr)
    else:
        raise SystemExit(f"{family}: export failed ({err})")

    model = spec["model"]
    torch.save(dict(spec["inputs"]), os.path.join(d, f"{family}_inputs.pt"))
    torch.save(model.state_dict(), os.path.join(d, f"{family}_params.pt"))

    entry = {"attn_implementation": attn, "file": os.path.basename(path)}
    if args.exporter == "dynamo":
        _, summary = onnx_summary(path, spec)
        entry.update(optimize=args.optimize, stack_trace_kept=args.keep_stack_trace, **summary)
        if summary["missing_params"]:
            print(f"{family}: WARNING parameters not in the graph: {summary['missing_params']}",
                  file=sys.stderr)
    line = f"{family}: {entry['file']} (attn_implementation={attn}"
    if args.exporter == "dynamo":
        line += (f", IR {entry['ir_version']}, opset {entry['opset_import'].get('ai.onnx')}, "
                 f"{entry['nodes']} nodes, {entry['initializers']} initializers")
    line += ")"
    if not args.no_check:
        if args.exporter == "dynamo":
            diffs = check_onnx(path, spec)
            line += f"; checker ok; onnxruntime vs eager max|diff| {diffs[0]:.3g} (batch {BATCH}), " \
                    f"{diffs[1]:.3g} (batch {CHECK_BATCH})"
        else:
            diffs = check_trace(traced, spec)
            line += f"; traced vs eager max|diff| {diffs[0]:.3g} (batch {BATCH}), " \
                    f"{diffs[1]:.3g} (batch {CHECK_BATCH})"
        if max(diffs) > 1e-4:
            raise SystemExit(line + f"\n{family}: mismatch vs eager")
    print(line)

    meta_path = os.path.join(d, f"{family}_meta.json")
    exports = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            exports = json.load(f).get("exports", {})
    exports[args.exporter] = entry
    exports = dict(sorted(exports.items()))  # independent of the order of the runs
    meta = {
        "family": family,
        "hf_class": spec["hf_class"],
        "wrapper": f"{type(model).__name__}: subclass of {spec['hf_class']}, forward returns .logits "
                   "(use_cache=False); parameter names are the HF names, no prefix",
        "config": spec["config"],
        "inputs": [{"name": k, "dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                   for k, v in spec["inputs"].items()],
        "outputs": spec["outputs"],
        "symbolic_dims": {"batch": {"inputs": {k: 0 for k in spec["inputs"]},
                                    "outputs": {k: 0 for k in spec["outputs"]},
                                    "min": 1, "max": 64}},
        "fixed_dims": {"seq": SEQ},
        "split_points": spec["layers"],
        "tied": tied_groups(model),
        "params": len(model.state_dict()),
        "seed": SEED,
        "versions": versions(),
        "exports": exports,
    }
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--family", nargs="+", choices=FAMILIES, action="extend",
                    help="families to export (default: all)")
    ap.add_argument("--exporter", choices=("dynamo", "trace"), default="dynamo")
    ap.add_argument("--attn", choices=("auto", "sdpa", "eager"), default="auto",
                    help="attention implementation; auto: sdpa, eager if sdpa fails (default)")
    ap.add_argument("--optimize", choices=("safe", "torch", "none"), default="torch")
    ap.add_argument("--opset", type=int, default=None,
                    help="ONNX opset (default: the exporter's default)")
    ap.add_argument("--external-data", action="store_true",
                    help="weights over 256 bytes into <family>.onnx.data (default: one file)")
    ap.add_argument("--keep-stack-trace", action="store_true")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.outdir = os.path.abspath(args.outdir)
    families = list(dict.fromkeys(args.family or FAMILIES))

    if args.one:
        torch.set_num_threads(1)
        # Known, harmless noise: torchvision ops not registered, pytree deprecations,
        # trace warnings on HF's shape checks, log(0) while the optimizer folds T5's
        # relative-position buckets.  Errors still surface.
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        transformers.logging.set_verbosity_error()
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"onnx\.reference")
        warnings.filterwarnings("ignore", message=r".*axis name.*will not be used")
        export_family(families[0], args.outdir, args)
        return
    # Pin the hash seed (TorchScript writes sets in hash order) and export each
    # family in a fresh interpreter, so no process-global state (name-mangling
    # counters, symbol counters) depends on what was exported before.
    env = dict(os.environ, PYTHONHASHSEED="0")
    rest = [args.outdir, "--exporter", args.exporter, "--attn", args.attn,
            "--optimize", args.optimize]
    if args.opset is not None:
        rest += ["--opset", str(args.opset)]
    for flag in ("external_data", "keep_stack_trace", "no_check"):
        if getattr(args, flag):
            rest.append("--" + flag.replace("_", "-"))
    failed = []
    for fam in families:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--one"] + rest + ["--family", fam],
                           env=env)
        if r.returncode:
            failed.append(fam)
    if failed:
        sys.exit(f"failed: {' '.join(failed)}")


if __name__ == "__main__":
    main()
