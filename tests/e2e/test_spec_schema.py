#!/usr/bin/python3
"""schemas/split-spec.schema.json must accept exactly the specs ppc accepts.

Usage:  /usr/bin/python3 tests/e2e/test_spec_schema.py BUILD_DIR OUT_TMP

Each case is a spec for samples/mlp/mlp.onnx (names that exist in that model,
so ppc can only reject a case for its form).  For every case, the schema's
verdict and ppc's (`ppc split --emit manifest`) must agree.  Also validates
the manifest schema against a manifest ppc writes.
"""

import json
import os
import subprocess
import sys

from jsonschema import Draft202012Validator

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "samples", "mlp", "mlp.onnx")

SP = [{"module": "layer0"}]
V = {"version": 1}

CASES = [
    # (name, spec, valid)
    ("minimal", dict(V, split_points=SP), True),
    ("schema key", {"$schema": "x", "version": 1, "split_points": SP}, True),
    ("all forms", dict(V, split_points=[{"node": "/layer0/relu/Relu", "at": "end"}, {"module": "layer2", "at": "begin"},
                                        {"value": "/layer2/relu/Relu_output_0"}]), True),
    ("auto", dict(V, auto={"stages": 2}), True),
    ("auto balance", dict(V, auto={"stages": 2, "balance": "params"}), True),
    ("everything", dict(V, split_points=SP, ties={"detect_folded": True, "policy": "transmit",
                                                  "groups": [["layer0.lin.weight"],
                                                             {"members": ["layer1.lin.weight"], "policy": "replicate"}]},
                        inputs={"x": {"batch_dim": 0, "replicate": False}}, defaults={"schedule": "1f1b", "chunks": 4}),
     True),
    ("replicated input", dict(V, split_points=SP, inputs={"x": {"replicate": True}}), True),
    ("empty inputs", dict(V, split_points=SP, inputs={}), True),
    ("empty defaults", dict(V, split_points=SP, defaults={}), True),
    ("empty groups", dict(V, split_points=SP, ties={"groups": []}), True),
    # invalid
    ("no version", {"split_points": SP}, False),
    ("version 2", {"version": 2, "split_points": SP}, False),
    ("version string", {"version": "1", "split_points": SP}, False),
    ("unknown root key", dict(V, split_points=SP, stages=2), False),
    ("neither", dict(V), False),
    ("both", dict(V, split_points=SP, auto={"stages": 2}), False),
    ("empty split_points", dict(V, split_points=[]), False),
    ("two kinds", dict(V, split_points=[{"module": "layer0", "node": "/layer0/relu/Relu"}]), False),
    ("no kind", dict(V, split_points=[{"at": "end"}]), False),
    ("value with at", dict(V, split_points=[{"value": "/layer2/relu/Relu_output_0", "at": "end"}]), False),
    ("bad at", dict(V, split_points=[{"module": "layer0", "at": "middle"}]), False),
    ("empty node", dict(V, split_points=[{"node": ""}]), False),
    ("empty value", dict(V, split_points=[{"value": ""}]), False),
    ("unknown split key", dict(V, split_points=[{"module": "layer0", "after": True}]), False),
    ("split point not object", dict(V, split_points=["layer0"]), False),
    ("module not string", dict(V, split_points=[{"module": 3}]), False),
    ("auto 0", dict(V, auto={"stages": 0}), False),
    ("auto huge", dict(V, auto={"stages": 100001}), False),
    ("auto no stages", dict(V, auto={"balance": "flops"}), False),
    ("auto bad balance", dict(V, auto={"stages": 2, "balance": "memory"}), False),
    ("auto unknown key", dict(V, auto={"stages": 2, "x": 1}), False),
    ("auto stages string", dict(V, auto={"stages": "2"}), False),
    ("ties unknown key", dict(V, split_points=SP, ties={"detect": True}), False),
    ("ties bad policy", dict(V, split_points=SP, ties={"policy": "share"}), False),
    ("ties detect not bool", dict(V, split_points=SP, ties={"detect_folded": 1}), False),
    ("group empty", dict(V, split_points=SP, ties={"groups": [[]]}), False),
    ("group duplicate", dict(V, split_points=SP, ties={"groups": [["layer0.lin.weight", "layer0.lin.weight"]]}), False),
    ("group member not string", dict(V, split_points=SP, ties={"groups": [[1]]}), False),
    ("group object unknown key", dict(V, split_points=SP, ties={"groups": [{"members": ["layer0.lin.weight"], "x": 1}]}), False),
    ("group object no members", dict(V, split_points=SP, ties={"groups": [{"policy": "transmit"}]}), False),
    ("group object bad policy", dict(V, split_points=SP, ties={"groups": [{"members": ["layer0.lin.weight"], "policy": "x"}]}), False),
    ("groups not array", dict(V, split_points=SP, ties={"groups": {}}), False),
    ("inputs array", dict(V, split_points=SP, inputs=[{"x": {}}]), False),
    ("input unknown key", dict(V, split_points=SP, inputs={"x": {"dim": 0}}), False),
    ("input batch_dim negative", dict(V, split_points=SP, inputs={"x": {"batch_dim": -1}}), False),
    ("input batch_dim 65", dict(V, split_points=SP, inputs={"x": {"batch_dim": 65}}), False),
    ("input both", dict(V, split_points=SP, inputs={"x": {"batch_dim": 0, "replicate": True}}), False),
    ("input replicate not bool", dict(V, split_points=SP, inputs={"x": {"replicate": "yes"}}), False),
    ("defaults unknown key", dict(V, split_points=SP, defaults={"microbatches": 4}), False),
    ("defaults bad schedule", dict(V, split_points=SP, defaults={"schedule": "pipedream"}), False),
    ("defaults chunks 0", dict(V, split_points=SP, defaults={"chunks": 0}), False),
    ("defaults chunks huge", dict(V, split_points=SP, defaults={"chunks": 1000001}), False),
    ("defaults dp", dict(V, split_points=SP, defaults={"dp": 2}), True),
    ("defaults dp 0", dict(V, split_points=SP, defaults={"dp": 0}), False),
    ("defaults dp not an integer", dict(V, split_points=SP, defaults={"dp": 1.5}), False),
    ("root array", [V], False),
]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: test_spec_schema.py BUILD_DIR OUT_TMP")
    ppc = sys.argv[1] if os.path.isfile(sys.argv[1]) else os.path.join(sys.argv[1], "ppc")  # BUILD_DIR or the binary
    tmp = os.path.abspath(sys.argv[2])
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(ROOT, "schemas", "split-spec.schema.json")) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema)
    bad = 0
    for i, (name, spec, valid) in enumerate(CASES):
        path = os.path.join(tmp, f"case{i}.json")
        with open(path, "w") as f:
            json.dump(spec, f, indent=2)
        schema_ok = v.is_valid(spec)
        p = subprocess.run([ppc, "split", MODEL, "--splits", path, "--emit", "manifest"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ppc_ok = p.returncode == 0
        if schema_ok != valid or ppc_ok != valid:
            bad += 1
            print(f"FAIL {name}: expected {'valid' if valid else 'invalid'}; schema says "
                  f"{'valid' if schema_ok else 'invalid'}, ppc says {'valid' if ppc_ok else 'invalid'}"
                  f"{(': ' + p.stderr.strip().splitlines()[-1]) if p.stderr.strip() else ''}")
        else:
            print(f"ok   {name}")
    # The schedules the schema lists are exactly those ppc accepts (its error
    # for an unknown one lists them).
    schema_schedules = schema["properties"]["defaults"]["properties"]["schedule"]["enum"]
    path = os.path.join(tmp, "schedules.json")
    with open(path, "w") as f:
        json.dump(dict(V, split_points=SP, defaults={"schedule": "pipedream"}), f)
    p = subprocess.run([ppc, "split", MODEL, "--splits", path, "--emit", "manifest"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    listed = p.stderr.split("expected one of: ", 1)[-1].rstrip().rstrip(")").split(", ")
    if listed != schema_schedules:
        bad += 1
        print(f"FAIL schedules: the schema lists {schema_schedules}, ppc accepts {listed}")
    else:
        print(f"ok   schedules: {', '.join(listed)}")
    # The manifest schema is itself a valid 2020-12 schema.
    with open(os.path.join(ROOT, "schemas", "manifest.schema.json")) as f:
        Draft202012Validator.check_schema(json.load(f))
    if bad:
        sys.exit(1)
    print(f"test_spec_schema: OK, {len(CASES)} cases agree")


if __name__ == "__main__":
    main()
