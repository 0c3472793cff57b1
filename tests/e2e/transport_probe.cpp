// One rank of a multi-process check of the Gloo transport (driven by
// tests/e2e/test_transport.sh):
//   transport_probe --rank R --world-size W --port P --mode ring|allreduce|die [--timeout-ms T]
// ring: tensors go around the ring (several steps, small and large), values checked.
// allreduce: all_reduce_sum over ranks {0, W-1} (rank 1 stays out), then over all.
// die: like ring, but rank 1 exits at step 3; the others must fail with a
// PeerError naming rank 1 (exit code 1), never hang.
// stall: rank 1 stops answering at step 3 (sleeps, then exits); the others
// must fail after the timeout ("rank 1 did not answer within 5 s").
// cascade: rank 1 dies while rank 2 waits on rank 0 only; rank 2 must still
// name rank 1 (the first failure, recorded in the store by rank 0).
// allreduce-die: rank W-1 exits before the second all_reduce_sum over {0, W-1};
// rank 0 (in the all-reduce) and rank 1 (in the final world all-reduce) must
// both name rank W-1.
#include "runtime/transport/transport.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>

using ppc::runtime::PeerError;
using ppc::runtime::Transport;

namespace {

[[noreturn]] void fail(int rank, const std::string& msg) {
  std::cerr << "rank " << rank << ": FAIL: " << msg << std::endl;
  std::exit(2);
}

void check(bool ok, int rank, const std::string& what) {
  if (!ok) fail(rank, what);
}

void ring(Transport& t, int steps, int die_at, bool stall = false, bool cascade = false) {
  const int n = t.world_size(), r = t.rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  for (int step = 0; step < steps; ++step) {
    if (step == die_at && r == 1 && stall) {
      std::cerr << "rank 1: stalling at step " << step << " on purpose" << std::endl;
      std::this_thread::sleep_for(std::chrono::seconds(15));
      std::_Exit(3);
    }
    if (step == die_at && r == 2 && cascade) {
      // Depends on rank 0 only: learns of rank 1's death through rank 0's exit.
      at::Tensor never = at::empty({1});
      t.irecv(never, 0, 99)->wait();
    }
    if (step == die_at && r == 1) {
      std::cerr << "rank 1: exiting at step " << step << " on purpose" << std::endl;
      std::_Exit(3);
    }
    const int64_t len = step % 4 == 3 ? (1 << 20) : 16;  // some large messages too
    at::Tensor in = at::empty({len});
    auto recv = t.irecv(in, prev, static_cast<uint32_t>(step % 2));
    at::Tensor out = at::arange(len, at::kFloat) + 1000.0 * r + step;
    auto send = t.isend(out, next, static_cast<uint32_t>(step % 2));
    // The send first: towards a rank that died it fails at once, whatever
    // the receive (from a rank that may be blocked elsewhere) is doing.
    send->wait();
    recv->wait();
    at::Tensor expect = at::arange(len, at::kFloat) + 1000.0 * prev + step;
    check(at::equal(in, expect), r, "ring step " + std::to_string(step) + ": wrong values");
  }
}

void allreduce(Transport& t, bool die = false) {
  const int n = t.world_size(), r = t.rank();
  const std::vector<int> pair{0, n - 1};
  if (r == 0 || r == n - 1) {
    for (int round = 0; round < 3; ++round) {
      if (die && round == 1 && r == n - 1) {
        std::cerr << "rank " << r << ": exiting before round 1 on purpose" << std::endl;
        std::_Exit(3);
      }
      std::vector<at::Tensor> v{at::full({5}, double(r + 1 + round)), at::full({2, 3}, int64_t(10 * r), at::kLong),
                                at::arange(4, at::kFloat).view({2, 2}) * (r + 1)};
      t.all_reduce_sum(v, pair);
      const double s = (0 + 1 + round) + (n - 1 + 1 + round);
      check(at::equal(v[0], at::full({5}, s)), r, "pair sum of tensor 0");
      check(at::equal(v[1], at::full({2, 3}, int64_t(10 * (n - 1)), at::kLong)), r, "pair sum of tensor 1 (int64)");
      check(at::equal(v[2], at::arange(4, at::kFloat).view({2, 2}) * (1 + n)), r, "pair sum of tensor 2");
    }
  }
  std::vector<int> all;
  for (int i = 0; i < n; ++i) all.push_back(i);
  std::vector<at::Tensor> v{at::full({3}, double(r))};
  t.all_reduce_sum(v, all);
  check(at::equal(v[0], at::full({3}, double(n * (n - 1) / 2))), r, "world sum");
}

}  // namespace

int main(int argc, char** argv) {
  int rank = -1, world = -1, port = -1, timeout_ms = 5000;
  std::string mode;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--rank")
      rank = std::atoi(v.c_str());
    else if (k == "--world-size")
      world = std::atoi(v.c_str());
    else if (k == "--port")
      port = std::atoi(v.c_str());
    else if (k == "--mode")
      mode = v;
    else if (k == "--timeout-ms")
      timeout_ms = std::atoi(v.c_str());
    else {
      std::cerr << "unknown option " << k << std::endl;
      return 2;
    }
  }
  if (mode != "ring" && mode != "allreduce" && mode != "die" && mode != "stall" && mode != "cascade" &&
      mode != "allreduce-die") {
    std::cerr << "usage: transport_probe --rank R --world-size W --port P --mode "
                 "ring|allreduce|die|stall|cascade|allreduce-die"
              << std::endl;
    return 2;
  }
  at::set_num_threads(1);
  try {
    auto opts =
        ppc::runtime::rendezvous_from_env("127.0.0.1", port, rank, world, std::chrono::milliseconds(timeout_ms));
    const auto t0 = std::chrono::steady_clock::now();
    auto t = ppc::runtime::connect_gloo(opts);
    const auto t1 = std::chrono::steady_clock::now();
    if (mode == "ring") ring(*t, 12, -1);
    if (mode == "allreduce") allreduce(*t);
    if (mode == "allreduce-die") allreduce(*t, /*die=*/true);
    if (mode == "die") ring(*t, 1000, 3);
    if (mode == "stall") ring(*t, 1000, 3, /*stall=*/true);
    if (mode == "cascade") ring(*t, 1000, 3, false, /*cascade=*/true);
    t->barrier();
    const auto t2 = std::chrono::steady_clock::now();
    using ms = std::chrono::milliseconds;
    std::cout << "rank " << rank << ": " << mode << " ok (connect " << std::chrono::duration_cast<ms>(t1 - t0).count()
              << " ms, run " << std::chrono::duration_cast<ms>(t2 - t1).count() << " ms)" << std::endl;
    return 0;
  } catch (const PeerError& e) {
    std::cerr << "rank " << rank << ": peer error (rank " << e.rank() << "): " << e.what() << std::endl;
    // The process group is broken after a peer failure: do not run its
    // destructors (they may wait on the dead peer).
    std::fflush(nullptr);
    if (std::getenv("PROBE_NORMAL_EXIT")) return 1;  // to check that destructors do not hang
    std::_Exit(1);
  } catch (const std::exception& e) {
    std::cerr << "rank " << rank << ": error: " << e.what() << std::endl;
    std::fflush(nullptr);
    std::_Exit(2);
  }
}
