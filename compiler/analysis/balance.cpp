#include "compiler/analysis/balance.h"

#include <algorithm>
#include <set>

#include "schemas/error.h"

namespace ppc::analysis {

std::vector<double> node_costs(const ir::Graph& g, const std::vector<bool>& const_like, const std::string& balance) {
  std::vector<double> c(g.nodes.size(), 0.0);
  std::set<int> seen_params;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (const_like[i]) continue;
    if (balance == "uniform") {
      c[i] = 1.0;
    } else if (balance == "params") {
      for (ir::ValueId v : g.nodes[i].inputs) {
        if (v == ir::kNone) continue;
        int p = g.values[v].param;
        if (p != ir::kNone && seen_params.insert(p).second) c[i] += static_cast<double>(g.params[p].bytes);
      }
    } else {
      c[i] = std::max(0.0, g.nodes[i].flops);
    }
  }
  return c;
}

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

std::vector<Cut> auto_cuts(const ir::Graph& g, const std::vector<bool>& const_like, int stages,
                           const std::string& balance) {
  std::vector<ir::NodeId> placeable;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!const_like[i]) placeable.push_back(static_cast<ir::NodeId>(i));
  if (stages > static_cast<int>(placeable.size()))
    throw Error("'auto.stages' is " + std::to_string(stages) + " but the graph has only " +
                std::to_string(placeable.size()) + " nodes to place (constants aside)");
  auto all = node_costs(g, const_like, balance);
  std::vector<double> costs;
  for (ir::NodeId n : placeable) costs.push_back(all[n]);
  std::vector<Cut> cuts;
  for (int start : min_max_partition(costs, stages)) {
    Cut c;
    c.position = placeable[start];
    c.label = "auto cut before node '" + g.nodes[placeable[start]].name + "'";
    cuts.push_back(c);
  }
  return cuts;
}

}  // namespace ppc::analysis
