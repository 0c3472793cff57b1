#include "compiler/analysis/partition.h"

#include <algorithm>
#include <map>
#include <set>

#include "compiler/analysis/constants.h"
#include "schemas/error.h"

namespace ppc::analysis {

namespace {

void sort_unique(std::vector<int>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// Each non-constant node's stage: the number of cuts at or before it.
void assign_stages(const std::vector<bool>& const_like, const std::vector<Cut>& cuts, int N, Partition& P) {
  P.stage_of_node.assign(N, -1);
  size_t k = 0;
  for (int i = 0; i < N; ++i) {
    while (k < cuts.size() && cuts[k].position <= i) ++k;
    if (!const_like[i]) P.stage_of_node[i] = static_cast<int>(k);
  }
}

// Model outputs and the stage that writes them.
void assign_output_stages(const ir::Graph& g, Partition& P) {
  const int S = P.num_stages;
  P.output_stage.assign(g.outputs.size(), S - 1);
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    const ir::Value& v = g.values[g.outputs[o]];
    if (v.producer == ir::kNone)
      throw Error("model output '" + v.name + "' is a model " + (v.param != ir::kNone ? "parameter" : "input") +
                  " passed straight through; ppc cannot place it in a stage");
    int s = P.stage_of_node[v.producer];
    P.output_stage[o] = s >= 0 ? s : S - 1;  // constant-valued outputs come from the last stage
  }
}

// Nodes per stage: placed ones plus the constant-like closure they need.
void collect_stage_nodes(const ir::Graph& g, const std::vector<bool>& const_like, Partition& P) {
  const int N = static_cast<int>(g.nodes.size());
  for (int s = 0; s < P.num_stages; ++s) {
    StagePlan& sp = P.stages[s];
    std::vector<ir::ValueId> needed;
    for (int i = 0; i < N; ++i) {
      if (P.stage_of_node[i] != s) continue;
      sp.nodes.push_back(i);
      ++sp.placed_nodes;
      sp.flops += g.nodes[i].flops;
      for (ir::ValueId v : g.nodes[i].inputs)
        if (v != ir::kNone) needed.push_back(v);
    }
    for (size_t o = 0; o < g.outputs.size(); ++o)
      if (P.output_stage[o] == s) needed.push_back(g.outputs[o]);
    sp.cloned = constant_closure(g, const_like, needed);
    sp.nodes.insert(sp.nodes.end(), sp.cloned.begin(), sp.cloned.end());
    std::sort(sp.nodes.begin(), sp.nodes.end());
  }
}

// Which stages read each param (through placed or cloned nodes), sorted.
std::vector<std::vector<int>> param_holders(const ir::Graph& g, const Partition& P) {
  std::vector<std::vector<int>> holders(g.params.size());
  for (int s = 0; s < P.num_stages; ++s)
    for (ir::NodeId n : P.stages[s].nodes)
      for (ir::ValueId v : g.nodes[n].inputs)
        if (v != ir::kNone && g.values[v].param != ir::kNone) holders[g.values[v].param].push_back(s);
  for (auto& h : holders) sort_unique(h);
  return holders;
}

// Where the reference params of transmitted tie groups travel.
struct TieRouting {
  std::vector<std::set<int>> tie_inputs;       // per stage: reference params it receives from an owner
  std::map<int, std::set<int>> ref_consumers;  // reference param -> stages receiving it
};

// Stored params: every param a stage reads, except members of transmitted
// tie groups, which only the owner stores (as the group's reference).
TieRouting place_params(const ir::Graph& g, const std::vector<std::vector<int>>& holders, Partition& P) {
  const int S = P.num_stages;
  std::vector<std::vector<bool>> stored(S, std::vector<bool>(g.params.size(), false));
  for (size_t p = 0; p < g.params.size(); ++p)
    for (int s : holders[p]) stored[s][p] = true;
  TieRouting routing;
  routing.tie_inputs.resize(S);
  for (const TieGroup& t : P.ties) {
    if (t.policy != spec::TiePolicy::Transmit) continue;
    const int ref = t.members[0].param;
    for (const TieMemberRef& m : t.members) {
      for (int s : m.stages) {
        stored[s][m.param] = false;
        if (s != t.owner) {
          routing.tie_inputs[s].insert(ref);
          routing.ref_consumers[ref].insert(s);
        }
        if (m.param != ref) P.stages[s].derived.push_back(DerivedParam{m.param, ref, m.relation});
      }
    }
    stored[t.owner][ref] = true;
  }
  for (int s = 0; s < S; ++s) {
    for (size_t p = 0; p < g.params.size(); ++p)
      if (stored[s][p]) {
        P.stages[s].params.push_back(static_cast<int>(p));
        P.stages[s].param_bytes += g.params[p].bytes;
      }
    std::sort(P.stages[s].derived.begin(), P.stages[s].derived.end(),
              [](const DerivedParam& a, const DerivedParam& b) { return a.param < b.param; });
  }
  return routing;
}

// Per value, the stages whose placed nodes read it (sorted); sets the model
// inputs' reader stages from it.
std::vector<std::vector<int>> value_consumer_stages(const ir::Graph& g, Partition& P) {
  std::vector<std::vector<int>> consumers(g.values.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    int s = P.stage_of_node[i];
    if (s < 0) continue;
    for (ir::ValueId v : g.nodes[i].inputs)
      if (v != ir::kNone) consumers[v].push_back(s);
  }
  for (auto& c : consumers) sort_unique(c);
  P.input_stages.resize(g.inputs.size());
  for (size_t k = 0; k < g.inputs.size(); ++k) P.input_stages[k] = consumers[g.inputs[k]];
  return consumers;
}

// Activation edges (a value placed in stage p read by nodes of later stages)
// and transmitted tie references; returns what each stage sends, in order.
std::vector<std::vector<ir::ValueId>> find_edges(const ir::Graph& g, const std::vector<std::vector<int>>& holders,
                                                 const std::vector<std::vector<int>>& consumer_stages,
                                                 const TieRouting& routing, Partition& P) {
  std::vector<std::vector<ir::ValueId>> sends(P.num_stages);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    int s = P.stage_of_node[i];
    if (s < 0) continue;
    for (ir::ValueId v : g.nodes[i].outputs) {
      CrossEdge e;
      e.value = v;
      e.producer = s;
      for (int c : consumer_stages[v])
        if (c != s) e.consumers.push_back(c);
      bool is_model_output = g.values[v].is_graph_output;
      if (!e.consumers.empty()) P.edges.push_back(e);
      if (!e.consumers.empty() || is_model_output) sends[s].push_back(v);
    }
  }
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    ir::ValueId v = g.outputs[o];
    int prod = g.values[v].producer;
    if (P.stage_of_node[prod] < 0) sends[P.output_stage[o]].push_back(v);  // constant-valued output
  }
  for (const auto& [ref, consumers] : routing.ref_consumers) {
    CrossEdge e;
    e.value = g.params[ref].value;
    e.producer = holders[ref].empty() ? 0 : -1;
    for (const TieGroup& t : P.ties)
      if (t.members[0].param == ref) e.producer = t.owner;
    e.consumers.assign(consumers.begin(), consumers.end());
    e.is_param = true;
    P.edges.push_back(e);
    sends[e.producer].push_back(e.value);
  }
  return sends;
}

// Stage s's inputs: model inputs (graph order), then transmitted tie
// references (param order), then activation edges (producer order).
void set_stage_inputs(const ir::Graph& g, const std::set<int>& tie_inputs, int s, Partition& P) {
  StagePlan& sp = P.stages[s];
  std::vector<char> inside(g.values.size(), 0);
  for (ir::NodeId n : sp.nodes)
    for (ir::ValueId v : g.nodes[n].outputs) inside[v] = 1;
  for (size_t k = 0; k < g.inputs.size(); ++k)
    if (std::binary_search(P.input_stages[k].begin(), P.input_stages[k].end(), s))
      sp.inputs.push_back(StageInputRef{g.inputs[k], InputSource::ModelInput, -1});
  for (int ref : tie_inputs) {
    int owner = 0;
    for (const TieGroup& t : P.ties)
      if (t.members[0].param == ref) owner = t.owner;
    sp.inputs.push_back(StageInputRef{g.params[ref].value, InputSource::Tie, owner});
  }
  std::vector<ir::ValueId> ordered;  // the values from other stages, once each
  for (ir::NodeId n : sp.nodes)
    for (ir::ValueId v : g.nodes[n].inputs) {
      if (v == ir::kNone || inside[v]) continue;
      const ir::Value& val = g.values[v];
      if (val.producer == ir::kNone) continue;  // model input or param
      inside[v] = 1;
      ordered.push_back(v);
    }
  std::sort(ordered.begin(), ordered.end(), [&](ir::ValueId a, ir::ValueId b) {
    return std::make_pair(g.values[a].producer, a) < std::make_pair(g.values[b].producer, b);
  });
  for (ir::ValueId v : ordered)
    sp.inputs.push_back(StageInputRef{v, InputSource::Edge, P.stage_of_node[g.values[v].producer]});
}

}  // namespace

Partition partition(const ir::Graph& g, const std::vector<bool>& const_like, const std::vector<Cut>& cuts,
                    const TieOptions& tie_options) {
  Partition P;
  P.num_stages = static_cast<int>(cuts.size()) + 1;
  const int S = P.num_stages;
  const int N = static_cast<int>(g.nodes.size());
  assign_stages(const_like, cuts, N, P);
  P.stages.resize(S);
  assign_output_stages(g, P);
  collect_stage_nodes(g, const_like, P);
  const std::vector<std::vector<int>> holders = param_holders(g, P);
  P.ties = resolve_ties(g, holders, tie_options, &P.notes);
  const TieRouting routing = place_params(g, holders, P);
  const std::vector<std::vector<int>> consumer_stages = value_consumer_stages(g, P);
  const std::vector<std::vector<ir::ValueId>> sends = find_edges(g, holders, consumer_stages, routing, P);
  for (int s = 0; s < S; ++s) {
    set_stage_inputs(g, routing.tie_inputs[s], s, P);
    P.stages[s].outputs = sends[s];
  }
  return P;
}

void require_ranked_edges(const ir::Graph& g, const Partition& p, const std::vector<Cut>& cuts,
                          const JsonDocument* doc) {
  for (const CrossEdge& e : p.edges) {
    const ir::Value& v = g.values[e.value];
    if (e.is_param || v.shape.rank_known) continue;
    const Cut* cut = e.producer < static_cast<int>(cuts.size()) ? &cuts[e.producer] : nullptr;
    std::string from = v.producer != ir::kNone ? " (output of node '" + g.nodes[v.producer].name + "')" : "";
    std::string msg = (cut && !cut->label.empty() ? cut->label + ": " : "") + "value '" + v.name + "'" + from +
                      " would cross from stage " + std::to_string(e.producer) + " to stage " +
                      std::to_string(e.consumers.front()) +
                      ", but its rank is unknown (the model declares no shape for it and shape inference finds "
                      "none), and a stage's inputs and outputs must declare one; move the split point, or export "
                      "the model with the shapes of its intermediate values";
    if (doc && cut && !cut->pointer.empty()) msg = doc->where(cut->pointer, msg);
    throw Error(msg);
  }
}

std::string verify_partition(const ir::Graph& g, const std::vector<bool>& const_like, const Partition& p) {
  std::vector<int> count(g.nodes.size(), 0);
  for (int s = 0; s < p.num_stages; ++s) {
    const StagePlan& sp = p.stages[s];
    std::vector<char> cloned(g.nodes.size(), 0), defined(g.values.size(), 0);
    for (ir::NodeId n : sp.cloned) cloned[n] = 1;
    for (const auto& in : sp.inputs) {
      defined[in.value] = 1;
      if (in.source == InputSource::Edge || in.source == InputSource::Tie) {
        if (in.from_stage < 0 || in.from_stage >= s)
          return "stage " + std::to_string(s) + " input '" + g.values[in.value].name + "' comes from stage " +
                 std::to_string(in.from_stage);
      }
    }
    for (int prm : sp.params) defined[g.params[prm].value] = 1;
    for (const auto& d : sp.derived) defined[g.params[d.param].value] = 1;
    for (ir::NodeId n : sp.nodes) {
      if (!cloned[n]) ++count[n];
      if (cloned[n] && !const_like[n])
        return "stage " + std::to_string(s) + " clones non-constant node '" + g.nodes[n].name + "'";
      for (ir::ValueId v : g.nodes[n].inputs)
        if (v != ir::kNone && !defined[v])
          return "stage " + std::to_string(s) + " node '" + g.nodes[n].name + "' reads '" + g.values[v].name +
                 "', which the stage does not define";
      for (ir::ValueId v : g.nodes[n].outputs) defined[v] = 1;
    }
    for (ir::ValueId v : sp.outputs)
      if (!defined[v])
        return "stage " + std::to_string(s) + " outputs '" + g.values[v].name + "', which it does not define";
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (const_like[i]) continue;
    if (count[i] != 1) return "node '" + g.nodes[i].name + "' is placed in " + std::to_string(count[i]) + " stages";
  }
  for (const auto& e : p.edges)
    for (int c : e.consumers)
      if (c <= e.producer)
        return "edge '" + g.values[e.value].name + "' flows from stage " + std::to_string(e.producer) + " to " +
               std::to_string(c);
  return "";
}

}  // namespace ppc::analysis
