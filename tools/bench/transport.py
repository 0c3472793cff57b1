"""Transport, side by side: one message between two ranks over Gloo on 127.0.0.1, pprun's path against raw c10d.

Usage:  .venv/bin/python tools/bench/transport.py [--build build-torch2] [--reps 31]
            [--sizes 1K,4K,16K,64K,256K,1M,4M,16M,64M]
        .venv/bin/python tools/bench/transport.py --smoke      (small sizes, values checked, no timings)

Runs two processes of <build>/transport_bench (tools/bench/transport_bench.cpp,
built with PPC_BUILD_BENCHMARKS) with 1 intra-op thread each. They play
ping-pong: rank 0 sends a message of the size, rank 1 sends it back, rank 0
times the round trip; the one-way time is half of it. Every repetition runs
each variant once, one after another, in the same process pair:

  raw c10d     ProcessGroupGloo send/recv in C++ (the library that
               torch.distributed's gloo backend wraps, without Python), one
               float tensor, receive buffers allocated once; its own group
               (own TCPStore and connections, 2 Gloo threads, a loopback
               device: torch.distributed's gloo defaults);
  Transport    pprun's Transport (connect_gloo, isend/irecv) on the same
               preallocated buffers: the wrapper alone;
  engine       the engine's path for one tensor (engine.cpp send_data /
               post_recv_data): a fresh receive buffer per message;
  raw c10d x2  the message as two tensors of half the size, two sends;
  engine x2    the engine's path for two tensors (a skip connection beside
               the main path): wire::pack into one message, a fresh packed
               receive buffer, wire::unpack; rank 1 packs again to answer.

It prints, per size, the median one-way time of --reps repetitions (the first
excluded), the bandwidth, and each pprun variant's time as a ratio to raw
c10d's with the same number of tensors (> 1: pprun slower). Run it with the
machine otherwise idle; compare the numbers of one run with each other.

--smoke: 1 KiB and 64 KiB, 3 repetitions, every echo checked (exit 1 on a
wrong value), no timings (tests/CMakeLists.txt runs it as bench_transport_smoke).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SIZES = "1K,4K,16K,64K,256K,1M,4M,16M,64M"
VARIANTS = [("raw1", "raw c10d", None), ("xport1", "Transport", "raw1"), ("eng1", "engine", "raw1"),
            ("raw2", "raw c10d x2", None), ("eng2", "engine x2 (packed)", "raw2")]
TIMEOUT_S = 600


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def human(n):
    for unit, k in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k and n % k == 0:
            return "%d %s" % (n // k, unit)
    return "%d B" % n


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_pair(build, sizes, reps, check):
    """{(bytes, variant): [one-way us per repetition]} from rank 0's output."""
    exe = os.path.join(build, "transport_bench")
    if not os.path.exists(exe):
        sys.exit("%s not found: build it (cmake --build %s --target transport_bench; PPC_BUILD_BENCHMARKS=ON)"
                 % (exe, build))
    port, raw_port = free_ports(2)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    args = ["--port", str(port), "--raw-port", str(raw_port), "--sizes", ",".join(map(str, sizes)), "--reps",
            str(reps)] + (["--check"] if check else [])
    procs = [subprocess.Popen([exe, "--rank", str(r)] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env) for r in (0, 1)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=TIMEOUT_S)[0])
        except subprocess.TimeoutExpired:
            for q in procs:  # ours, by their own handle
                if q.poll() is None:
                    q.kill()
            sys.exit("transport_bench did not finish within %d s" % TIMEOUT_S)
    for r, p in enumerate(procs):
        if p.returncode != 0:
            sys.exit("transport_bench rank %d failed (exit %d):\n%s" % (r, p.returncode, outs[r][-3000:]))
    res = {}
    for line in outs[0].splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].isdigit():
            res[(int(f[0]), f[1])] = [float(x) for x in f[2:]]
    for b in sizes:
        for v, _, _ in VARIANTS:
            if len(res.get((b, v), [])) != reps:
                sys.exit("transport_bench: no times for %s %s:\n%s" % (human(b), v, outs[0][-3000:]))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-torch2"))
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated bytes (K, M suffixes)")
    ap.add_argument("--reps", type=int, default=31)
    ap.add_argument("--smoke", action="store_true", help="1 KiB and 64 KiB, 3 repetitions, values checked")
    a = ap.parse_args()
    if a.smoke:
        a.sizes, a.reps = "1K,64K", 3
    elif a.reps < 21:
        ap.error("--reps must be >= 21 (a median of >= 20, the first excluded)")
    sizes = [parse_size(s) for s in a.sizes.split(",")]
    if any(b < 8 or b % 8 for b in sizes):
        ap.error("sizes must be multiples of 8 bytes")
    res = run_pair(a.build, sizes, a.reps, check=True)
    print("transport: ping-pong between 2 processes over Gloo on 127.0.0.1, one-way time = round trip / 2; "
          "1 intra-op thread per process; %s" % ("smoke: values checked, no timings" if a.smoke else
                                                 "median of %d repetitions, first excluded" % (a.reps - 1)))
    if a.smoke:
        print("every echo equal to the message sent (%s; %d repetitions of %s)"
              % (", ".join(human(b) for b in sizes), a.reps, ", ".join(name for _, name, _ in VARIANTS)))
        return 0
    print("%-10s %-20s %12s %10s %12s" % ("size", "path", "one-way us", "GB/s", "vs raw c10d"))
    for b in sizes:
        med = {v: statistics.median(res[(b, v)][1:]) for v, _, _ in VARIANTS}
        for v, name, base in VARIANTS:
            vs = "%11.3fx" % (med[v] / med[base]) if base else "%12s" % "1"
            print("%-10s %-20s %12.1f %10.3f %s" % (human(b), name, med[v], b / med[v] / 1e3, vs))
    print("vs raw c10d: the time over raw c10d's with as many tensors (> 1: slower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
