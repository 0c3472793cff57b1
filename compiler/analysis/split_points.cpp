#include "compiler/analysis/split_points.h"

#include <string_view>

#include "schemas/suggest.h"
#include "schemas/error.h"

namespace ppc::analysis {

namespace {

Error located(const JsonDocument* doc, const std::string& pointer, const std::string& msg) {
  if (doc && !pointer.empty()) return Error(doc->where(pointer, msg));
  if (doc) return Error(doc->file() + ": " + msg);
  return Error(msg);
}

// The top-level node whose block holds module `name` (or a submodule of it)
// when the module occurs only inside control flow; nullptr otherwise.
const ir::Node* nested_holder(const ir::Graph& g, const std::string& name) {
  if (name.empty()) return nullptr;
  ir::NodeId best = ir::kNone;
  auto it = g.nested_modules.lower_bound(name);
  for (; it != g.nested_modules.end(); ++it) {
    const std::string& path = it->first;
    if (path != name && path.rfind(name + ".", 0) != 0) {
      if (path.compare(0, name.size(), name) != 0) break;  // past every path starting with `name`
      continue;                                            // e.g. "inner2" while looking for "inner"
    }
    if (it->second >= 0 && it->second < static_cast<ir::NodeId>(g.nodes.size()) &&
        (best == ir::kNone || it->second < best))
      best = it->second;
  }
  return best == ir::kNone ? nullptr : &g.nodes[best];
}

}  // namespace

std::map<std::string, ModuleSpan> module_spans(const ir::Graph& g, const std::vector<bool>& const_like) {
  std::map<std::string, ModuleSpan> spans;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (const_like[i]) continue;
    const std::string& m = g.nodes[i].module;
    if (m.empty()) continue;
    size_t pos = 0;
    while (true) {
      size_t dot = m.find('.', pos);
      std::string prefix = dot == std::string::npos ? m : m.substr(0, dot);
      ModuleSpan& s = spans[prefix];
      if (s.first == ir::kNone) s.first = static_cast<ir::NodeId>(i);
      s.last = static_cast<ir::NodeId>(i);
      if (dot == std::string::npos) break;
      pos = dot + 1;
    }
  }
  return spans;
}

namespace {

// The spans of the modules `spec` cuts at (those that have nodes), as
// module_spans() gives them, without the spans of every other module.
std::map<std::string, ModuleSpan, std::less<>> named_spans(const ir::Graph& g, const std::vector<bool>& const_like,
                                                           const spec::SplitSpec& spec) {
  std::map<std::string, ModuleSpan, std::less<>> spans;
  for (const auto& sp : spec.split_points)
    if (sp.kind == spec::SplitPoint::Kind::Module) spans.emplace(sp.name, ModuleSpan{});
  if (spans.empty()) return spans;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (const_like[i]) continue;
    const std::string_view m = g.nodes[i].module;
    if (m.empty()) continue;
    size_t pos = 0;
    while (true) {
      const size_t dot = m.find('.', pos);
      auto it = spans.find(m.substr(0, dot));
      if (it != spans.end()) {
        if (it->second.first == ir::kNone) it->second.first = static_cast<ir::NodeId>(i);
        it->second.last = static_cast<ir::NodeId>(i);
      }
      if (dot == std::string_view::npos) break;
      pos = dot + 1;
    }
  }
  for (auto it = spans.begin(); it != spans.end();) it = it->second.first == ir::kNone ? spans.erase(it) : ++it;
  return spans;
}

}  // namespace

std::vector<Cut> resolve_split_points(const ir::Graph& g, const std::vector<bool>& const_like,
                                      const spec::SplitSpec& spec, const JsonDocument* doc) {
  auto spans = named_spans(g, const_like, spec);
  std::vector<Cut> cuts;
  for (const auto& sp : spec.split_points) {
    Cut c;
    c.pointer = sp.pointer;
    const std::string at = sp.at_end ? "end" : "begin";
    switch (sp.kind) {
      case spec::SplitPoint::Kind::Module: {
        c.label = "module '" + sp.name + "' at " + at;
        auto it = spans.find(sp.name);
        if (it == spans.end()) {
          std::vector<std::string> names;
          for (const auto& kv : module_spans(g, const_like)) names.push_back(kv.first);
          bool exists_const = false;
          for (size_t i = 0; i < g.nodes.size(); ++i)
            exists_const =
                exists_const ||
                (const_like[i] && (g.nodes[i].module == sp.name || g.nodes[i].module.rfind(sp.name + ".", 0) == 0));
          if (exists_const)
            throw located(
                doc, sp.pointer,
                "module '" + sp.name +
                    "' holds only constants (cloned into the stages that use them); there is nothing to cut at");
          if (const ir::Node* holder = nested_holder(g, sp.name))
            throw located(doc, sp.pointer,
                          "module '" + sp.name + "' is inside control-flow node '" + holder->name + "' (" + holder->op +
                              "); a cut cannot fall inside a block: cut at the module holding that node instead");
          std::string hint = sp.name.empty() ? "" : did_you_mean(sp.name, names);
          throw located(doc, sp.pointer, "unknown module '" + sp.name + "'" + hint);
        }
        c.position = sp.at_end ? it->second.last + 1 : it->second.first;
        break;
      }
      case spec::SplitPoint::Kind::Node: {
        c.label = "node '" + sp.name + "' at " + at;
        ir::NodeId n = g.find_node(sp.name);
        if (n == ir::kNone) {
          std::vector<std::string> names;
          for (const auto& node : g.nodes) names.push_back(node.name);
          throw located(doc, sp.pointer, "unknown node '" + sp.name + "'" + did_you_mean(sp.name, names));
        }
        c.position = sp.at_end ? n + 1 : n;
        break;
      }
      case spec::SplitPoint::Kind::Value: {
        c.label = "value '" + sp.name + "'";
        ir::ValueId v = g.find_value(sp.name);
        if (v == ir::kNone) {
          std::vector<std::string> names;
          for (const auto& val : g.values) names.push_back(val.name);
          throw located(doc, sp.pointer, "unknown value '" + sp.name + "'" + did_you_mean(sp.name, names));
        }
        const ir::Value& val = g.values[v];
        if (val.producer == ir::kNone)
          throw located(doc, sp.pointer,
                        "value '" + sp.name + "' is a model " + (val.param != ir::kNone ? "parameter" : "input") +
                            ", not produced by a node; cut at a value some node computes");
        c.position = val.producer + 1;
        break;
      }
    }
    cuts.push_back(c);
  }
  check_cuts(g, const_like, cuts, doc);
  return cuts;
}

void check_cuts(const ir::Graph& g, const std::vector<bool>& const_like, const std::vector<Cut>& cuts,
                const JsonDocument* doc) {
  // prefix[i] = placeable nodes before position i
  std::vector<int> prefix(g.nodes.size() + 1, 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) prefix[i + 1] = prefix[i] + (const_like[i] ? 0 : 1);
  int prev = 0;
  std::string prev_label = "the start of the graph";
  for (size_t k = 0; k <= cuts.size(); ++k) {
    int pos = k < cuts.size() ? cuts[k].position : static_cast<int>(g.nodes.size());
    if (k < cuts.size() && pos < prev)
      throw located(doc, cuts[k].pointer,
                    "split point " + cuts[k].label + " comes before the previous one (" + prev_label +
                        "); list split points in graph order");
    if (prefix[pos] - prefix[prev] == 0) {
      std::string stage = "stage " + std::to_string(k);
      if (k < cuts.size())
        throw located(
            doc, cuts[k].pointer,
            "split point " + cuts[k].label + " leaves " + stage + " empty (nothing between it and " + prev_label + ")");
      throw located(doc, cuts.empty() ? "" : cuts.back().pointer,
                    "split point " + (cuts.empty() ? std::string("?") : cuts.back().label) +
                        " leaves the last stage empty (it is at the end of the graph)");
    }
    if (k < cuts.size()) {
      prev = pos;
      prev_label = "split point " + cuts[k].label;
    }
  }
}

}  // namespace ppc::analysis
