#include "compiler/analysis/constants.h"

#include <algorithm>

namespace ppc::analysis {

std::vector<bool> constant_like_nodes(const ir::Graph& g) {
  std::vector<bool> c(g.nodes.size(), false);
  // Nodes are in topological order, so one forward sweep suffices.
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (n.flags & (ir::kNodeNondeterministic | ir::kNodeHasSubgraph)) continue;
    if (n.flags & ir::kNodeConstantSource) {
      c[i] = true;
      continue;
    }
    bool all = !n.outputs.empty();
    bool any_input = false;
    for (ir::ValueId v : n.inputs) {
      if (v == ir::kNone) continue;
      any_input = true;
      const ir::Value& val = g.values[v];
      if (val.param != ir::kNone) continue;
      if (val.producer != ir::kNone && c[val.producer]) continue;
      all = false;
      break;
    }
    // A node with no inputs that is not a declared constant source (e.g. a
    // random generator the frontend did not flag) stays where it is.
    c[i] = all && any_input;
  }
  return c;
}

std::vector<ir::NodeId> constant_closure(const ir::Graph& g, const std::vector<bool>& const_like,
                                         const std::vector<ir::ValueId>& needed) {
  std::vector<bool> seen(g.nodes.size(), false);
  std::vector<ir::NodeId> stack;
  for (ir::ValueId v : needed) {
    ir::NodeId p = g.values[v].producer;
    if (p != ir::kNone && const_like[p] && !seen[p]) {
      seen[p] = true;
      stack.push_back(p);
    }
  }
  while (!stack.empty()) {
    ir::NodeId n = stack.back();
    stack.pop_back();
    for (ir::ValueId v : g.nodes[n].inputs) {
      if (v == ir::kNone) continue;
      ir::NodeId p = g.values[v].producer;
      if (p != ir::kNone && const_like[p] && !seen[p]) {
        seen[p] = true;
        stack.push_back(p);
      }
    }
  }
  std::vector<ir::NodeId> out;
  for (size_t i = 0; i < seen.size(); ++i)
    if (seen[i]) out.push_back(static_cast<ir::NodeId>(i));
  return out;
}

}  // namespace ppc::analysis
