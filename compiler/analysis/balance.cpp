#include "compiler/analysis/balance.h"

#include <algorithm>

#include "schemas/error.h"

namespace ppc::analysis {

namespace {
// Fewest pieces with every piece sum <= bound (bound >= max element).
int pieces_needed(const std::vector<double>& costs, double bound) {
  int pieces = 1;
  double acc = 0.0;
  for (double x : costs) {
    if (acc + x > bound) {
      ++pieces;
      acc = x;
    } else {
      acc += x;
    }
  }
  return pieces;
}
}  // namespace

std::vector<int> min_max_partition(const std::vector<double>& costs, int parts) {
  const int n = static_cast<int>(costs.size());
  double lo = 0.0, hi = 0.0;
  for (double x : costs) {
    lo = std::max(lo, x);
    hi += x;
  }
  // The optimum is the smallest bound whose greedy cover needs <= parts
  // pieces; feasibility is monotone in the bound, so bisect. Each greedy
  // check is O(n).
  if (pieces_needed(costs, lo) > parts) {
    // Relative tolerance only: an absolute floor would stop early (and pick an
    // unbalanced split) when every cost is far below 1.
    for (int it = 0; it < 200 && hi - lo > 1e-12 * hi; ++it) {
      double mid = lo + (hi - lo) / 2;
      if (pieces_needed(costs, mid) <= parts)
        hi = mid;
      else
        lo = mid;
    }
  } else {
    hi = lo;
  }
  const double bound = hi * (1 + 1e-12) + 1e-300;
  // Greedy fill up to the bound, but never leave fewer nodes than pieces
  // still to fill, so there are exactly `parts` non-empty pieces.
  std::vector<int> starts;
  double acc = 0.0;
  for (int i = 0; i < n; ++i) {
    int remaining_parts = parts - 1 - static_cast<int>(starts.size());
    bool must_cut = remaining_parts > 0 && n - i == remaining_parts;
    bool over = i > 0 && acc + costs[i] > bound && remaining_parts > 0;
    bool first_of_piece = starts.empty() ? i == 0 : starts.back() == i;
    if ((must_cut || over) && !first_of_piece && i > 0) {
      starts.push_back(i);
      acc = 0.0;
    }
    acc += costs[i];
  }
  return starts;
}

AutoPartition auto_partition(const ir::Graph& g, const std::vector<bool>& const_like, int stages,
                             const CostModelOptions& options) {
  AutoPartition r;
  r.model = build_cost_model(g, const_like, options, stages);
  const auto& items = r.model.items;
  const int n = static_cast<int>(items.size());
  if (stages > n)
    throw Error("'auto.stages' is " + std::to_string(stages) + " but the graph has only " + std::to_string(n) +
                " nodes to place (constants aside)");
  if (!r.model.problem.allowed.empty()) {
    int places = 0;
    for (int b = 1; b < n; ++b) places += r.model.problem.allowed[b] ? 1 : 0;
    if (places < stages - 1)
      throw Error("'auto.stages' is " + std::to_string(stages) + " but " +
                  (options.cut_at == "module" ? "cuts at module depth " + std::to_string(options.module_depth)
                                              : std::string("cuts between nodes")) +
                  (options.typed_cuts_only ? " where every crossing value has a known shape" : "") + " allow only " +
                  std::to_string(places + 1) + " stages");
  }
  ChainPartition cp = min_bottleneck_partition(r.model.problem, stages);
  if (!cp.feasible) {
    // Only the memory cap can make it infeasible here: say how far off it is.
    ChainProblem uncapped = r.model.problem;
    uncapped.memory_cap = 0;
    ChainPartition best = min_bottleneck_partition(uncapped, stages);
    Evaluation e = evaluate(r.model, best.starts);
    double worst = 0;
    for (double x : e.stage_memory) worst = std::max(worst, x);
    throw Error("no split into " + std::to_string(stages) + " stages fits 'auto.memory_cap_mib' " +
                std::to_string(static_cast<int64_t>(options.memory_cap_bytes / (1 << 20))) +
                " MiB (the fastest split needs " + std::to_string(static_cast<int64_t>(worst / (1 << 20) + 1)) +
                " MiB in its largest stage)");
  }
  r.starts = cp.starts;
  r.eval = evaluate(r.model, r.starts);
  r.cuts = cuts_at(g, r.model, r.starts);
  return r;
}

std::vector<Cut> cuts_at(const ir::Graph& g, const CostModel& m, const std::vector<int>& starts) {
  std::vector<Cut> cuts;
  for (int start : starts) {
    Cut c;
    c.position = m.items[start];
    c.label = "auto cut before node '" + g.nodes[m.items[start]].name + "'";
    cuts.push_back(c);
  }
  return cuts;
}

}  // namespace ppc::analysis
