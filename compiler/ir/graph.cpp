#include "compiler/ir/graph.h"

#include <algorithm>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_set>

namespace ppc::ir {

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  int size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::Undefined, "undefined", 0}, {DType::Float32, "float32", 4},   {DType::Float64, "float64", 8},
    {DType::Float16, "float16", 2},     {DType::BFloat16, "bfloat16", 2}, {DType::Int64, "int64", 8},
    {DType::Int32, "int32", 4},         {DType::Int16, "int16", 2},       {DType::Int8, "int8", 1},
    {DType::UInt8, "uint8", 1},         {DType::Bool, "bool", 1},         {DType::String, "string", 0},
    {DType::Other, "other", 0},
};
}  // namespace

const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "other";
}

std::optional<DType> dtype_from_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  return std::nullopt;
}

int dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

bool dtype_is_float(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}

double Shape::numel(double symbolic_value) const {
  if (!rank_known) return symbolic_value;
  double n = 1.0;
  for (const auto& d : dims) n *= d.is_known() ? static_cast<double>(d.value) : symbolic_value;
  return n;
}

std::string Shape::str() const {
  if (!rank_known) return "?";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    const Dim& d = dims[i];
    if (d.is_known())
      s += std::to_string(d.value);
    else if (d.is_symbolic())
      s += d.symbol;
    else
      s += "?";
  }
  return s + "]";
}

ValueId Graph::add_value(const std::string& vname, DType dtype, Shape shape) {
  if (vname.empty()) throw std::logic_error("ir: value with an empty name");
  Value v;
  v.name = vname;
  v.dtype = dtype;
  v.shape = std::move(shape);
  values.push_back(std::move(v));
  ValueId id = static_cast<ValueId>(values.size() - 1);
  if (!value_index_.insert(values[id].name, id, value_name())) {  // one probe finds a taken name
    values.pop_back();
    throw std::logic_error("ir: duplicate value '" + vname + "'");
  }
  return id;
}

ValueId Graph::add_input(const std::string& vname, DType dtype, Shape shape) {
  ValueId id = add_value(vname, dtype, std::move(shape));
  values[id].graph_input = static_cast<int>(inputs.size());
  inputs.push_back(id);
  return id;
}

ValueId Graph::add_param(const std::string& pname, DType dtype, Shape shape, int64_t bytes) {
  ValueId id = add_value(pname, dtype, std::move(shape));
  Param p;
  p.name = pname;
  p.value = id;
  p.bytes = bytes;
  p.data_source = pname;
  p.is_float = dtype_is_float(dtype);
  values[id].param = static_cast<int>(params.size());
  params.push_back(std::move(p));
  return id;
}

NodeId Graph::add_node(Node node) {
  if (node.name.empty()) throw std::logic_error("ir: node with an empty name");
  if (find_node(node.name) != kNone) throw std::logic_error("ir: duplicate node '" + node.name + "'");
  NodeId id = static_cast<NodeId>(nodes.size());
  for (ValueId v : node.inputs) {
    if (v == kNone) continue;
    if (v < 0 || v >= static_cast<int>(values.size())) throw std::logic_error("ir: bad input id");
    values[v].consumers.push_back(id);
  }
  for (ValueId v : node.outputs) {
    if (v < 0 || v >= static_cast<int>(values.size())) throw std::logic_error("ir: bad output id");
    Value& val = values[v];
    if (val.producer != kNone || val.graph_input != kNone || val.param != kNone)
      throw std::logic_error("ir: value '" + val.name + "' defined twice");
    val.producer = id;
  }
  nodes.push_back(std::move(node));
  node_index_.insert(nodes[id].name, id, node_name());
  return id;
}

void Graph::mark_output(ValueId v) {
  values.at(v).is_graph_output = true;
  outputs.push_back(v);
}

ValueId Graph::find_value(const std::string& vname) const { return value_index_.find(vname, value_name()); }

NodeId Graph::find_node(const std::string& nname) const { return node_index_.find(nname, node_name()); }

void Graph::sort_topologically() {
  const int n = static_cast<int>(nodes.size());
  std::vector<int> pending(n, 0);
  for (int i = 0; i < n; ++i)
    for (ValueId v : nodes[i].inputs)
      if (v != kNone && values[v].producer != kNone) ++pending[i];
  // Stable Kahn: among ready nodes always take the one that came first, so a
  // graph already in topological order (every exported model) is unchanged.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (int i = 0; i < n; ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<int> order;
  order.reserve(n);
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (ValueId v : nodes[i].outputs)
      for (NodeId c : values[v].consumers)
        if (--pending[c] == 0) ready.push(c);
  }
  if (static_cast<int>(order.size()) != n) {
    // Every unsorted node has an unsorted producer among its inputs. The first
    // unsorted node may only depend on a cycle, so walk back along unsorted
    // producers until a node repeats: that node is on a cycle.
    int i = 0;
    while (pending[i] == 0) ++i;
    std::vector<bool> visited(n, false);
    while (!visited[i]) {
      visited[i] = true;
      for (ValueId v : nodes[i].inputs) {
        if (v == kNone) continue;
        NodeId p = values[v].producer;
        if (p != kNone && pending[p] > 0) {
          i = p;
          break;
        }
      }
    }
    throw std::runtime_error("graph has a cycle through node '" + nodes[i].name + "'");
  }
  bool unchanged = true;
  for (int k = 0; k < n && unchanged; ++k) unchanged = order[k] == k;
  if (unchanged) {  // already in order (every exported model): ids stay, consumers only get sorted
    for (auto& v : values) std::sort(v.consumers.begin(), v.consumers.end());
    return;
  }
  std::vector<int> new_id(n);
  for (int k = 0; k < n; ++k) new_id[order[k]] = k;
  std::vector<Node> sorted(n);
  for (int i = 0; i < n; ++i) sorted[new_id[i]] = std::move(nodes[i]);
  nodes = std::move(sorted);
  for (auto& v : values) {
    if (v.producer != kNone) v.producer = new_id[v.producer];
    for (auto& c : v.consumers) c = new_id[c];
    std::sort(v.consumers.begin(), v.consumers.end());
  }
  for (auto& kv : nested_modules)
    if (kv.second >= 0 && kv.second < n) kv.second = new_id[kv.second];
  node_index_.clear();
  for (int i = 0; i < n; ++i) node_index_.insert(nodes[i].name, i, node_name());
}

std::string Graph::verify() const {
  const int nv = static_cast<int>(values.size());
  // Names are unique when the index maps each to its own id (what add_value
  // and add_node keep); otherwise find the first repeated name.
  bool indexed = value_index_.size() == values.size() && node_index_.size() == nodes.size();
  for (size_t i = 0; indexed && i < values.size(); ++i) indexed = find_value(values[i].name) == static_cast<int>(i);
  for (size_t i = 0; indexed && i < nodes.size(); ++i) indexed = find_node(nodes[i].name) == static_cast<int>(i);
  if (!indexed) {
    std::unordered_set<std::string_view> seen_names;
    for (const Value& v : values)
      if (!seen_names.insert(v.name).second) return "value name '" + v.name + "' is used twice";
    seen_names.clear();
    for (const Node& node : nodes)
      if (!seen_names.insert(node.name).second) return "node name '" + node.name + "' is used twice";
  }
  // The nodes reading each value, one entry per use (what Value::consumers
  // holds), in node order: value v's are use_node[use_start[v] .. use_start[v + 1]).
  std::vector<int> use_start(values.size() + 1, 0);
  for (const Node& node : nodes)
    for (ValueId v : node.inputs)
      if (v >= 0 && v < nv) ++use_start[v + 1];
  for (int v = 0; v < nv; ++v) use_start[v + 1] += use_start[v];
  std::vector<NodeId> use_node(use_start[nv]);
  std::vector<int> filled(use_start.begin(), use_start.end() - 1);
  for (int i = 0; i < static_cast<int>(nodes.size()); ++i) {
    const Node& node = nodes[i];
    for (ValueId v : node.inputs) {
      if (v == kNone) continue;
      if (v < 0 || v >= nv) return "node '" + node.name + "' has an input id out of range";
      const Value& val = values[v];
      if (val.producer == kNone && val.graph_input == kNone && val.param == kNone)
        return "value '" + val.name + "' used by '" + node.name + "' is never defined";
      if (val.producer != kNone && val.producer >= i)
        return "node '" + node.name + "' uses '" + val.name + "' before it is produced";
      use_node[filled[v]++] = i;
    }
    for (ValueId v : node.outputs) {
      if (v < 0 || v >= nv) return "node '" + node.name + "' has an output id out of range";
      if (values[v].producer != i) return "value '" + values[v].name + "' has an inconsistent producer";
    }
  }
  for (int v = 0; v < nv; ++v) {
    const std::vector<NodeId>& c = values[v].consumers;
    const auto uses = use_node.begin() + use_start[v];
    const size_t n_uses = static_cast<size_t>(use_start[v + 1] - use_start[v]);
    bool same = c.size() == n_uses;
    if (same && std::is_sorted(c.begin(), c.end())) {
      same = std::equal(c.begin(), c.end(), uses);
    } else if (same) {
      std::vector<NodeId> listed = c;
      std::sort(listed.begin(), listed.end());
      same = std::equal(listed.begin(), listed.end(), uses);
    }
    if (!same) return "value '" + values[v].name + "' has inconsistent consumers";
  }
  for (ValueId v : outputs) {
    if (v < 0 || v >= nv) return "a model output id is out of range";
    const Value& val = values[v];
    if (val.producer == kNone && val.graph_input == kNone && val.param == kNone)
      return "model output '" + val.name + "' is never defined";
  }
  for (const auto& [path, id] : nested_modules) {
    if (id < 0 || id >= static_cast<int>(nodes.size()))
      return "nested module '" + path + "' names a node id out of range";
    if (!(nodes[id].flags & kNodeHasSubgraph))
      return "nested module '" + path + "' is held by node '" + nodes[id].name + "', which has no subgraph";
  }
  return "";
}

}  // namespace ppc::ir
