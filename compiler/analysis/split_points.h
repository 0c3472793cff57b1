// Split-point resolution: turns the spec's named cuts into positions in the
// graph's node order, with errors that point back into the spec.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "schemas/json_text.h"
#include "schemas/split_spec.h"

namespace ppc::analysis {

/// First and last placeable (non-constant-like) node of a module subtree.
struct ModuleSpan {
  ir::NodeId first = ir::kNone;
  ir::NodeId last = ir::kNone;
};

/// Every module path and each of its dotted prefixes ("layer1.0.conv1" also
/// counts for "layer1.0" and "layer1"), mapped to the span of its placeable nodes.
std::map<std::string, ModuleSpan> module_spans(const ir::Graph& g, const std::vector<bool>& const_like);

/// A cut before node position `position`: placeable nodes with a smaller id
/// go to the earlier stage.
struct Cut {
  int position = 0;
  std::string label;    ///< e.g. "module 'layer0' at end", for messages
  std::string pointer;  ///< spec JSON pointer ("" for automatic cuts)
};

/// Resolves `spec.split_points` against `g`. Errors (ppc::Error) name the
/// split point's place in `doc`: unknown names (with suggestions), values
/// that are not produced by a node, cuts out of order, empty stages.
std::vector<Cut> resolve_split_points(const ir::Graph& g, const std::vector<bool>& const_like,
                                      const spec::SplitSpec& spec, const JsonDocument* doc);

/// Checks that cuts are increasing and every stage gets at least one
/// placeable node; throws ppc::Error otherwise (located via doc when given).
void check_cuts(const ir::Graph& g, const std::vector<bool>& const_like, const std::vector<Cut>& cuts,
                const JsonDocument* doc);

}  // namespace ppc::analysis
