// Timing of min_bottleneck_partition (compute + communication on a DAG) against
// the compute-only min_max_partition on the same compute vector, in one
// process; and of the step search that follows it with measured costs
// (search_by_step: the charged searches and the simulator-driven refinement),
// once per size. Not a test: prints one line per size.
//   bench_chain_partition [stages=8]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/chain_partition.h"
#include "compiler/analysis/step_model.h"

namespace {

using ppc::analysis::ChainProblem;
using Rng = std::mt19937_64;

/// Random DAG: each item reads the previous one, often one of the 8 before,
/// and now and then any earlier item (a long skip).
ChainProblem random_dag(std::uint64_t seed, int n) {
  Rng rng(seed);
  std::uniform_real_distribution<double> u01(0, 1);
  ChainProblem p;
  p.compute.resize(n);
  for (double& x : p.compute) x = u01(rng) < 0.01 ? 5 + 15 * u01(rng) : u01(rng);
  std::vector<std::vector<int>> readers(n);
  for (int c = 1; c < n; ++c) {
    readers[c - 1].push_back(c);
    if (c >= 2 && u01(rng) < 0.7) {
      const int lo = std::max(0, c - 8);
      readers[lo + static_cast<int>(rng() % static_cast<unsigned>(c - 1 - lo))].push_back(c);
    }
    if (u01(rng) < 0.01) readers[static_cast<int>(rng() % static_cast<unsigned>(c))].push_back(c);
  }
  for (int prod = 0; prod < n; ++prod) {
    std::vector<int>& r = readers[prod];
    if (r.empty()) continue;
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    p.transfers.push_back({prod, r, 0.5 * u01(rng)});
  }
  return p;
}

/// Best (smallest) seconds per call of f over repetitions totalling >= 0.3 s (at least 3).
template <class F>
double time_it(F&& f) {
  using clock = std::chrono::steady_clock;
  double best = 1e300, total = 0.0;
  for (int rep = 0; rep < 3 || total < 0.3; ++rep) {
    const auto t0 = clock::now();
    f();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int stages = argc > 1 ? std::atoi(argv[1]) : 8;
  std::printf("%8s %9s %7s %14s %14s %9s %12s %12s %12s %8s %5s\n", "n", "edges", "stages", "chain_ms", "minmax_ms",
              "ratio", "bottleneck", "compute_only", "step_search_ms", "step", "moved");
  std::printf("(step: the searched split's simulated step over the min-bottleneck split's; moved: cuts it moved)\n");
  for (int n : {1000, 10000, 100000}) {
    const ChainProblem p = random_dag(1234 + n, n);
    size_t edges = 0;
    for (const auto& t : p.transfers) edges += t.consumers.size();
    ppc::analysis::ChainPartition r;
    std::vector<int> mm;
    const double t_chain = time_it([&] { r = ppc::analysis::min_bottleneck_partition(p, stages); });
    const double t_mm = time_it([&] { mm = ppc::analysis::min_max_partition(p.compute, stages); });
    double compute_only = 0.0;
    {
      std::vector<int> b{0};
      b.insert(b.end(), mm.begin(), mm.end());
      b.push_back(n);
      for (size_t k = 0; k + 1 < b.size(); ++k) {
        double s = 0.0;
        for (int x = b[k]; x < b[k + 1]; ++x) s += p.compute[x];
        compute_only = std::max(compute_only, s);
      }
    }
    // The step search on the same DAG as a cost model in ms per sample: every
    // value 4 KiB per sample, micro-batches of 8 in 8 chunks, a message's
    // latency of about one item's time per micro-batch and the bytes at 1.7 GB/s.
    ppc::analysis::CostModel m;
    m.balance = "time";
    m.unit = "ms";
    m.problem = p;
    m.problem.receive_cost = 0.25;
    for (int i = 0; i < n; ++i) m.items.push_back(i);
    for (const auto& t : p.transfers) {
      m.reads.emplace_back(t.producer, t.consumers);
      m.read_bytes.emplace_back(4096.0, 4096.0);
    }
    ppc::analysis::StepOptions so;
    so.chunks = 8;
    so.micro_batch_size = 8;
    so.message.latency_ms = 4.0;
    so.message.bytes_per_second = 1.7e9;
    double before = ppc::analysis::predict_step_ms(m, r.starts, so), after = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<int> moved = ppc::analysis::search_by_step(m, r.starts, so, &after);
    const double t_step = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int changed = 0;
    for (size_t k = 0; k < moved.size(); ++k) changed += moved[k] != r.starts[k];
    std::printf("%8d %9zu %7d %14.3f %14.3f %9.1f %12.4f %12.4f %12.1f %8.3f %5d%s\n", n, edges, stages, 1e3 * t_chain,
                1e3 * t_mm, t_chain / t_mm, r.bottleneck, compute_only, 1e3 * t_step, after / before, changed,
                r.feasible ? "" : "  (infeasible?!)");
  }
  return 0;
}
