#!/usr/bin/python3
"""Self-test of check_split.py: it must reject broken splits.

Usage:  /usr/bin/python3 tests/e2e/selftest_check_split.py BUILD_DIR OUT_TMP

Splits samples/skip (a skip connection crosses a stage) and samples/tinygpt
(transmitted tie), checks that check_split.py accepts them, then applies one
corruption at a time to a copy (manifest and/or artifacts, with sha256 fixed
up so that only the intended check can fire) and requires check_split.py to
fail with a message containing an expected fragment.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import onnx
from onnx import helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "tests", "e2e", "check_split.py")
SKIP_VAL = "/blocks.0/relu/Relu_output_0"   # stage 0 -> stage 2 in samples/skip/spec.json


def run_check(model, out):
    p = subprocess.run([sys.executable, CHECK, model, out, "--schema-dir", os.path.join(ROOT, "schemas")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


def load_man(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


def save_man(d, m):
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(m, f, indent=2)


def edit_stage(d, i, fn):
    """Apply fn(ModelProto) to stage i and fix its sha256 in the manifest."""
    m = load_man(d)
    path = os.path.join(d, m["stages"][i]["artifact"])
    model = onnx.load(path)
    fn(model)
    onnx.save(model, path)
    with open(path, "rb") as f:
        m["stages"][i]["sha256"] = hashlib.sha256(f.read()).hexdigest()
    save_man(d, m)


def mut_version(d):
    m = load_man(d); m["version"] = 2; save_man(d, m)


def mut_missing_key(d):
    m = load_man(d); del m["stages"][0]["params"]; save_man(d, m)


def mut_sha(d):
    m = load_man(d); m["stages"][1]["sha256"] = "0" * 64; save_man(d, m)


def mut_dtype(d):
    m = load_man(d); m["stages"][1]["inputs"][0]["dtype"] = "float16"; save_man(d, m)


def mut_input_order(d):
    m = load_man(d); m["stages"][2]["inputs"].reverse(); save_man(d, m)


def mut_drop_consumer(d):
    m = load_man(d)
    for e in m["edges"]:
        if e["value"] == SKIP_VAL:
            e["consumers"] = [1]
    save_man(d, m)


def mut_param_missing(d):
    m = load_man(d); m["stages"][0]["params"].pop(); save_man(d, m)


def mut_unused_init(d):
    def fn(model):
        t = numpy_helper.from_array(numpy_helper.to_array(model.graph.initializer[0]), "head.weight")
        model.graph.initializer.append(t)
    edit_stage(d, 0, fn)
    m = load_man(d)
    m["stages"][0]["params"].append(dict(m["stages"][2]["params"][-2]))
    save_man(d, m)


def mut_init_data(d):
    def fn(model):
        t = model.graph.initializer[0]
        a = numpy_helper.to_array(t).copy()
        a.flat[0] += 1.0
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    edit_stage(d, 0, fn)


def mut_drop_node(d):
    # Drop the last Relu of stage 1 and output its input instead: a valid
    # ONNX graph, but a source node is missing from every stage.
    def fn(model):
        g = model.graph
        n = [x for x in g.node if x.op_type == "Relu"][-1]
        for o in g.output:
            if o.name == n.output[0]:
                o.name = n.input[0]
        g.node.remove(n)
    edit_stage(d, 1, fn)
    m = load_man(d)
    for x in m["stages"][1]["outputs"]:
        if x["name"] == "/blocks.3/relu/Relu_output_0":
            x["name"] = "/blocks.3/lin/Gemm_output_0"
    save_man(d, m)


def mut_duplicate_node(d):
    # Stage 2 recomputes /head/Gemm a second time under the same name.
    def fn(model):
        g = model.graph
        n = onnx.NodeProto(); n.CopyFrom(g.node[-1])
        n.output[0] = "extra"
        g.node.append(n)
    edit_stage(d, 2, fn)


def mut_node_changed(d):
    def fn(model):
        n = [x for x in model.graph.node if x.op_type == "Gemm"][0]
        n.attribute.append(helper.make_attribute("alpha", 2.0))
    edit_stage(d, 1, fn)


def mut_relay(d):
    # Stage 1 receives the skip value and re-outputs it to stage 2.
    def fn(model):
        g = model.graph
        vi = onnx.ValueInfoProto(); vi.CopyFrom(g.input[0]); vi.name = SKIP_VAL
        g.input.append(vi)
        g.output.append(vi)
    edit_stage(d, 1, fn)
    m = load_man(d)
    s1, s2 = m["stages"][1], m["stages"][2]
    x = next(x for x in s2["inputs"] if x["name"] == SKIP_VAL)
    x["from_stage"] = 1
    s1["inputs"].append(dict(x, from_stage=0))
    s1["outputs"].append(dict(name=SKIP_VAL, dtype=x["dtype"], shape=x["shape"], batch_dim=x["batch_dim"],
                              to_stages=[2], model_output=False))
    m["stages"][0]["outputs"][0]["to_stages"] = [1]
    for e in m["edges"]:
        if e["value"] == SKIP_VAL:
            e["consumers"] = [1]
    m["edges"].append(dict(next(e for e in m["edges"] if e["value"] == SKIP_VAL), producer=1, consumers=[2]))
    save_man(d, m)


def mut_model_output_stage(d):
    m = load_man(d); m["model_outputs"][0]["stage"] = 1; save_man(d, m)


def mut_identity_init_data(d):
    # 'ln_f.weight' is Identity(h.0.ln_1.weight) in the source; stage 2 holds
    # it as an initializer that must carry the same data.
    def fn(model):
        t = next(t for t in model.graph.initializer if t.name == "ln_f.weight")
        a = numpy_helper.to_array(t).copy()
        a.flat[0] += 1.0
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    edit_stage(d, 2, fn)


def mut_tie_relation(d):
    m = load_man(d); m["ties"][0]["members"][1]["relation"] = "identity"; save_man(d, m)


SKIP_CASES = [
    (mut_version, "manifest.json/version: does not match manifest.schema.json"),
    (mut_missing_key, "'params' is a required property"),
    (mut_sha, "sha256 of the file does not match"),
    (mut_dtype, "manifest dtype 'float16'"),
    (mut_input_order, "graph inputs"),
    (mut_drop_consumer, "consumers [1] but stages [2] take it as input"),
    (mut_param_missing, "is not listed in the manifest's params"),
    (mut_unused_init, "is not used by any node"),
    (mut_init_data, "data differs from source initializer"),
    (mut_drop_node, "is in 0 stages"),
    (mut_duplicate_node, "repeated"),
    (mut_node_changed, "differs from the source node"),
    (mut_relay, "not in this stage (relay)"),
    (mut_model_output_stage, "model output 'y'"),
]
TINYGPT_CASES = [
    (mut_tie_relation, "data differs"),
    (mut_identity_init_data, "'ln_f.weight' data differs from source initializer h.0.ln_1.weight (via Identity)"),
]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: selftest_check_split.py BUILD_DIR OUT_TMP")
    ppc = sys.argv[1] if os.path.isfile(sys.argv[1]) else os.path.join(sys.argv[1], "ppc")  # BUILD_DIR or the binary
    tmp = os.path.abspath(sys.argv[2])
    os.makedirs(tmp, exist_ok=True)
    failed = 0
    for name, spec, cases in [("skip", "spec.json", SKIP_CASES), ("tinygpt", "spec_transmit.json", TINYGPT_CASES)]:
        model = os.path.join(ROOT, "samples", name, name + ".onnx")
        good = os.path.join(tmp, name + "_good")
        shutil.rmtree(good, ignore_errors=True)
        subprocess.run([ppc, "split", model, "--splits", os.path.join(ROOT, "samples", name, spec), "-o", good],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rc, out = run_check(model, good)
        if rc != 0:
            print(f"FAIL: check_split rejects the unmodified {name} split:\n{out}")
            sys.exit(1)
        for fn, fragment in cases:
            d = os.path.join(tmp, f"{name}_{fn.__name__}")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(good, d)
            fn(d)
            rc, out = run_check(model, d)
            if rc == 0:
                print(f"FAIL: {fn.__name__}: check_split accepted the corrupted split")
                failed += 1
            elif fragment not in out:
                print(f"FAIL: {fn.__name__}: rejected, but without '{fragment}':\n{out}")
                failed += 1
            else:
                line = next(l for l in out.splitlines() if fragment in l).strip()
                print(f"ok: {fn.__name__}: {line[:150]}")
    if failed:
        sys.exit(1)
    print("selftest_check_split: OK")


if __name__ == "__main__":
    main()
