// Shared by the compiler/analysis unit tests (constants_test.cpp,
// split_points_test.cpp, balance_test.cpp, cost_model_test.cpp,
// step_model_test.cpp, partition_test.cpp, ties_test.cpp): a graph more than
// one of them uses, and helpers that turn ids and plans into names to compare.
#pragma once

#include <string>
#include <vector>

#include "compiler/analysis/constants.h"
#include "compiler/analysis/partition.h"
#include "compiler/analysis/split_points.h"
#include "compiler/ir/text.h"

namespace ppc::analysis::test_graphs {

using ir::Graph;
using ir::parse_graph;
using Ints = std::vector<int>;
using Strings = std::vector<std::string>;

// a -> b -> c -> d with a skip a -> d; 400-byte activations per sample.
inline constexpr const char* kCostChain = R"(
input x:float32[batch,100]
param w:float32[100,100]
param v:float32[100,100]
node a MatMul @blocks.0.fc flops=1000 : x w -> h0:float32[batch,100]
node b Relu @blocks.0.act flops=1000 : h0 -> h1:float32[batch,100]
node c MatMul @blocks.1.fc flops=1000 : h1 v -> h2:float32[batch,100]
node d Add @blocks.1.add flops=1000 : h2 h0 -> y:float32[batch,100]
output y
)";

inline std::vector<bool> consts(const Graph& g) { return constant_like_nodes(g); }

inline Strings names_of_nodes(const Graph& g, const std::vector<ir::NodeId>& ids) {
  Strings out;
  for (ir::NodeId n : ids) out.push_back(g.nodes[n].name);
  return out;
}

inline Strings names_of_values(const Graph& g, const std::vector<ir::ValueId>& ids) {
  Strings out;
  for (ir::ValueId v : ids) out.push_back(g.values[v].name);
  return out;
}

inline Strings names_of_params(const Graph& g, const Ints& ids) {
  Strings out;
  for (int p : ids) out.push_back(g.params[p].name);
  return out;
}

// "x:model_input", "h0:edge@0", "w:tie@0"
inline Strings inputs_of(const Graph& g, const StagePlan& sp) {
  Strings out;
  for (const auto& in : sp.inputs) {
    std::string s = g.values[in.value].name + ":";
    switch (in.source) {
      case InputSource::ModelInput: s += "model_input"; break;
      case InputSource::Edge: s += "edge"; break;
      case InputSource::Tie: s += "tie"; break;
    }
    if (in.source != InputSource::ModelInput || in.from_stage != -1) s += "@" + std::to_string(in.from_stage);
    out.push_back(s);
  }
  return out;
}

// "h0 0->1,2" ("param" appended for transmitted tie references)
inline Strings edges_of(const Graph& g, const Partition& p) {
  Strings out;
  for (const auto& e : p.edges) {
    std::string s = g.values[e.value].name + " " + std::to_string(e.producer) + "->";
    for (size_t i = 0; i < e.consumers.size(); ++i) s += (i ? "," : "") + std::to_string(e.consumers[i]);
    if (e.is_param) s += " param";
    out.push_back(s);
  }
  return out;
}

inline Ints positions(const std::vector<Cut>& cuts) {
  Ints out;
  for (const auto& c : cuts) out.push_back(c.position);
  return out;
}

inline Cut cut_at(int position) { return Cut{position, "cut at " + std::to_string(position), ""}; }

}  // namespace ppc::analysis::test_graphs
