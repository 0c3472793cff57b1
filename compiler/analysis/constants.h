// Which nodes are constant-like: their outputs depend only on params and
// constant sources, so every stage that needs them gets its own clone instead
// of receiving them over the wire.
#pragma once

#include <vector>

#include "compiler/ir/graph.h"

namespace ppc::analysis {

/// A node is constant-like when it is a constant source, or when it is
/// deterministic, has no subgraph, and every input is a param or the output of
/// a constant-like node. Model inputs make a node non-constant. Indexed by NodeId.
std::vector<bool> constant_like_nodes(const ir::Graph& g);

/// The constant-like nodes that `needed` values transitively depend on,
/// returned as a sorted list of node ids.
std::vector<ir::NodeId> constant_closure(const ir::Graph& g, const std::vector<bool>& const_like,
                                         const std::vector<ir::ValueId>& needed);

}  // namespace ppc::analysis
