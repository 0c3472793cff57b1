#!/usr/bin/env bash
# Bad input: each mistake gets ONE line on stderr naming the file, the place
# and the problem, exit code 2, and leaves no output directory behind.
#   test_bad_input.sh PPC REPO_ROOT
set -uo pipefail
ppc=$1
root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
pass=0
fail=0

# expect NAME EXPECTED_SUBSTRING -- ppc args...
expect() {
  local name=$1 want=$2
  shift 3
  "$ppc" "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/stderr")
  if [[ $rc != 2 ]]; then
    echo "FAIL $name: exit code $rc, expected 2"; cat "$tmp/stderr"; fail=$((fail + 1)); return
  fi
  if [[ $lines != 1 ]]; then
    echo "FAIL $name: expected one line on stderr, got $lines:"; cat "$tmp/stderr"; fail=$((fail + 1)); return
  fi
  if ! grep -qF -- "$want" "$tmp/stderr"; then
    echo "FAIL $name: stderr does not contain: $want"; cat "$tmp/stderr"; fail=$((fail + 1)); return
  fi
  if compgen -G "$tmp/result*" >/dev/null || compgen -G "$tmp/.result*" >/dev/null; then
    echo "FAIL $name: an output directory was left behind:"; ls -a "$tmp"; fail=$((fail + 1)); return
  fi
  pass=$((pass + 1))
}

spec() { printf '%s' "$2" >"$tmp/$1"; }
M=samples/mlp/mlp.onnx
O="$tmp/result"

expect missing_model "nope.onnx: no such model file" -- split "$tmp/nope.onnx" --splits samples/mlp/spec.json -o "$O"
head -c 3000 /dev/urandom >"$tmp/corrupt.onnx"
expect corrupt_model "corrupt.onnx: not an ONNX model" -- split "$tmp/corrupt.onnx" --splits samples/mlp/spec.json -o "$O"
# Newer than the ONNX library knows, and external data that is missing,
# leaves the model's folder or names a folder (found by fuzzing: an uncaught
# read error).
"${PPC_PYTHON:-/usr/bin/python3}" - "$tmp" <<'PYEOF'
import sys, onnx
d = sys.argv[1]
def load():
    return onnx.load("samples/mlp/mlp.onnx")
m = load(); m.ir_version = 99; onnx.save(m, d + "/ir99.onnx")
m = load(); m.opset_import[0].version = 40; onnx.save(m, d + "/opset40.onnx")
for name, loc in (("nodata", "nodata.onnx.data"), ("escape", "../escape.data"), ("folder", ".")):
    m = load()
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    del t.external_data[:]
    e = t.external_data.add(); e.key = "location"; e.value = loc
    onnx.save(m, f"{d}/{name}.onnx")
# An initializer whose bytes are fewer than its shape needs, in the model and
# in its external data file (found by fuzzing: ONNX's shape inference
# overflowed its buffer).
m = load(); t = m.graph.initializer[0]; t.raw_data = t.raw_data[:-4]; onnx.save(m, d + "/rawshort.onnx")
m = load(); t = m.graph.initializer[0]
open(d + "/short.data", "wb").write(t.raw_data)
t.ClearField("raw_data"); t.data_location = onnx.TensorProto.EXTERNAL
for k, v in (("location", "short.data"), ("length", str(len(open(d + "/short.data", "rb").read()) - 4))):
    e = t.external_data.add(); e.key = k; e.value = v
onnx.save(m, d + "/extshort.onnx")
# An initializer without data whose shape's size overflows int64 (found by
# fuzzing: the element count overflowed).
m = load(); t = m.graph.initializer[0]; t.ClearField("raw_data"); del t.dims[:]; t.dims.extend([2**62, 50])
onnx.save(m, d + "/hugeshape.onnx")
# A value of unknown rank (Reshape to a shape of unknown length) between two
# modules: a legal cut position that no valid ONNX stage can serve.
from onnx import helper, TensorProto
g = helper.make_graph(
    [helper.make_node("Reshape", ["x", "s"], ["h"], name="/a/Reshape"), helper.make_node("Neg", ["h"], ["y"], name="/b/Neg")],
    "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
          helper.make_tensor_value_info("s", TensorProto.INT64, ["n"])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
m.ir_version = 8
onnx.checker.check_model(m)
onnx.save(m, d + "/unranked.onnx")
# Models the checker passes and shape inference does not: a type error, a
# shape error, and an output declared with another type than its node makes.
# ppc's strict inference of the whole model finds them, and the stages'
# strict inference reports them, the failing stage named.
from onnx import numpy_helper
import numpy as np
def two_nodes(name, first, second, inits, y_type=TensorProto.FLOAT):
    g = helper.make_graph([first, second], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", y_type, ["a", "b"])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, d + "/" + name)
two_nodes("typeerr.onnx", helper.make_node("Add", ["x", "c"], ["h"], name="/a/Add"),
          helper.make_node("Neg", ["h"], ["y"], name="/b/Neg"), [numpy_helper.from_array(np.ones((2, 3), np.int64), "c")])
two_nodes("shapeerr.onnx", helper.make_node("Relu", ["x"], ["h"], name="/a/Relu"),
          helper.make_node("MatMul", ["h", "w"], ["y"], name="/b/MatMul"),
          [numpy_helper.from_array(np.ones((4, 5), np.float32), "w")])
two_nodes("outtype.onnx", helper.make_node("Relu", ["x"], ["h"], name="/a/Relu"),
          helper.make_node("Neg", ["h"], ["y"], name="/b/Neg"), [], y_type=TensorProto.INT64)
PYEOF
expect ir_too_new "ir99.onnx: IR version 99 is newer than ppc reads (IR versions up to" -- split "$tmp/ir99.onnx" --stages 2 -o "$O"
expect opset_too_new "opset40.onnx: opset 40 of domain 'ai.onnx' is newer than ppc knows (up to" -- split "$tmp/opset40.onnx" --stages 2 -o "$O"
expect external_data_missing "nodata.onnx: initializer 'layer0.lin.weight': cannot read external data file" -- split "$tmp/nodata.onnx" --stages 2 -o "$O"
expect external_data_escapes "escape.onnx: initializer 'layer0.lin.weight': external data location '../escape.data' leaves the model's folder" -- split "$tmp/escape.onnx" --stages 2 -o "$O"
expect external_data_folder "folder.onnx: initializer 'layer0.lin.weight': external data location '.' is not a regular file" -- split "$tmp/folder.onnx" --stages 2 -o "$O"
expect huge_shape "hugeshape.onnx: initializer 'layer0.lin.weight' has a bad shape (dimension 4611686018427387904)" -- split "$tmp/hugeshape.onnx" --stages 2 -o "$O"
expect raw_data_short "rawshort.onnx: initializer 'layer0.lin.weight' holds 1048572 bytes, its type and shape need 1048576" -- split "$tmp/rawshort.onnx" --stages 2 -o "$O"
expect external_data_short "extshort.onnx: initializer 'layer0.lin.weight' holds 1048572 bytes, its type and shape need 1048576" -- split "$tmp/extshort.onnx" --stages 2 -o "$O"
spec cut_a.json '{"version": 1, "split_points": [{"module": "a", "at": "end"}]}'
expect unranked_cut "cut_a.json:1:33: module 'a' at end: value 'h' (output of node '/a/Reshape') would cross from stage 0 to stage 1, but its rank is unknown" -- split "$tmp/unranked.onnx" --splits "$tmp/cut_a.json" -o "$O"
expect stage_type_error "stage 0 fails the ONNX checker: [ShapeInferenceError] (op_type:Add, node name: /a/Add): B has inconsistent type tensor(int64)" -- split "$tmp/typeerr.onnx" --splits "$tmp/cut_a.json" -o "$O"
expect stage_shape_error "stage 1 fails the ONNX checker: [ShapeInferenceError] Inference error(s): (op_type:MatMul, node name: /b/MatMul): [ShapeInferenceError] Incompatible dimensions for matrix multiplication" -- split "$tmp/shapeerr.onnx" --splits "$tmp/cut_a.json" -o "$O"
expect stage_output_type "stage 1 fails the ONNX checker: [ShapeInferenceError] Inference error(s): (op_type:Neg, node name: /b/Neg): [TypeInferenceError] Inferred elem type differs from existing elem type: (FLOAT) vs (INT64)" -- split "$tmp/outtype.onnx" --splits "$tmp/cut_a.json" -o "$O"
printf 'hello' >"$tmp/weird.bin"
expect unknown_format "unknown model format '.bin'" -- split "$tmp/weird.bin" --splits samples/mlp/spec.json -o "$O"
expect missing_spec "nospec.json: cannot read file" -- split $M --splits "$tmp/nospec.json" -o "$O"
spec notjson.json $'{\n  "version": 1,\n  "split_points": [\n    {"module": "layer0" "at": "end"}\n  ]\n}'
expect not_json "notjson.json:4:25: expected ',' or '}'" -- split $M --splits "$tmp/notjson.json" -o "$O"
spec unknown_key.json $'{"version": 1,\n "split_point": []}'
expect unknown_key "unknown_key.json:2:2: unknown key 'split_point' in split spec (did you mean 'split_points'?)" -- split $M --splits "$tmp/unknown_key.json" -o "$O"
spec bad_point_key.json $'{"version": 1, "split_points": [\n  {"modul": "layer0"}]}'
expect bad_point_key "bad_point_key.json:2:4: unknown key 'modul' in split point (did you mean 'module'?)" -- split $M --splits "$tmp/bad_point_key.json" -o "$O"
spec unknown_module.json $'{"version": 1, "split_points": [\n  {"module": "layer9", "at": "end"}]}'
expect unknown_module "unknown_module.json:2:3: unknown module 'layer9' (did you mean" -- split $M --splits "$tmp/unknown_module.json" -o "$O"
spec unknown_node.json $'{"version": 1, "split_points": [{"node": "/layer1/relu/Relux"}]}'
expect unknown_node "unknown node '/layer1/relu/Relux' (did you mean '/layer1/relu/Relu'" -- split $M --splits "$tmp/unknown_node.json" -o "$O"
spec unknown_value.json $'{"version": 1, "split_points": [{"value": "/layer1/relu/Relu_output"}]}'
expect unknown_value "unknown value '/layer1/relu/Relu_output' (did you mean '/layer1/relu/Relu_output_0'" -- split $M --splits "$tmp/unknown_value.json" -o "$O"
spec input_value.json $'{"version": 1, "split_points": [{"value": "x"}]}'
expect input_value "value 'x' is a model input, not produced by a node" -- split $M --splits "$tmp/input_value.json" -o "$O"
spec out_of_order.json $'{"version": 1, "split_points": [\n  {"module": "layer2", "at": "end"},\n  {"module": "layer0", "at": "end"}]}'
expect out_of_order "out_of_order.json:3:3: split point module 'layer0' at end comes before the previous one" -- split $M --splits "$tmp/out_of_order.json" -o "$O"
spec empty_stage.json $'{"version": 1, "split_points": [\n  {"module": "layer0", "at": "end"},\n  {"module": "layer1", "at": "begin"}]}'
expect empty_stage "empty_stage.json:3:3: split point module 'layer1' at begin leaves stage 1 empty" -- split $M --splits "$tmp/empty_stage.json" -o "$O"
spec empty_first.json $'{"version": 1, "split_points": [{"module": "layer0", "at": "begin"}]}'
expect empty_first "leaves stage 0 empty" -- split $M --splits "$tmp/empty_first.json" -o "$O"
spec empty_last.json $'{"version": 1, "split_points": [{"module": "output_proj", "at": "end"}]}'
expect empty_last "leaves the last stage empty" -- split $M --splits "$tmp/empty_last.json" -o "$O"
spec too_many.json $'{"version": 1, "auto": {"stages": 99}}'
expect too_many_stages "too_many.json:1:35: 'auto.stages' is 99 but the graph has only 7 nodes" -- split $M --splits "$tmp/too_many.json" -o "$O"
spec version.json $'{"version": 2, "auto": {"stages": 2}}'
expect bad_version "version.json:1:13: unsupported split spec version 2" -- split $M --splits "$tmp/version.json" -o "$O"
spec tie.json $'{"version": 1, "auto": {"stages": 2}, "ties": {"groups": [["layer0.lin.weigth"]]}}'
expect bad_tie "tie group member 'layer0.lin.weigth' is not a parameter of the model (did you mean 'layer0.lin.weight'" -- split $M --splits "$tmp/tie.json" -o "$O"
spec input.json $'{"version": 1, "auto": {"stages": 2}, "inputs": {"y": {"batch_dim": 0}}}'
expect bad_input_name "input.json:1:50: unknown model input 'y'" -- split $M --splits "$tmp/input.json" -o "$O"
spec typed_dtype.json $'{"version": 1, "auto": {"stages": 2},\n "inputs": {"x": {"dtype": "int64"}}}'
expect declared_dtype_conflict "typed_dtype.json:2:28: input 'x' is float32 in the model, not int64" -- split $M --splits "$tmp/typed_dtype.json" -o "$O"
spec typed_shape.json $'{"version": 1, "auto": {"stages": 2},\n "inputs": {"x": {"shape": ["batch", 256]}}}'
expect declared_shape_conflict "typed_shape.json:2:38: dim 1 of input 'x' is 512 in the model, not 256" -- split $M --splits "$tmp/typed_shape.json" -o "$O"
spec typed_rank.json $'{"version": 1, "auto": {"stages": 2},\n "inputs": {"x": {"shape": [4]}}}'
expect declared_rank_conflict "input 'x' has rank 2 in the model [batch,512], not 1" -- split $M --splits "$tmp/typed_rank.json" -o "$O"
expect no_spec "give a split spec (--splits FILE) or --stages N" -- split $M -o "$O"
# Automatic partitioning: costs files, cost-model fields, impossible splits.
expect time_without_costs "balance 'time' needs measured costs: give --costs PROFILE.json" -- split $M --stages 2 --balance time -o "$O"
expect missing_costs "nocosts.json: cannot open the costs file" -- split $M --stages 2 --costs "$tmp/nocosts.json" -o "$O"
echo '{"stages": [{"f": 1, "b": 2}]}' >"$tmp/old_costs.json"
expect costs_without_nodes "old_costs.json: stage 0 has no 'first_node'/'last_node'" -- split $M --stages 2 --costs "$tmp/old_costs.json" -o "$O"
echo '{"stages": [{"f": 1, "b": 2, "first_node": "/layer0/lin/Gemm", "last_node": "/layer1/lin/Gemm"}]}' >"$tmp/part_costs.json"
expect costs_cover_part "part_costs.json: the profiled stages cover 3 of this model's 7 nodes" -- split $M --stages 2 --costs "$tmp/part_costs.json" -o "$O"
echo '{"version": 1, "auto": {"stages": 2, "memory_cap_mib": 1}}' >"$tmp/cap.json"
expect memory_cap "no split into 2 stages fits 'auto.memory_cap_mib' 1 MiB" -- split $M --splits "$tmp/cap.json" -o "$O"
echo '{"version": 1, "auto": {"stages": 3, "cut_at": "module", "module_depth": 1}}' >"$tmp/depth.json"
expect module_cuts "cuts at module depth 1" -- split samples/skip/skip.onnx --splits "$tmp/depth.json" --stages 9 -o "$O"
expect unknown_dim "--dim seq=16: samples/mlp/mlp.onnx has no symbolic input dim 'seq' (it has: batch)" -- split $M --stages 2 --dim seq=16 -o "$O"
expect bad_dim "--dim seq: expected NAME=N with N >= 1" -- split $M --stages 2 --dim seq -o "$O"
expect bad_dim_suffix "--dim seq=12abc: expected NAME=N with N >= 1" -- split samples/tinygpt/tinygpt.onnx --stages 2 --dim seq=12abc -o "$O"
expect balance_needs_auto "--balance needs an automatic split" -- split $M --splits samples/mlp/spec.json --balance params -o "$O"
expect bad_flag "ppc: error:" -- split $M --frobnicate -o "$O"
expect inspect_missing "no such manifest" -- inspect "$tmp/nothing"

# TorchScript (.pt) input.
T=samples/mlp/mlp_traced.pt
head -c 3000 /dev/urandom >"$tmp/garbage.pt"
expect ts_garbage "garbage.pt: cannot load TorchScript: PytorchStreamReader failed reading zip archive" -- split "$tmp/garbage.pt" --splits samples/mlp/spec.json -o "$O"
# A torch.save()d state dict is a zip archive too, but no TorchScript.
expect ts_state_dict "mlp_params.pt: cannot load TorchScript:" -- split samples/mlp/mlp_params.pt --splits samples/mlp/spec.json -o "$O"
expect ts_unknown_module "unknown_module.json:2:3: unknown module 'layer9' (did you mean 'layer0', 'layer1' or 'layer2'?)" -- split $T --splits "$tmp/unknown_module.json" -o "$O"
# Models made at test time (torch.jit.script needs the class source in a file):
#   nofwd.pt  a scripted module whose only method is an @torch.jit.export'ed
#             `encode`: it really has no `forward`;
#   cf.pt     forward is `x = self.pre(x); if x.sum() > 0: x = self.inner(x); return self.post(x)`:
#             module `inner` (a Linear wrapper, `inner.lin`) is called only inside the prim::If block.
cat >"$tmp/make_ts.py" <<'EOF_PY'
import sys
import torch


class NoForward(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    @torch.jit.export
    def encode(self, x):
        return self.lin(x)


class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


class ControlFlow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = torch.nn.Linear(4, 4)
        self.inner = Inner()
        self.post = torch.nn.Linear(4, 4)

    def forward(self, x):
        x = self.pre(x)
        if x.sum() > 0:
            x = self.inner(x)
        return self.post(x)


torch.manual_seed(0)
m = torch.jit.script(NoForward())
assert not m._c._has_method("forward")
m.save(sys.argv[1] + "/nofwd.pt")
torch.jit.script(ControlFlow()).save(sys.argv[1] + "/cf.pt")
EOF_PY
if "${PPC_PYTHON:-/usr/bin/python3}" "$tmp/make_ts.py" "$tmp" >"$tmp/make_ts.log" 2>&1; then
  expect ts_no_forward "nofwd.pt: the TorchScript module has no 'forward' method" -- split "$tmp/nofwd.pt" --splits samples/mlp/spec.json -o "$O"
  spec inner.json $'{"version": 1, "split_points": [\n  {"module": "inner", "at": "end"}]}'
  expect ts_inside_control_flow "inner.json:2:3: module 'inner' is inside control-flow node 'prim::If' (prim::If); a cut cannot fall inside a block" -- split "$tmp/cf.pt" --splits "$tmp/inner.json" -o "$O"
  spec inner_lin.json $'{"version": 1, "split_points": [{"module": "inner.lin", "at": "begin"}]}'
  expect ts_inside_control_flow_sub "module 'inner.lin' is inside control-flow node 'prim::If' (prim::If)" -- split "$tmp/cf.pt" --splits "$tmp/inner_lin.json" -o "$O"
  spec prre.json $'{"version": 1, "split_points": [{"module": "prre", "at": "end"}]}'
  expect ts_cf_unknown_module "unknown module 'prre' (did you mean 'pre'?)" -- split "$tmp/cf.pt" --splits "$tmp/prre.json" -o "$O"
  # The same model exported to ONNX: `inner` lives in the If node's then_branch.
  if "${PPC_PYTHON:-/usr/bin/python3}" -c 'import sys, torch; torch.onnx.export(torch.jit.load(sys.argv[1] + "/cf.pt"), (torch.randn(2, 4),), sys.argv[1] + "/cf.onnx", opset_version=17, input_names=["x"], output_names=["y"], **({"dynamo": False} if torch.__version__ >= "2" else {}))' "$tmp" >>"$tmp/make_ts.log" 2>&1; then
    expect onnx_inside_control_flow "inner.json:2:3: module 'inner' is inside control-flow node '/If' (If); a cut cannot fall inside a block" -- split "$tmp/cf.onnx" --splits "$tmp/inner.json" -o "$O"
  else
    echo "FAIL onnx_inside_control_flow: could not export cf.pt to ONNX:"; cat "$tmp/make_ts.log"; fail=$((fail + 1))
  fi
else
  echo "FAIL ts_models: could not create the TorchScript test models:"; cat "$tmp/make_ts.log"; fail=$((fail + 1))
fi

# A foreign directory is never replaced.
mkdir -p "$tmp/foreign" && echo keep >"$tmp/foreign/notes.txt"
"$ppc" split $M --splits samples/mlp/spec.json -o "$tmp/foreign" >/dev/null 2>"$tmp/stderr"
if [[ $? == 2 ]] && grep -q "refusing to replace" "$tmp/stderr" && [[ -f "$tmp/foreign/notes.txt" ]]; then pass=$((pass + 1)); else echo "FAIL foreign_dir"; cat "$tmp/stderr"; fail=$((fail + 1)); fi
rm -rf "$tmp/foreign"

# A failing run leaves an earlier good out/ exactly as it was.
"$ppc" split $M --splits samples/mlp/spec.json -o "$tmp/good" >/dev/null 2>&1
before=$(cd "$tmp/good" && sha256sum * | sha256sum)
"$ppc" split $M --splits "$tmp/unknown_module.json" -o "$tmp/good" >/dev/null 2>&1
after=$(cd "$tmp/good" && sha256sum * | sha256sum)
leftovers=$(ls -a "$tmp" | grep -c 'ppc-tmp' || true)
if [[ "$before" == "$after" && $leftovers == 0 ]]; then pass=$((pass + 1)); else echo "FAIL failed_run_keeps_out"; fail=$((fail + 1)); fi
# A tampered artifact is caught by inspect.
printf 'x' >>"$tmp/good/stage1.onnx"
"$ppc" inspect "$tmp/good" >/dev/null 2>"$tmp/stderr"
if [[ $? == 2 ]] && grep -q "stage1.onnx: sha256 does not match" "$tmp/stderr"; then pass=$((pass + 1)); else echo "FAIL tampered_artifact"; cat "$tmp/stderr"; fail=$((fail + 1)); fi
# An artifact that is not a readable file: one line naming it, exit 2 (was "internal error", exit 1).
"$ppc" split $M --splits samples/mlp/spec.json -o "$tmp/dirart" >/dev/null 2>&1
rm "$tmp/dirart/stage1.onnx" && mkdir "$tmp/dirart/stage1.onnx"
"$ppc" inspect "$tmp/dirart" >/dev/null 2>"$tmp/stderr"
if [[ $? == 2 ]] && [[ $(wc -l <"$tmp/stderr") == 1 ]] && grep -q "^ppc: error: cannot read .*dirart/stage1.onnx: Is a directory" "$tmp/stderr"; then pass=$((pass + 1)); else echo "FAIL artifact_is_a_directory"; cat "$tmp/stderr"; fail=$((fail + 1)); fi

echo "$pass passed, $fail failed"
[[ $fail == 0 ]]
