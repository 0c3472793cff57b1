#!/usr/bin/python3
"""Independent checker for the output of `ppc split`.

Usage:  /usr/bin/python3 tests/e2e/check_split.py MODEL OUTDIR [--schema-dir schemas]

MODEL is the source ONNX model that was split, OUTDIR the directory holding
manifest.json and the stage artifacts.  Everything that can be derived from
the source model and the artifacts themselves is derived here (node placement,
constant-like nodes, which values cross which stage boundaries) and compared
with what the manifest claims; the manifest is trusted only for the stage
boundaries themselves (which stage holds what).

Checks:
  * manifest.json validates against manifest.schema.json (needs jsonschema:
    `apt-get install python3-jsonschema`);
  * source: file name, sha256 and opset; model inputs/outputs (names in order,
    dtypes, shapes);
  * each stage artifact exists, its sha256 matches, and
    onnx.checker.check_model(full_check=True) passes;
  * the artifact's graph inputs/outputs are the manifest's, by name and in
    order, with the manifest's dtypes and shapes;
  * the artifact's initializers are exactly the manifest's params, hold the
    source's data, and each is used by the stage (by a node, or sent on as a
    stage output); Identity-of-initializer nodes of the source become
    initializers named after the Identity output, with the same data;
  * every source node is in exactly one stage, except constant-like nodes
    (computed here) which may be cloned into several; nodes are unchanged
    (op, domain, inputs, outputs, attributes) and keep their relative source
    order; nodes.count/cloned/first/last agree;
  * chaining by name: stage inputs are model inputs or outputs of an earlier
    stage (edge/tie, from_stage); each edge's value is an output of its
    producer and an input of exactly its consumers; every cross-stage use of
    a value (derived from node placement) is one edge with all consumers, sent
    directly by the stage that computes it (no relay); model outputs come from
    the stage the manifest says;
  * tie groups: members are where the manifest says, with equal or transposed
    data; transmitted members are rebuilt by a `ppc_tie/<param>` node from a
    'tie' input.

Exits 1 with one line per problem; prints one summary line per stage on success.
"""

import argparse
import hashlib
import json
import re
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

DTYPES = {
    TensorProto.UNDEFINED: "undefined",
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
    TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
    TensorProto.INT16: "int16",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "uint8",
    TensorProto.BOOL: "bool",
    TensorProto.STRING: "string",
}
FLOAT_DTYPES = {"float32", "float64", "float16", "bfloat16"}
# Ops whose result is not a function of their inputs: never constant-like.
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}
TIE_NODE_PREFIX = "ppc_tie/"
MAX_REPORTED = 200


class Checker:
    def __init__(self):
        self.problems = []

    def fail(self, msg):
        self.problems.append(msg)

    def expect(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dtype_name(elem_type):
    return DTYPES.get(elem_type, "other")


def vi_type(vi):
    """(dtype name, shape as manifest JSON) of an ONNX ValueInfoProto."""
    t = vi.type
    if not t.HasField("tensor_type"):
        return "other", None
    tt = t.tensor_type
    if not tt.HasField("shape"):
        return dtype_name(tt.elem_type), None
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dtype_name(tt.elem_type), dims


def node_key(n):
    return n.name if n.name else "<unnamed %s -> %s>" % (n.op_type, n.output[0] if n.output else "?")


def node_signature(n):
    return (n.op_type, n.domain, list(n.input), list(n.output),
            sorted((a.name, a.SerializeToString()) for a in n.attribute))


def _unshared_only(self, n, src_node):
    """Whether stage node n is src_node with some inputs renamed from an
    initializer X to a graph-signature parameter or buffer that is no
    initializer of the source: the exporter merged equal tensors into X, and
    ppc gives each its own initializer again (recorded in self.unshared)."""
    if len(n.input) != len(src_node.input):
        return False
    renamed = {}
    for got, want in zip(n.input, src_node.input):
        if got == want:
            continue
        if want not in self.inits or got in self.inits or got not in (self.parameters | self.buffers):
            return False
        if self.unshared.get(got, want) != want:
            return False
        renamed[got] = want
    if not renamed:
        return False
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(n)
    b.CopyFrom(src_node)
    del a.input[:]
    del b.input[:]
    if node_signature(a) != node_signature(b):
        return False
    self.unshared.update(renamed)
    return True


def tensor_array(t):
    return numpy_helper.to_array(t)


def same_data(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


class Source:
    """Facts derived from the source model alone."""

    def __init__(self, path, ck):
        self.path = path
        self.model = onnx.load(path)
        g = self.model.graph
        self.graph = g
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = [vi for vi in g.input if vi.name not in self.inits]
        self.outputs = list(g.output)
        self.output_names = [o.name for o in g.output]
        # The dynamo exporter's graph signature: which initializers are the
        # module's parameters and buffers (the rest are its constants).
        self.parameters, self.buffers = set(), set()
        for kv in getattr(g, "metadata_props", []):
            if kv.key == "pkg.torch.export.ExportedProgram.graph_signature":
                for kind, target in re.findall(r": (PARAMETER|BUFFER) target='([^']*)'", kv.value):
                    (self.parameters if kind == "PARAMETER" else self.buffers).add(target)
        self.unshared = {}  # a merged initializer's own name (a signature target) -> the source initializer
        self.nodes = list(g.node)
        self.index = {}
        for i, n in enumerate(self.nodes):
            k = node_key(n)
            if k in self.index:
                ck.fail(f"source model: node name '{k}' is not unique (the checker identifies nodes by name)")
            self.index[k] = i
        self.producer = {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
        # Constant-like: Constant nodes, and nodes with at least one input all
        # of whose inputs are initializers or outputs of constant-like nodes.
        self.const_like = [False] * len(self.nodes)
        const_values = set(self.inits)
        for i, n in enumerate(self.nodes):
            has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)
            if n.op_type in NONDETERMINISTIC or has_subgraph:
                continue
            ins = [x for x in n.input if x]
            if (n.op_type == "Constant" and n.domain in ("", "ai.onnx")) or (ins and all(x in const_values for x in ins)):
                self.const_like[i] = True
                const_values.update(o for o in n.output if o)
        # Identity(initializer) -> becomes an initializer named after its output.
        self.identity_of_init = {}
        for n in self.nodes:
            if n.op_type == "Identity" and len(n.input) == 1 and n.input[0] in self.inits:
                self.identity_of_init[n.output[0]] = n.input[0]
        self._arrays = {}

    def init_array(self, name):
        """Source data of an initializer name as it may appear in a stage."""
        if name not in self._arrays:
            if name in self.inits:
                self._arrays[name] = tensor_array(self.inits[name])
            elif name in self.identity_of_init:
                self._arrays[name] = self.init_array(self.identity_of_init[name])
            else:
                return None
        return self._arrays[name]

    def opset(self):
        for o in self.model.opset_import:
            if o.domain in ("", "ai.onnx"):
                return o.version
        return 0


Source.unshared_only = _unshared_only


def check_tensor_entry(ck, where, entry, vi):
    """Manifest tensor entry vs an ONNX ValueInfo."""
    dt, shape = vi_type(vi)
    ck.expect(entry.get("dtype") == dt,
              f"{where}: manifest dtype {entry.get('dtype')!r} but the ONNX type is {dt!r}")
    ck.expect(entry.get("shape") == shape,
              f"{where}: manifest shape {entry.get('shape')!r} but the ONNX shape is {shape!r}")


def validate_schema(ck, manifest, schema_dir):
    try:
        import jsonschema
        from jsonschema import Draft202012Validator
    except ImportError:
        ck.fail("python module jsonschema is missing: cannot validate manifest.json "
                "(install it: apt-get install -y python3-jsonschema)")
        return
    path = os.path.join(schema_dir, "manifest.schema.json")
    try:
        with open(path) as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.SchemaError) as e:
        ck.fail(f"{path}: not a usable JSON Schema: {e}")
        return
    v = Draft202012Validator(schema)
    for err in sorted(v.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path))):
        loc = "/" + "/".join(str(p) for p in err.absolute_path)
        ck.fail(f"manifest.json{loc}: does not match manifest.schema.json: {err.message}")


def check(model_path, outdir, schema_dir):
    ck = Checker()
    mpath = os.path.join(outdir, "manifest.json")
    try:
        with open(mpath) as f:
            man = json.load(f)
    except (OSError, ValueError) as e:
        ck.fail(f"{mpath}: cannot read: {e}")
        return ck, []

    validate_schema(ck, man, schema_dir)
    if ck.problems:
        return ck, []  # the rest assumes the documented structure

    src = Source(model_path, ck)
    stages_m = man["stages"]
    ns = len(stages_m)

    # ---- source ----------------------------------------------------------
    s = man["source"]
    ck.expect(s["format"] == "onnx", f"source.format is {s['format']!r}, expected 'onnx'")
    ck.expect(s["file"] == os.path.basename(model_path),
              f"source.file is {s['file']!r}, expected {os.path.basename(model_path)!r}")
    ck.expect(s["sha256"] == sha256_file(model_path), f"source.sha256 does not match {model_path}")
    ck.expect(s["opset"] == src.opset(), f"source.opset is {s['opset']}, the model's is {src.opset()}")

    def stage_ok(i):
        return isinstance(i, int) and 0 <= i < ns

    # ---- model inputs / outputs (vs the source) --------------------------
    mi_names = [x["name"] for x in man["model_inputs"]]
    ck.expect(mi_names == [vi.name for vi in src.inputs],
              f"model_inputs {mi_names} != source graph inputs {[vi.name for vi in src.inputs]}")
    for x, vi in zip(man["model_inputs"], src.inputs):
        check_tensor_entry(ck, f"model input '{x['name']}'", x, vi)
        if x["split"] == "replicate":
            ck.expect(x["batch_dim"] is None, f"model input '{x['name']}': replicated but batch_dim is {x['batch_dim']}")
        else:
            ck.expect(x["batch_dim"] is not None, f"model input '{x['name']}': split 'batch' without a batch_dim")
    mo_names = [x["name"] for x in man["model_outputs"]]
    ck.expect(mo_names == src.output_names, f"model_outputs {mo_names} != source graph outputs {src.output_names}")
    for x, vi in zip(man["model_outputs"], src.outputs):
        check_tensor_entry(ck, f"model output '{x['name']}'", x, vi)
        ck.expect(stage_ok(x["stage"]), f"model output '{x['name']}': stage {x['stage']} does not exist")

    # ---- stages: artifacts -----------------------------------------------
    arts = []          # loaded ModelProto per stage (None when unusable)
    stage_of_node = {}  # source node index -> [stages] (placed or cloned)
    for i, st in enumerate(stages_m):
        where = f"stage {i} ({st['artifact']})"
        ck.expect(st["index"] == i, f"stages[{i}].index is {st['index']}")
        apath = os.path.join(outdir, st["artifact"])
        if not os.path.isfile(apath):
            ck.fail(f"{where}: artifact {apath} does not exist")
            arts.append(None)
            continue
        ck.expect(sha256_file(apath) == st["sha256"], f"{where}: sha256 of the file does not match the manifest")
        m = onnx.load(apath)
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception as e:  # onnx raises ValidationError / InferenceError
            ck.fail(f"{where}: onnx.checker.check_model(full_check=True) fails: {str(e).strip()}")
        arts.append(m)

    # ---- stages: contents -----------------------------------------------
    ties_by_member = {}  # param name -> tie group
    for t in man["ties"]:
        for mem in t["members"]:
            ties_by_member[mem["param"]] = t
    stage_in = []   # per stage: {name: manifest entry}
    stage_out = []
    stage_inits = []
    node_users = {}  # value name -> set of stages whose nodes read it
    summaries = []
    for i, (st, m) in enumerate(zip(stages_m, arts)):
        where = f"stage {i} ({st['artifact']})"
        stage_in.append({x["name"]: x for x in st["inputs"]})
        stage_out.append({x["name"]: x for x in st["outputs"]})
        if m is None:
            stage_inits.append({})
            continue
        g = m.graph
        inits = {t.name: t for t in g.initializer}
        stage_inits.append(inits)
        ck.expect(len(inits) == len(g.initializer), f"{where}: duplicate initializer names")

        # inputs / outputs, in order
        g_inputs = [vi for vi in g.input]
        in_names = [vi.name for vi in g_inputs]
        want_in = [x["name"] for x in st["inputs"]]
        ck.expect(in_names == want_in, f"{where}: graph inputs {in_names} != manifest inputs {want_in}")
        out_names = [vi.name for vi in g.output]
        want_out = [x["name"] for x in st["outputs"]]
        ck.expect(out_names == want_out, f"{where}: graph outputs {out_names} != manifest outputs {want_out}")
        for x, vi in zip(st["inputs"], g_inputs):
            check_tensor_entry(ck, f"{where}: input '{x['name']}'", x, vi)
        for x, vi in zip(st["outputs"], g.output):
            check_tensor_entry(ck, f"{where}: output '{x['name']}'", x, vi)
        ck.expect(len(set(in_names)) == len(in_names), f"{where}: duplicate graph inputs")
        ck.expect(len(set(out_names)) == len(out_names), f"{where}: duplicate graph outputs")
        for nm in set(in_names) & set(out_names):
            ck.fail(f"{where}: '{nm}' is both an input and an output (relayed)")
        for nm in set(in_names) & set(inits):
            ck.fail(f"{where}: '{nm}' is both a graph input and an initializer")

        # nodes
        used = set()
        placed, cloned, order = [], [], []
        for n in g.node:
            used.update(x for x in n.input if x)
            k = node_key(n)
            if k.startswith(TIE_NODE_PREFIX):
                check_tie_node(ck, where, i, n, st, ties_by_member)
                continue
            if k not in src.index:
                ck.fail(f"{where}: node '{k}' ({n.op_type}) is not a node of the source model")
                continue
            si = src.index[k]
            if node_signature(n) != node_signature(src.nodes[si]) and not src.unshared_only(n, src.nodes[si]):
                ck.fail(f"{where}: node '{k}' differs from the source node "
                        f"(op/inputs/outputs/attributes): {n.op_type}{list(n.input)}->{list(n.output)} vs "
                        f"{src.nodes[si].op_type}{list(src.nodes[si].input)}->{list(src.nodes[si].output)}")
            order.append(si)
            stage_of_node.setdefault(si, []).append(i)
            (cloned if src.const_like[si] else placed).append(si)
            if src.nodes[si].op_type == "Identity" and src.nodes[si].output[0] in src.identity_of_init:
                ck.fail(f"{where}: node '{k}' (Identity of initializer '{src.nodes[si].input[0]}') should have "
                        f"become an initializer named '{src.nodes[si].output[0]}'")
        for a, b in zip(order, order[1:]):
            if not a < b:
                ck.fail(f"{where}: node '{node_key(src.nodes[b])}' comes after '{node_key(src.nodes[a])}' "
                        f"but precedes it in the source (or is repeated)")
        for v in used:
            node_users.setdefault(v, set()).add(i)

        nd = st["nodes"]
        ck.expect(nd["count"] == len(placed),
                  f"{where}: nodes.count is {nd['count']} but the stage holds {len(placed)} non-constant source nodes")
        ck.expect(nd["cloned"] == len(cloned),
                  f"{where}: nodes.cloned is {nd['cloned']} but the stage holds {len(cloned)} constant-like source nodes")
        first = node_key(src.nodes[placed[0]]) if placed else ""
        last = node_key(src.nodes[placed[-1]]) if placed else ""
        ck.expect(nd["first"] == first, f"{where}: nodes.first is {nd['first']!r}, expected {first!r}")
        ck.expect(nd["last"] == last, f"{where}: nodes.last is {nd['last']!r}, expected {last!r}")

        # params == initializers, with source data, each used
        params = {p["name"]: p for p in st["params"]}
        ck.expect(len(params) == len(st["params"]), f"{where}: duplicate names in params")
        for nm in sorted(set(params) - set(inits)):
            ck.fail(f"{where}: param '{nm}' listed in the manifest is not an initializer of the artifact")
        for nm in sorted(set(inits) - set(params)):
            ck.fail(f"{where}: initializer '{nm}' is not listed in the manifest's params")
        for nm, t in inits.items():
            arr = tensor_array(t)
            want = src.init_array(src.unshared.get(nm, nm))
            if want is None:
                ck.fail(f"{where}: initializer '{nm}' is neither a source initializer nor the output of an "
                        f"Identity of one")
            elif not same_data(arr, want):
                origin = nm if nm in src.inits else f"{src.identity_of_init[nm]} (via Identity)"
                ck.fail(f"{where}: initializer '{nm}' data differs from source initializer {origin}")
            if nm not in used and nm not in out_names:
                ck.fail(f"{where}: initializer '{nm}' is not used by any node of the stage")
            p = params.get(nm)
            if p is not None:
                ck.expect(p["dtype"] == dtype_name(t.data_type),
                          f"{where}: param '{nm}' dtype {p['dtype']!r} != initializer's {dtype_name(t.data_type)!r}")
                ck.expect(list(p["shape"]) == list(t.dims),
                          f"{where}: param '{nm}' shape {p['shape']} != initializer's {list(t.dims)}")
                ck.expect(p["bytes"] == arr.nbytes or t.data_type == TensorProto.STRING,
                          f"{where}: param '{nm}' bytes {p['bytes']} != {arr.nbytes}")
                ck.expect(p["original"] in src.inits or p["original"] in src.identity_of_init or
                          p["original"] in src.unshared,
                          f"{where}: param '{nm}' original name {p['original']!r} is not in the source model")
                is_float = dtype_name(t.data_type) in FLOAT_DTYPES
                if not src.parameters:
                    ck.expect(p["trainable"] == is_float,
                              f"{where}: param '{nm}' trainable is {p['trainable']} for dtype {dtype_name(t.data_type)}")
                else:
                    # A dynamo export: parameters train, buffers and non-float
                    # tensors never do; the exporter's other initializers may
                    # be folded copies of parameters (the training runs
                    # against PyTorch check which).
                    want = True if p["original"] in src.parameters else False if (
                        p["original"] in src.buffers or not is_float) else None
                    ck.expect(want is None or p["trainable"] == want,
                              f"{where}: param '{nm}' trainable is {p['trainable']}, but the graph signature "
                              f"makes it a {'parameter' if want else 'buffer or constant'}")
        # Identity-of-initializer outputs used here must be initializers here.
        for v in used:
            if v in src.identity_of_init:
                ck.expect(v in inits or v in in_names,
                          f"{where}: '{v}' (Identity of initializer '{src.identity_of_init[v]}') is used but "
                          f"is not an initializer of the stage")
        ck.expect(st["cost"]["param_bytes"] == sum(p["bytes"] for p in st["params"]),
                  f"{where}: cost.param_bytes {st['cost']['param_bytes']} != sum of params bytes")
        summaries.append(f"stage {i}  {st['artifact']}  ok: {len(placed)} nodes (+{len(cloned)} cloned), "
                         f"{len(inits)} params, {len(in_names)} in, {len(out_names)} out")

    # ---- every non-constant source node in exactly one stage -------------
    for si, n in enumerate(src.nodes):
        where_st = stage_of_node.get(si, [])
        if src.const_like[si]:
            continue
        if len(where_st) != 1:
            ck.fail(f"source node '{node_key(n)}' ({n.op_type}) is in {len(where_st)} stages {where_st}, expected exactly one")
    placed_stage = {si: sts[0] for si, sts in stage_of_node.items() if not src.const_like[si] and len(sts) == 1}

    # ---- chaining ----------------------------------------------------------
    edges = {}
    for e in man["edges"]:
        if e["value"] in edges:
            ck.fail(f"edge '{e['value']}' appears more than once in edges")
        edges[e["value"]] = e
    mi_stages = {x["name"]: x["stages"] for x in man["model_inputs"]}
    src_input_names = {vi.name for vi in src.inputs}
    for i, st in enumerate(stages_m):
        where = f"stage {i} ({st['artifact']})"
        for x in st["inputs"]:
            nm, source, f = x["name"], x["source"], x["from_stage"]
            w = f"{where}: input '{nm}'"
            if source == "model_input":
                ck.expect(nm in src_input_names, f"{w}: source 'model_input' but it is not a model input")
                ck.expect(f is None, f"{w}: a model input with from_stage {f}")
                ck.expect(i in mi_stages.get(nm, []), f"{w}: model_inputs['{nm}'].stages does not list stage {i}")
                continue
            ck.expect(nm not in src_input_names, f"{w}: a model input, but its source is {source!r}")
            if not (isinstance(f, int) and 0 <= f < i):
                ck.fail(f"{w}: from_stage {f} is not an earlier stage")
                continue
            ck.expect(nm in stage_out[f], f"{w}: not an output of its from_stage {f}")
            e = edges.get(nm)
            if ck.expect(e is not None, f"{w}: no edge carries it"):
                ck.expect(e["producer"] == f, f"{w}: from_stage {f} but edge producer is {e['producer']}")
                ck.expect(i in e["consumers"], f"{w}: edge consumers {e['consumers']} do not list stage {i}")
            if source == "edge":
                p = src.producer.get(nm)
                if p is None:
                    ck.fail(f"{w}: source 'edge' but no source node produces it")
                else:
                    ck.expect(placed_stage.get(p) == f,
                              f"{w}: from_stage {f} but its producer '{node_key(src.nodes[p])}' is placed in stage "
                              f"{placed_stage.get(p)}")
                    ck.expect(e is None or e["kind"] == "activation", f"{w}: an activation on a '{e and e['kind']}' edge")
            else:  # tie
                ck.expect(nm in src.inits or nm in src.identity_of_init,
                          f"{w}: source 'tie' but it is not a source initializer")
                ck.expect(nm in stage_inits[f], f"{w}: source 'tie' but stage {f} does not hold initializer '{nm}'")
                ck.expect(nm in ties_by_member and ties_by_member[nm]["policy"] == "transmit",
                          f"{w}: source 'tie' but '{nm}' is not a member of a transmitted tie group")
                ck.expect(e is None or e["kind"] == "param", f"{w}: a tied parameter on a '{e and e['kind']}' edge")
    for x in man["model_inputs"]:
        reading = [i for i in range(ns) if x["name"] in stage_in[i]]
        ck.expect(x["stages"] == reading,
                  f"model input '{x['name']}': manifest stages {x['stages']} but stages {reading} take it as input")

    for nm, e in edges.items():
        w = f"edge '{nm}'"
        pr, cons = e["producer"], e["consumers"]
        if not stage_ok(pr):
            ck.fail(f"{w}: producer stage {pr} does not exist")
            continue
        ck.expect(nm in stage_out[pr], f"{w}: not an output of its producer stage {pr}")
        ck.expect(cons == sorted(set(cons)) and all(stage_ok(c) and c > pr for c in cons),
                  f"{w}: consumers {cons} must be ascending stages after the producer {pr}")
        readers = [i for i in range(ns) if nm in stage_in[i]]
        ck.expect(readers == sorted(cons), f"{w}: consumers {cons} but stages {readers} take it as input")
        if nm in stage_out[pr]:
            ck.expect(stage_out[pr][nm]["to_stages"] == cons,
                      f"{w}: producer's output to_stages {stage_out[pr][nm]['to_stages']} != edge consumers {cons}")
            for key in ("dtype", "shape"):
                ck.expect(e[key] == stage_out[pr][nm][key],
                          f"{w}: {key} {e[key]!r} != producer output's {stage_out[pr][nm][key]!r}")
        ck.expect(e["differentiable"] == (e["dtype"] in FLOAT_DTYPES),
                  f"{w}: differentiable is {e['differentiable']} for dtype {e['dtype']}")
        ck.expect((e["kind"] == "param") == (nm in src.inits or nm in src.identity_of_init),
                  f"{w}: kind {e['kind']!r} does not match the value (initializer: {nm in src.inits})")
        if e["kind"] == "param":
            ck.expect(e["batch_dim"] is None, f"{w}: a param edge with batch_dim {e['batch_dim']}")

    model_out = {x["name"]: x["stage"] for x in man["model_outputs"]}
    for i, st in enumerate(stages_m):
        where = f"stage {i} ({st['artifact']})"
        for x in st["outputs"]:
            nm = x["name"]
            w = f"{where}: output '{nm}'"
            ck.expect(x["model_output"] == (nm in model_out and model_out[nm] == i),
                      f"{w}: model_output is {x['model_output']}, but model_outputs says "
                      f"{'stage %s' % model_out[nm] if nm in model_out else 'not a model output'}")
            e = edges.get(nm)
            if e is not None:
                ck.expect(e["producer"] == i, f"{w}: re-output of a value whose edge producer is stage {e['producer']} (relay)")
            else:
                ck.expect(x["to_stages"] == [], f"{w}: to_stages {x['to_stages']} but there is no edge for it")
                ck.expect(x["model_output"], f"{w}: neither a model output nor sent to another stage (dead output)")
            # Computed here (or a parameter held here), not received.
            p = src.producer.get(nm)
            if p is not None and not src.const_like[p]:
                ck.expect(placed_stage.get(p) == i,
                          f"{w}: computed by '{node_key(src.nodes[p])}' in stage {placed_stage.get(p)}, "
                          f"not in this stage (relay)")
            elif nm in src.inits or nm in src.identity_of_init:
                ck.expect(nm in stage_inits[i], f"{w}: a parameter output not held by this stage")
            elif p is None and nm not in src_input_names:
                ck.fail(f"{w}: no source node produces it")
    for nm, stg in model_out.items():
        if stage_ok(stg):
            ck.expect(nm in stage_out[stg], f"model output '{nm}': not an output of stage {stg}")
        for i in range(ns):
            if i != stg and nm in stage_out[i] and (nm not in edges or edges[nm]["producer"] != i):
                ck.fail(f"model output '{nm}': also output by stage {i}")

    # Cross-stage uses derived from placement: value v computed by a placed
    # node in stage p and read by nodes of stages C != p (or a model output
    # of another stage) -> exactly one edge p -> sorted(C), no relay.
    for v, users in node_users.items():
        p = src.producer.get(v)
        if p is None or src.const_like[p] or p not in placed_stage:
            continue
        ps = placed_stage[p]
        cons = sorted(u for u in users if u != ps)
        e = edges.get(v)
        if not cons:
            continue
        if not ck.expect(e is not None, f"value '{v}' (computed in stage {ps}) is read by stages {cons} but has no edge"):
            continue
        ck.expect(e["producer"] == ps and e["consumers"] == cons,
                  f"value '{v}': computed in stage {ps}, read by stages {cons}, but its edge is "
                  f"{e['producer']} -> {e['consumers']} (must be one direct edge to every consumer, no relay)")
        bad = [c for c in cons if c < ps]
        ck.expect(not bad, f"value '{v}': computed in stage {ps} but read by earlier stages {bad}")
    for nm, e in edges.items():
        if e["kind"] != "activation":
            continue
        p = src.producer.get(nm)
        if p is None or p not in placed_stage:
            continue
        readers = sorted(u for u in node_users.get(nm, set()) if u != placed_stage[p])
        ck.expect(readers == e["consumers"],
                  f"edge '{nm}': consumers {e['consumers']} but nodes of stages {readers} read it")

    # ---- ties ----------------------------------------------------------------
    check_ties(ck, man, src, stage_inits, stage_in, arts)

    # ---- totals ----------------------------------------------------------------
    tot = sum(st["cost"]["flops"] for st in stages_m)
    ck.expect(abs(man["cost"]["total_flops"] - tot) <= ns,
              f"cost.total_flops {man['cost']['total_flops']} != sum of stage flops {tot}")
    return ck, summaries


def check_tie_node(ck, where, i, n, st, ties_by_member):
    """A `ppc_tie/<param>` node rebuilds a transmitted tie member from a 'tie' input."""
    param = n.name[len(TIE_NODE_PREFIX):]
    w = f"{where}: tie node '{n.name}'"
    t = ties_by_member.get(param)
    if not ck.expect(t is not None and t["policy"] == "transmit",
                     f"{w}: '{param}' is not a member of a transmitted tie group"):
        return
    mem = next(mm for mm in t["members"] if mm["param"] == param)
    ck.expect(i in mem["stages"], f"{w}: tie member '{param}' does not list stage {i}")
    ck.expect(i != t["owner"], f"{w}: in the owner stage {i}")
    want_op = "Transpose" if mem["relation"] == "transpose" else "Identity"
    ck.expect(n.op_type == want_op and n.domain in ("", "ai.onnx"),
              f"{w}: op {n.op_type}, expected {want_op} for relation {mem['relation']!r}")
    ck.expect(list(n.output) == [param], f"{w}: outputs {list(n.output)}, expected ['{param}']")
    tie_inputs = {x["name"] for x in st["inputs"] if x["source"] == "tie"}
    members = {mm["param"] for mm in t["members"]}
    ck.expect(len(n.input) == 1 and n.input[0] in tie_inputs and n.input[0] in members,
              f"{w}: input {list(n.input)} is not a 'tie' stage input of a member of group '{t['name']}'")


def check_ties(ck, man, src, stage_inits, stage_in, arts):
    for t in man["ties"]:
        w = f"tie group '{t['name']}'"
        mems = t["members"]
        first = src.init_array(mems[0]["param"])
        if first is None:
            ck.fail(f"{w}: first member '{mems[0]['param']}' is not a source initializer")
            continue
        for mm in mems:
            nm = mm["param"]
            a = src.init_array(nm)
            if not ck.expect(a is not None, f"{w}: member '{nm}' is not a source initializer"):
                continue
            if mm["relation"] == "identity":
                ck.expect(same_data(a, first), f"{w}: member '{nm}' (identity) data differs from '{mems[0]['param']}'")
            else:
                ck.expect(a.ndim == 2 and same_data(a, first.T.copy()),
                          f"{w}: member '{nm}' is not the transpose of '{mems[0]['param']}'")
            for i, inits in enumerate(stage_inits):
                if arts[i] is None:
                    continue
                holds = nm in inits
                rebuilt = any(n.name == TIE_NODE_PREFIX + nm for n in arts[i].graph.node)
                if i in mm["stages"]:
                    ck.expect(holds or rebuilt,
                              f"{w}: member '{nm}' lists stage {i}, which neither holds nor rebuilds it")
                else:
                    ck.expect(not holds and not rebuilt,
                              f"{w}: stage {i} holds member '{nm}' but is not in its stages {mm['stages']}")
                if t["policy"] == "transmit" and i != t["owner"]:
                    ck.expect(not holds, f"{w}: transmitted, but non-owner stage {i} stores member '{nm}'")
        if t["policy"] == "transmit":
            holders = sorted({s for mm in mems for s in mm["stages"]} - {t["owner"]})
            for i in holders:
                ck.expect(any(x["source"] == "tie" and x["from_stage"] == t["owner"] for x in stage_in[i].values()),
                          f"{w}: transmitted, but stage {i} has no 'tie' input from owner stage {t['owner']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("outdir")
    ap.add_argument("--schema-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas"))
    args = ap.parse_args()
    ck, summaries = check(args.model, args.outdir, args.schema_dir)
    label = f"{os.path.basename(args.model)} -> {args.outdir}"
    if ck.problems:
        print(f"check_split: FAIL {label}: {len(ck.problems)} problem(s)", file=sys.stderr)
        for p in ck.problems[:MAX_REPORTED]:
            print(f"  {p}", file=sys.stderr)
        if len(ck.problems) > MAX_REPORTED:
            print(f"  ... and {len(ck.problems) - MAX_REPORTED} more", file=sys.stderr)
        sys.exit(1)
    for line in summaries:
        print(f"  {line}")
    print(f"check_split: OK {label}: {len(summaries)} stages")


if __name__ == "__main__":
    main()
