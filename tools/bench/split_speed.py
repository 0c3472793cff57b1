"""ppc split speed: synthetic chains with skips, 10k / 100k / 1M nodes, into 8 stages.

Usage:  .venv/bin/python tools/bench/split_speed.py [--build build] [--sizes 10000,100000,1000000]
            [--repeat 3] [--stages 8] [--width 4] [--extract-nodes 2000] [--workdir DIR]
            [--baseline OTHER_PPC]
        .venv/bin/python tools/bench/split_speed.py --smoke

The model (written with onnx.helper, cached under --workdir): input x [batch, W]
then blocks of

    m = MatMul(h, W_i)  a = Add(m, b_i)  r = Relu(a)  h' = Add(r, h)       (residual)

named /blocks.i/lin/MatMul, /blocks.i/lin/Add, /blocks.i/act/Relu,
/blocks.i/Add, and after every 8th block a long skip
h' = Add(h', h of 8 blocks before) (/blocks.i/skip/Add), so that cuts cross
skip connections. Weights are W x W floats (--width, default 4: 80 bytes per
block), so that the graph, not the weight bytes, is what is measured.

Each size is split by `ppc split` into --stages stages at the module split
points blocks.K (the end of every 1/stages of the blocks), as a whole
process: wall time, CPU time (user + system, all threads) and peak RSS
(the child's rusage from wait4), the median of --repeat runs, and the growth of both from one size to the next
(10x more nodes should cost 10x, not 100x). Then Python's
onnx.utils.extract_model is timed on a chain of --extract-nodes nodes for
the same 8 stages (one call per stage, what a user of onnx would write:
inputs and outputs of each stage by name, default options: it checks the
model and infers shapes, as ppc does), against ppc split of the same
model (median of --repeat). onnx before 1.16 extracts in roughly cubic
time: run it with the PyTorch 2.x environment's onnx (.venv).

--baseline OTHER_PPC: a second ppc binary (an older build) run alternately
with --build's, run for run, on the same models: one table for each, measured
in one series, so that a change in the machine's load falls on both alike.
Their outputs must be byte-identical (the script compares them: exit 1 if
not). extract_model is skipped.

--smoke: sizes 200 and 2000, 1 run each, extract_model at 200 nodes; no
timing assertions (tests/CMakeLists.txt runs it as bench_split_speed_smoke).
The script exits 1 where ppc fails or its stages do not add up to the
model's nodes.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIP_EVERY = 8  # a long skip after every 8th block, over 8 blocks


def block_plan(nodes):
    """The number of blocks whose nodes (4 per block, 5 with a long skip) come closest to `nodes`."""
    per_group = 4 * SKIP_EVERY + 1
    blocks = (nodes // per_group) * SKIP_EVERY
    rest = nodes - (blocks // SKIP_EVERY) * per_group
    blocks += min(rest // 4, SKIP_EVERY - 1)
    return blocks


def node_count(blocks):
    return 4 * blocks + blocks // SKIP_EVERY


def build_model(blocks, width, path):
    """Write the chain of `blocks` blocks to `path`; returns (stage cut blocks)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    h = "x"
    history = [h]
    for i in range(blocks):
        p = "blocks.%d" % i
        w = rng.standard_normal((width, width), dtype=np.float32) * 0.1
        b = rng.standard_normal((width,), dtype=np.float32) * 0.1
        inits.append(numpy_helper.from_array(w, p + ".lin.weight"))
        inits.append(numpy_helper.from_array(b, p + ".lin.bias"))
        nodes.append(helper.make_node("MatMul", [h, p + ".lin.weight"], ["/%s/lin/MatMul_output_0" % p],
                                      name="/%s/lin/MatMul" % p))
        nodes.append(helper.make_node("Add", ["/%s/lin/MatMul_output_0" % p, p + ".lin.bias"],
                                      ["/%s/lin/Add_output_0" % p], name="/%s/lin/Add" % p))
        nodes.append(helper.make_node("Relu", ["/%s/lin/Add_output_0" % p], ["/%s/act/Relu_output_0" % p],
                                      name="/%s/act/Relu" % p))
        out = "/%s/Add_output_0" % p
        nodes.append(helper.make_node("Add", ["/%s/act/Relu_output_0" % p, h], [out], name="/%s/Add" % p))
        if (i + 1) % SKIP_EVERY == 0:
            skip_out = "/%s/skip/Add_output_0" % p
            nodes.append(helper.make_node("Add", [out, history[-SKIP_EVERY]], [skip_out], name="/%s/skip/Add" % p))
            out = skip_out
        h = out
        history.append(h)
        if len(history) > SKIP_EVERY + 1:
            history.pop(0)
    nodes.append(helper.make_node("Identity", [h], ["y"], name="/out/Identity"))
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="split_speed")
    model.ir_version = 8
    onnx.save(model, path)


def cut_blocks(blocks, stages):
    """The last block of every stage but the last."""
    return [blocks * (s + 1) // stages - 1 for s in range(stages - 1)]


def model_for(workdir, nodes, width):
    """(path, blocks) of the chain closest to `nodes` nodes, built once per workdir."""
    blocks = block_plan(nodes)
    path = os.path.join(workdir, "chain_%d_w%d.onnx" % (blocks, width))
    if not os.path.exists(path):
        t0 = time.perf_counter()
        build_model(blocks, width, path + ".tmp")
        os.replace(path + ".tmp", path)
        print("  built %s (%d nodes, %.1f MiB) in %.1f s" % (os.path.basename(path), node_count(blocks) + 1,
                                                              os.path.getsize(path) / 2**20,
                                                              time.perf_counter() - t0), flush=True)
    return path, blocks


def write_spec(path, blocks, stages):
    spec = {"version": 1, "split_points": [{"module": "blocks.%d" % k, "at": "end"} for k in cut_blocks(blocks, stages)]}
    with open(path, "w") as f:
        json.dump(spec, f)


RUSAGE_WRAPPER = r"""
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
code = os.waitstatus_to_exitcode(status)
sys.stderr.write("\nSPLIT_SPEED %r %d %d %r\n" % (wall, ru.ru_maxrss, code, ru.ru_utime + ru.ru_stime))
sys.exit(code if code >= 0 else 1)
"""


def run_ppc(ppc, model, spec, out_dir):
    """(wall s, peak RSS KiB, summary text, CPU s) of one `ppc split`."""
    shutil.rmtree(out_dir, ignore_errors=True)
    p = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, ppc, "split", model, "--splits", spec, "-o", out_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = p.stderr.decode(errors="replace")
    line = [ln for ln in err.splitlines() if ln.startswith("SPLIT_SPEED ")]
    if p.returncode != 0 or not line:
        sys.stderr.write(err)
        raise SystemExit("ppc split %s failed (exit %d)" % (model, p.returncode))
    _, wall, rss, _, cpu = line[-1].split()
    return float(wall), int(rss), p.stdout.decode(), float(cpu)


def same_outputs(a, b):
    """Whether output folders a and b hold the same files with the same bytes."""
    names = sorted(os.listdir(a))
    if names != sorted(os.listdir(b)):
        return False
    for n in names:
        with open(os.path.join(a, n), "rb") as fa, open(os.path.join(b, n), "rb") as fb:
            if fa.read() != fb.read():
                return False
    return True


def measure_pair(ppc, baseline, workdir, nodes, width, stages, repeat):
    """Rows for `ppc` and `baseline`, run alternately (baseline first) on one model."""
    model, blocks = model_for(workdir, nodes, width)
    spec = os.path.join(workdir, "spec_%d_%d.json" % (blocks, stages))
    write_spec(spec, blocks, stages)
    outs = [os.path.join(workdir, "out_baseline"), os.path.join(workdir, "out")]
    runs = ([], [])
    for _ in range(repeat):
        for k, binary in ((0, baseline), (1, ppc)):
            runs[k].append(run_ppc(binary, model, spec, outs[k]))
    counts = stage_nodes(runs[1][0][2])
    if len(counts) != stages or sum(counts) != node_count(blocks) + 1:
        raise SystemExit("ppc split of %s: %d stages holding %d nodes, expected %d and %d"
                         % (model, len(counts), sum(counts), stages, node_count(blocks) + 1))
    if not same_outputs(outs[0], outs[1]):
        raise SystemExit("ppc split of %s: the outputs of %s and %s differ" % (model, baseline, ppc))
    for o in outs:
        shutil.rmtree(o, ignore_errors=True)
    return [{"nodes": node_count(blocks) + 1, "bytes": os.path.getsize(model), "walls": [r[0] for r in rs],
             "rss_kib": [r[1] for r in rs], "cpus": [r[3] for r in rs]} for rs in runs]


def stage_nodes(summary):
    return [int(ln.split("nodes ")[1].split()[0]) for ln in summary.splitlines() if ln.strip().startswith("stage ")]


def measure_ppc(ppc, workdir, nodes, width, stages, repeat):
    model, blocks = model_for(workdir, nodes, width)
    spec = os.path.join(workdir, "spec_%d_%d.json" % (blocks, stages))
    write_spec(spec, blocks, stages)
    out_dir = os.path.join(workdir, "out")
    runs = [run_ppc(ppc, model, spec, out_dir) for _ in range(repeat)]
    counts = stage_nodes(runs[0][2])
    if len(counts) != stages or sum(counts) != node_count(blocks) + 1:
        print(runs[0][2])
        raise SystemExit("ppc split of %s: %d stages holding %d nodes, expected %d and %d"
                         % (model, len(counts), sum(counts), stages, node_count(blocks) + 1))
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"nodes": node_count(blocks) + 1, "bytes": os.path.getsize(model),
            "walls": [r[0] for r in runs], "rss_kib": [r[1] for r in runs], "cpus": [r[3] for r in runs]}


def stage_io(blocks, stages):
    """The input and output value names of every stage of the chain, as extract_model wants them."""
    import onnx  # noqa: F401  (only to fail early where onnx is missing)
    cuts = cut_blocks(blocks, stages)
    bounds = [0] + [k + 1 for k in cuts] + [blocks]

    def block_out(i):  # the value block i hands on
        p = "/blocks.%d" % i
        return p + ("/skip/Add_output_0" if (i + 1) % SKIP_EVERY == 0 else "/Add_output_0")

    def live_after(i):  # values made by blocks <= i and read by blocks > i
        vals = [block_out(i)]
        last_skip = (i // SKIP_EVERY) * SKIP_EVERY + SKIP_EVERY - 1  # the next block with a long skip
        src = last_skip - SKIP_EVERY  # it reads the output of this block (x where < 0)
        if src < i and last_skip > i and last_skip < blocks:
            vals.append(block_out(src) if src >= 0 else "x")
        return vals

    io = []
    for s in range(stages):
        lo, hi = bounds[s], bounds[s + 1]
        ins = ["x"] if lo == 0 else live_after(lo - 1)
        outs = ["y"] if s == stages - 1 else [v for v in live_after(hi - 1) if v != "x"]  # x: read from the model
        io.append((sorted(set(ins)), sorted(set(outs))))
    return io


def measure_extract(workdir, nodes, width, stages, repeat):
    """Seconds for onnx.utils.extract_model to cut every stage, and ppc's for the same model (filled later)."""
    import onnx.utils
    model, blocks = model_for(workdir, nodes, width)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for s, (ins, outs) in enumerate(stage_io(blocks, stages)):
            onnx.utils.extract_model(model, os.path.join(workdir, "extract_stage%d.onnx" % s), ins, outs)
        times.append(time.perf_counter() - t0)
    for s in range(stages):
        path = os.path.join(workdir, "extract_stage%d.onnx" % s)
        if not os.path.exists(path) or not onnx.load(path).graph.node:
            raise SystemExit("extract_model wrote no stage %d" % s)
        os.remove(path)
    return times


def fmt_bytes(kib):
    return "%.1f MiB" % (kib / 1024)


def report(rows, stages):
    print("\nppc split into %d stages, whole process (median of runs; RSS = peak resident set):" % stages)
    print("| nodes | model | runs | wall s (median) | min..max | CPU s (median) | peak RSS | time growth | RSS growth |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    prev = None
    for r in rows:
        wall, rss = statistics.median(r["walls"]), statistics.median(r["rss_kib"])
        growth = ("%.1fx / %.1fx nodes" % (wall / prev[0], r["nodes"] / prev[2])) if prev else "-"
        rgrowth = ("%.1fx" % (rss / prev[1])) if prev else "-"
        print("| %d | %.1f MiB | %d | %.3f | %.3f..%.3f | %.3f | %s | %s | %s |"
              % (r["nodes"], r["bytes"] / 2**20, len(r["walls"]), wall, min(r["walls"]), max(r["walls"]),
                 statistics.median(r["cpus"]), fmt_bytes(rss), growth, rgrowth))
        prev = (wall, rss, r["nodes"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated node counts")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", type=int, default=8)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--extract-nodes", type=int, default=2000, help="0: skip onnx.utils.extract_model")
    ap.add_argument("--workdir", help="where the models are built and kept (default: a temporary directory)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run each: check that it works")
    ap.add_argument("--baseline", help="another ppc binary, run alternately with --build's (outputs compared)")
    a = ap.parse_args()
    if a.smoke:
        a.sizes, a.repeat, a.extract_nodes = "200,2000", 1, 200
    ppc = os.path.join(a.build, "ppc")
    if not os.access(ppc, os.X_OK):
        ap.error("no ppc in %s (build it, or pass --build)" % a.build)
    work = a.workdir or tempfile.mkdtemp(prefix="ppc_split_speed_")
    os.makedirs(work, exist_ok=True)
    try:
        print("ppc split speed: chains of MatMul/Add/Relu blocks with residual adds and a skip over every %d "
              "blocks, width %d, %d stages at module split points; %d run(s) per size"
              % (SKIP_EVERY, a.width, a.stages, a.repeat), flush=True)
        if a.baseline:
            pairs = []
            for n in [int(s) for s in a.sizes.split(",")]:
                pairs.append(measure_pair(ppc, a.baseline, work, n, a.width, a.stages, a.repeat))
                print("  %d nodes: baseline %s s; ppc %s s (outputs identical)"
                      % (pairs[-1][0]["nodes"], ", ".join("%.3f" % w for w in pairs[-1][0]["walls"]),
                         ", ".join("%.3f" % w for w in pairs[-1][1]["walls"])), flush=True)
            print("\nbaseline: %s" % a.baseline)
            report([p[0] for p in pairs], a.stages)
            print("\nppc: %s" % ppc)
            report([p[1] for p in pairs], a.stages)
            return 0
        rows = []
        for n in [int(s) for s in a.sizes.split(",")]:
            rows.append(measure_ppc(ppc, work, n, a.width, a.stages, a.repeat))
            print("  %d nodes: %s s" % (rows[-1]["nodes"], ", ".join("%.3f" % w for w in rows[-1]["walls"])),
                  flush=True)
        report(rows, a.stages)
        if a.extract_nodes:
            ex = measure_extract(work, a.extract_nodes, a.width, a.stages, 1 if a.smoke else min(a.repeat, 3))
            ppc_row = measure_ppc(ppc, work, a.extract_nodes, a.width, a.stages, a.repeat)
            e, p = statistics.median(ex), statistics.median(ppc_row["walls"])
            print("\nonnx.utils.extract_model (onnx %s), %d stages of the %d-node chain (checker and shape inference on, "
                  "as ppc does): %.3f s (median of %d); ppc split of the same model, whole process: %.3f s; ratio %.0fx"
                  % (__import__("onnx").__version__, a.stages, ppc_row["nodes"], e, len(ex), p, e / p))
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
