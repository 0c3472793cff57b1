// Timing of min_bottleneck_partition (compute + communication on a DAG) against
// the compute-only min_max_partition on the same compute vector, in one
// process. Not a test: prints one line per size.
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
  std::printf("%8s %9s %7s %14s %14s %9s %12s %12s\n", "n", "edges", "stages", "chain_ms", "minmax_ms", "ratio",
              "bottleneck", "compute_only");
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
    std::printf("%8d %9zu %7d %14.3f %14.3f %9.1f %12.4f %12.4f%s\n", n, edges, stages, 1e3 * t_chain, 1e3 * t_mm,
                t_chain / t_mm, r.bottleneck, compute_only, r.feasible ? "" : "  (infeasible?!)");
  }
  return 0;
}
