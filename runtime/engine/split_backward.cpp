#include "runtime/engine/split_backward.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ppc::runtime {
namespace {

using torch::autograd::Edge;
using torch::autograd::edge_list;
using torch::autograd::Node;

/// The autograd graph below a stage's outputs: for every node, whether it
/// leads to one of the stage's inputs and which of the stage's weights it
/// leads to (a bit set over the params list).
struct GraphReach {
  std::unordered_map<const Node*, size_t> index;
  std::vector<std::shared_ptr<Node>> nodes;  ///< children before parents
  std::vector<char> to_input;
  std::vector<uint64_t> bits;
  size_t words = 1;

  const uint64_t* params_of(size_t i) const { return bits.data() + i * words; }
  bool any(const uint64_t* b) const {
    for (size_t w = 0; w < words; ++w)
      if (b[w]) return true;
    return false;
  }
  bool meet(const uint64_t* a, const uint64_t* b) const {
    for (size_t w = 0; w < words; ++w)
      if (a[w] & b[w]) return true;
    return false;
  }
};

GraphReach reach(const edge_list& roots, const std::unordered_set<const Node*>& input_nodes,
                 const std::unordered_map<const Node*, size_t>& param_nodes, size_t n_params) {
  GraphReach g;
  g.words = (n_params + 63) / 64 + (n_params == 0);
  // Iterative depth-first walk (graphs of thousands of operators are deep);
  // a node is finished when its children are. The graph is acyclic.
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack;
  std::unordered_set<const Node*> seen;
  auto visit = [&](const std::shared_ptr<Node>& n) {
    if (n && seen.insert(n.get()).second) stack.emplace_back(n, 0);
  };
  auto finish = [&](const std::shared_ptr<Node>& node, bool leaf) {
    const size_t i = g.nodes.size();
    g.index.emplace(node.get(), i);
    g.nodes.push_back(node);
    g.to_input.push_back(leaf);
    g.bits.resize(g.bits.size() + g.words, 0);
    uint64_t* b = g.bits.data() + i * g.words;
    if (auto p = param_nodes.find(node.get()); p != param_nodes.end())
      b[p->second / 64] |= uint64_t{1} << (p->second % 64);
    if (leaf) return;
    for (const Edge& e : node->next_edges()) {
      if (!e.function) continue;
      const size_t c = g.index.at(e.function.get());
      g.to_input[i] |= g.to_input[c];
      const uint64_t* cb = g.params_of(c);
      for (size_t w = 0; w < g.words; ++w) b[w] |= cb[w];
    }
  };
  // One root at a time: a root below another one is finished before it.
  for (const Edge& r : roots) {
    visit(r.function);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      // An input's own producer belongs to another stage: the walk stops there.
      const bool leaf = input_nodes.count(node.get()) > 0;
      if (!leaf && next < node->num_outputs()) {
        const std::shared_ptr<Node> child = node->next_edge(next++).function;
        visit(child);  // may move the stack: node and next are not used again
        continue;
      }
      finish(node, leaf);
      stack.pop_back();
    }
  }
  return g;
}

std::vector<size_t> bit_indices(const std::vector<uint64_t>& b) {
  std::vector<size_t> out;
  for (size_t w = 0; w < b.size(); ++w)
    for (uint64_t x = b[w]; x; x &= x - 1) out.push_back(w * 64 + static_cast<size_t>(__builtin_ctzll(x)));
  return out;
}

}  // namespace

std::vector<at::Tensor> SplitBackward::input_pass(std::vector<at::Tensor> roots, std::vector<at::Tensor> grads,
                                                  const std::vector<at::Tensor>& inputs,
                                                  const std::vector<at::Tensor>& params) {
  restarts_.clear();
  fallback_ = true;
  roots_ = std::move(roots);
  grads_ = std::move(grads);
  std::vector<at::Tensor> out(inputs.size());
  edge_list input_edges;
  std::vector<size_t> which;
  std::unordered_set<const Node*> input_nodes;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    input_edges.push_back(torch::autograd::impl::gradient_edge(inputs[i]));
    input_nodes.insert(input_edges.back().function.get());
    which.push_back(i);
  }
  if (roots_.empty() || input_edges.empty()) return out;  // W does it all

  edge_list root_edges;
  for (const at::Tensor& r : roots_) root_edges.push_back(torch::autograd::impl::gradient_edge(r));
  std::unordered_map<const Node*, size_t> param_nodes;
  for (size_t k = 0; k < params.size(); ++k)
    if (params[k].requires_grad())
      param_nodes.emplace(torch::autograd::impl::gradient_edge(params[k]).function.get(), k);
  const GraphReach g = reach(root_edges, input_nodes, param_nodes, params.size());

  // Where W restarts: every node on the way to an input with children that
  // lead to weights but not to an input (its weight branches).
  bool conflict = false;
  edge_list captures;
  std::vector<std::pair<size_t, size_t>> capture_of;  // (restart, edge) per capture
  std::vector<uint64_t> branch(g.words);
  for (size_t i = 0; i < g.nodes.size() && !conflict; ++i) {
    if (!g.to_input[i] || input_nodes.count(g.nodes[i].get())) continue;
    std::fill(branch.begin(), branch.end(), 0);
    for (const Edge& e : g.nodes[i]->next_edges()) {
      if (!e.function) continue;
      const size_t c = g.index.at(e.function.get());
      if (g.to_input[c]) continue;
      for (size_t w = 0; w < g.words; ++w) branch[w] |= g.params_of(c)[w];
    }
    if (!g.any(branch.data())) continue;
    const edge_list& next = g.nodes[i]->next_edges();
    for (size_t k = 0; k < next.size(); ++k) {
      if (!next[k].function) continue;
      const size_t c = g.index.at(next[k].function.get());
      if (!g.to_input[c]) continue;
      if (g.meet(g.params_of(c), branch.data())) conflict = true;  // the weight also lies on the input side
      cuts_.emplace_back(g.nodes[i], k);
    }
    Restart r;
    r.params = bit_indices(branch);
    for (uint32_t k = 0; k < g.nodes[i]->num_inputs(); ++k) {
      captures.emplace_back(g.nodes[i], k);
      capture_of.emplace_back(restarts_.size(), r.edges.size());
      r.edges.emplace_back(g.nodes[i], k);
    }
    r.grads.resize(r.edges.size());
    restarts_.push_back(std::move(r));
  }
  // Outputs that lead to weights alone restart W where they are.
  for (size_t j = 0; j < root_edges.size() && !conflict; ++j) {
    const size_t i = g.index.at(root_edges[j].function.get());
    if (g.to_input[i] || !g.any(g.params_of(i))) continue;
    Restart r;
    r.params = bit_indices(std::vector<uint64_t>(g.params_of(i), g.params_of(i) + g.words));
    r.edges.push_back(root_edges[j]);
    r.grads.push_back(grads_[j]);
    restarts_.push_back(std::move(r));
  }
  if (conflict) {
    restarts_.clear();
    captures.clear();
    capture_of.clear();
    cuts_.clear();
  }

  edge_list outputs = input_edges;
  outputs.insert(outputs.end(), captures.begin(), captures.end());
  auto got = torch::autograd::Engine::get_default_engine().execute(root_edges, grads_, /*keep_graph=*/true,
                                                                   /*create_graph=*/false,
                                                                   /*accumulate_grad=*/false, outputs);
  for (size_t k = 0; k < which.size(); ++k) out[which[k]] = got[k];
  for (size_t c = 0; c < captures.size(); ++c)
    restarts_[capture_of[c].first].grads[capture_of[c].second] = got[input_edges.size() + c];
  fallback_ = conflict;
  if (!fallback_) {
    // W no longer starts from the outputs: only the restarts keep the graph.
    roots_.clear();
    grads_.clear();
    // The input side of every restart is done: cut it off, so that W neither
    // computes an input gradient there (autograd asks a node only for the
    // gradients of its connected edges) nor reaches one restart from
    // another, and all restarts run in one autograd call.
    // (Not set_next_edge, which refuses a node that has a parent; an
    // unchanged topological number only overstates what the node reaches.)
    for (auto& [node, k] : cuts_) node->next_edges()[k] = Edge();
  }
  cuts_.clear();
  return out;
}

void SplitBackward::weight_pass(const std::vector<at::Tensor>& params) {
  // The weights' gradients go into their .grad as a backward's do, each
  // added right after autograd computes it (while it is still in cache).
  if (fallback_ && !roots_.empty()) {
    std::vector<at::Tensor> ws;
    for (const at::Tensor& p : params)
      if (p.requires_grad()) ws.push_back(p);
    if (!ws.empty()) torch::autograd::backward(roots_, grads_, /*retain_graph=*/false, /*create_graph=*/false, ws);
  }
  // One autograd call for every restart: their input sides are cut, so none
  // reaches another, and a weight read in several places sums there.
  edge_list edges;
  std::vector<at::Tensor> grads;
  std::vector<char> wanted(params.size(), 0);
  for (Restart& r : restarts_) {
    for (size_t e = 0; e < r.edges.size(); ++e)
      if (r.grads[e].defined()) {  // undefined: nothing arrived there
        edges.push_back(r.edges[e]);
        grads.push_back(std::move(r.grads[e]));
      }
    for (size_t k : r.params) wanted[k] = 1;
  }
  edge_list outputs;
  for (size_t k = 0; k < params.size(); ++k)
    if (wanted[k]) outputs.push_back(torch::autograd::impl::gradient_edge(params[k]));
  if (!edges.empty() && !outputs.empty())
    torch::autograd::Engine::get_default_engine().execute(edges, grads, /*keep_graph=*/false, /*create_graph=*/false,
                                                          /*accumulate_grad=*/true, outputs);
  restarts_.clear();
  roots_.clear();
  grads_.clear();
  fallback_ = true;
}

}  // namespace ppc::runtime
