// Text form of the IR, so tests can state graphs inline and dumps are diffable.
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace ppc::ir {

/// Prints `g` one declaration per line:
///   graph NAME
///   input x:float32[batch,4]
///   param w:float32[4,4]
///   node n0 MatMul @layer0.lin flops=32 : x w -> h:float32[batch,4]
///   node c0 Constant const : -> k:int64[1]
///   output h
/// Node flags are words after the module: `const` (constant source),
/// `rand` (nondeterministic), `subgraph`. `@` is omitted for the root scope.
/// An omitted optional input prints as `_`.
std::string print_graph(const Graph& g);

/// Parses the form print_graph writes (blank lines and `#` comments allowed).
/// Values used before a declaration are an error. Throws std::runtime_error
/// "line N: problem" on malformed text. The result is topologically sorted.
Graph parse_graph(const std::string& text);

}  // namespace ppc::ir
