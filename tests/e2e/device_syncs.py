#!/usr/bin/env python3
"""Where pprun waits for a device's queued work, on the stand-in device (tests/device/fake_device.cpp).

Usage: device_syncs.py --bin BUILD_DIR --preload libppc_fake_device.so

The mlp sample (3 stages, 3 ranks, 1F1B, 2 micro-batches, 3 training steps) on `--device privateuseone`,
three times: as is, with --trace and with --profile. The stand-in counts each process's waits for its stream.
- As is, a rank waits once per step (the step's statistics), never per action: the hot path queues work
  without waiting for it.
- With --trace or --profile a rank also waits once at the end of each compute action (F, B), so that an
  action's time is the time its kernels ran, not the time they took to queue.
Exits 1 when a count is outside these bounds.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS, CHUNKS = 3, 2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--preload", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        batches, split = os.path.join(work, "batches"), os.path.join(work, "mlp")
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "e2e", "make_batches.py"), "mlp", batches,
                        "--batches", "2", "--batch-size", "8", "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([os.path.join(a.bin, "ppc"), "split", os.path.join(ROOT, "samples", "mlp", "mlp.onnx"),
                        "--splits", os.path.join(ROOT, "samples", "mlp", "spec.json"), "-o", split], check=True,
                       stdout=subprocess.DEVNULL)
        ranks = len(json.load(open(os.path.join(split, "manifest.json")))["stages"])
        compute = STEPS * CHUNKS * 2  # F and B of every micro-batch, one stage per rank
        failed = 0
        for mode, extra in (("as is", []), ("--trace", ["--trace", os.path.join(work, "trace.json")]),
                            ("--profile", ["--profile", os.path.join(work, "profile.json")])):
            log = os.path.join(work, "syncs.txt")
            if os.path.exists(log):
                os.remove(log)
            env = dict(os.environ, LD_PRELOAD=os.path.abspath(a.preload), PPC_FAKE_DEVICE_SYNC_LOG=log)
            r = subprocess.run([os.path.join(a.bin, "pprun"), "--manifest", split, "--nproc", str(ranks), "--inputs",
                                batches, "--chunks", str(CHUNKS), "--device", "privateuseone", "--train", "--steps",
                                str(STEPS), "--loss", "mse", "--optimizer", "sgd", "--lr", "0.05", "--schedule",
                                "1f1b", "--threads", "1"] + extra, env=env, capture_output=True, text=True,
                               timeout=300)
            if r.returncode != 0:
                print("FAIL %s: pprun exit %d\n%s%s" % (mode, r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
                failed += 1
                continue
            counts = sorted((int(line.split()[1]) for line in open(log) if line.strip()), reverse=True)
            # The launcher, which computes nothing, writes a line too.
            rank_counts = counts[:ranks]
            if mode == "as is":
                lo, hi = 1, STEPS
            else:
                lo, hi = compute, compute + STEPS
            ok = len(counts) == ranks + 1 and all(lo <= c <= hi for c in rank_counts)
            failed += not ok
            print("%s %-9s waits per rank %s (expected %d..%d; %d compute actions and %d steps per rank)"
                  % ("ok  " if ok else "FAIL", mode, rank_counts, lo, hi, compute, STEPS))
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
