// The one partition IR: a format-agnostic dataflow graph that frontends lower
// into, analyses read, and emitters map back to the source format.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace ppc::ir {

/// Element types the IR distinguishes. Frontends map their own type codes
/// onto these; anything else is `Other` (kept opaque, never differentiable).
enum class DType {
  Undefined,
  Float32,
  Float64,
  Float16,
  BFloat16,
  Int64,
  Int32,
  Int16,
  Int8,
  UInt8,
  Bool,
  String,
  Other,
};

/// Canonical lowercase name ("float32", "int64", ...), used in manifests.
const char* dtype_name(DType t);
/// Inverse of dtype_name; nullopt for unknown names.
std::optional<DType> dtype_from_name(const std::string& name);
/// Size of one element in bytes (0 for String/Other/Undefined).
int dtype_size(DType t);
/// True for floating types, whose values can carry gradients.
bool dtype_is_float(DType t);

/// One dimension: a known extent, a named symbolic extent, or unknown.
struct Dim {
  int64_t value = -1;  ///< >= 0 when known
  std::string symbol;  ///< non-empty when symbolic (e.g. "batch")

  static Dim known(int64_t v) { return Dim{v, {}}; }
  static Dim symbolic(std::string s) { return Dim{-1, std::move(s)}; }
  static Dim unknown() { return Dim{}; }
  bool is_known() const { return value >= 0; }
  bool is_symbolic() const { return value < 0 && !symbol.empty(); }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
};

/// A tensor shape; `rank_known == false` means nothing is known.
struct Shape {
  bool rank_known = false;
  std::vector<Dim> dims;

  static Shape unranked() { return Shape{}; }
  static Shape of(std::vector<Dim> d) { return Shape{true, std::move(d)}; }
  /// Product of the dims, treating every non-known dim as `symbolic_value`.
  double numel(double symbolic_value = 1.0) const;
  /// "[batch,512]", "[?,3]", "[]" (scalar) or "?" (unranked).
  std::string str() const;
  bool operator==(const Shape& o) const { return rank_known == o.rank_known && dims == o.dims; }
};

using ValueId = int;
using NodeId = int;
constexpr int kNone = -1;

/// A dataflow value (SSA): produced by one node, a graph input, or a param.
struct Value {
  std::string name;
  DType dtype = DType::Undefined;
  Shape shape;
  NodeId producer = kNone;        ///< kNone for graph inputs and params
  std::vector<NodeId> consumers;  ///< in node order, one entry per use
  int graph_input = kNone;        ///< index into Graph::inputs, or kNone
  int param = kNone;              ///< index into Graph::params, or kNone
  bool is_graph_output = false;
  /// A non-tensor scalar (a TorchScript int/float/bool): crosses stages as a
  /// 0-d tensor of `dtype`, never differentiable.
  bool scalar = false;
  /// Elements at the size the cost model uses (batch 1, other symbolic dims
  /// as the user gave them), when the frontend computed it; -1: use
  /// shape.numel(1.0).
  double cost_numel = -1;
};

/// Node flags the frontend sets; analyses never look at op names.
enum NodeFlags : unsigned {
  kNodeNone = 0,
  /// Produces a value from attributes alone (ONNX Constant, prim::Constant).
  kNodeConstantSource = 1u << 0,
  /// Output differs between runs with equal inputs (random ops): never cloned.
  kNodeNondeterministic = 1u << 1,
  /// Contains nested blocks (If/Loop): atomic for cutting.
  kNodeHasSubgraph = 1u << 2,
};

/// An operation. Opaque to analyses except for the fields below.
struct Node {
  std::string name;             ///< unique within the graph
  std::string op;               ///< e.g. "Gemm", "aten::linear"
  std::string module;           ///< dotted module path, "" = root scope
  std::vector<ValueId> inputs;  ///< kNone for omitted optional inputs
  std::vector<ValueId> outputs;
  unsigned flags = kNodeNone;
  double flops = 0.0;    ///< estimated forward FLOPs (cost model)
  int source_index = 0;  ///< position in the source model (frontend handle)
};

/// A trainable or constant tensor stored with the model.
struct Param {
  std::string name;
  ValueId value = kNone;
  int64_t bytes = 0;
  /// Name of the stored tensor that holds this param's data. Equal to `name`
  /// unless the frontend split a deduplicated tensor into independent params.
  std::string data_source;
  /// Content fingerprints computed by the frontend (empty when unavailable):
  /// of the data as stored, and of its 2-D transpose. Used for tie detection.
  std::string content_hash;
  std::string transpose_hash;
  bool is_uniform = false;  ///< every element equal (never a tie candidate)
  bool is_float = false;
  /// Part of the source module's state_dict() under `name` (false: an
  /// exporter's constant, or a buffer registered persistent=False).
  bool is_state = true;
  /// Other state_dict() names of the same tensor that the exporter did not
  /// store (a tied parameter stored once), in state_dict() order.
  std::vector<std::string> aliases;
};

/// Ids by name, where the names are held elsewhere (`name_of(id)`, e.g. the
/// graph's values): open addressing over (hash, id) slots, so a large graph
/// costs no allocation per name, to build or to free.
class NameIndex {
 public:
  /// The id named `name`, or kNone.
  template <class NameOf>
  int find(std::string_view name, const NameOf& name_of) const {
    if (slots_.empty()) return kNone;
    const uint64_t h = hash(name);
    for (size_t i = h & mask(); slots_[i].id != kNone; i = (i + 1) & mask())
      if (slots_[i].hash == h && name_of(slots_[i].id) == name) return slots_[i].id;
    return kNone;
  }
  /// Adds `id` under `name`; false (and nothing added) if the name is taken.
  template <class NameOf>
  bool insert(std::string_view name, int id, const NameOf& name_of) {
    if (2 * (size_ + 1) > slots_.size()) grow();
    const uint64_t h = hash(name);
    size_t i = h & mask();
    for (; slots_[i].id != kNone; i = (i + 1) & mask())
      if (slots_[i].hash == h && name_of(slots_[i].id) == name) return false;
    slots_[i] = Slot{h, id};
    ++size_;
    return true;
  }
  void clear() {
    slots_.clear();
    size_ = 0;
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    int id = kNone;
  };
  static uint64_t hash(std::string_view s) {  // FNV-1a
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h ^ (h >> 29);
  }
  size_t mask() const { return slots_.size() - 1; }
  void grow() {
    std::vector<Slot> old(std::max<size_t>(16, 2 * slots_.size()));
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.id == kNone) continue;
      size_t i = s.hash & mask();
      while (slots_[i].id != kNone) i = (i + 1) & mask();
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

/// The graph. Nodes are kept in one deterministic topological order.
class Graph {
 public:
  std::string name;
  std::vector<Node> nodes;
  std::vector<Value> values;
  std::vector<Param> params;
  std::vector<ValueId> inputs;   ///< model inputs (not params), in source order
  std::vector<ValueId> outputs;  ///< model outputs, in source order
  /// Module paths that occur only inside the blocks of subgraph-carrying nodes
  /// (kNodeHasSubgraph: TorchScript prim::If/prim::Loop, ONNX If/Loop/Scan),
  /// each mapped to the first top-level node whose block holds it. Filled by
  /// the frontends; split-point resolution uses it to explain why such a
  /// module cannot be cut at. sort_topologically() keeps the ids current.
  std::map<std::string, NodeId> nested_modules;

  /// Adds a value; names must be unique (throws std::logic_error otherwise).
  ValueId add_value(const std::string& name, DType dtype = DType::Undefined, Shape shape = {});
  ValueId add_input(const std::string& name, DType dtype, Shape shape);
  ValueId add_param(const std::string& name, DType dtype, Shape shape, int64_t bytes);
  /// Appends a node; input/output values must exist; outputs must be unproduced.
  NodeId add_node(Node node);
  void mark_output(ValueId v);

  ValueId find_value(const std::string& name) const;  ///< kNone if absent
  NodeId find_node(const std::string& name) const;    ///< kNone if absent

  /// Re-sorts nodes topologically, preferring the current order (stable Kahn);
  /// renumbers node ids and updates all references. Throws std::runtime_error
  /// naming a node on a cycle if there is one.
  void sort_topologically();

  /// Checks internal consistency (ids in range, producer/consumer links,
  /// topological order, unique names); returns "" or the first problem.
  std::string verify() const;

 private:
  auto value_name() const {
    return [this](int id) -> std::string_view { return values[id].name; };
  }
  auto node_name() const {
    return [this](int id) -> std::string_view { return nodes[id].name; };
  }
  NameIndex value_index_;  // over values[id].name
  NameIndex node_index_;   // over nodes[id].name
};

}  // namespace ppc::ir
