#!/usr/bin/python3
"""Check the ONNX stages pprun --save wrote.

Usage:  /usr/bin/python3 tests/e2e/check_onnx_save.py CKPT_DIR

Every stage artifact of CKPT_DIR/manifest.json passes
onnx.checker.check_model(full_check=True), and every tie group's members hold
equal values across the stages that keep them (a member with relation
"transpose" holds the transpose of the group's first member).  Prints one line
per tie group; exits 1 on a failure.
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    man = json.load(open(os.path.join(d, "manifest.json")))
    values = {}  # (stage, initializer) -> array
    for st in man["stages"]:
        m = onnx.load(os.path.join(d, st["artifact"]))
        onnx.checker.check_model(m, full_check=True)
        for init in m.graph.initializer:
            values[(st["index"], init.name)] = numpy_helper.to_array(init)
    print("%d stages pass the ONNX checker" % len(man["stages"]))
    ok = True
    for g in man.get("ties", []):
        if g["policy"] != "replicate":
            continue
        ref = None
        for mem in g["members"]:
            for s in mem["stages"]:
                v = values[(s, mem["param"])]
                if mem["relation"] == "transpose":
                    v = v.T
                if ref is None:
                    ref = v
                    continue
                diff = float(np.abs(ref - v).max())
                if diff > 0:
                    print("FAIL: tie %s: %s in stage %d differs by %g" % (g["name"], mem["param"], s, diff))
                    ok = False
        print("tie %s: %s consistent" % (g["name"], ", ".join(m["param"] for m in g["members"])))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
