#include "compiler/frontends/onnx/onnx_frontend.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "compiler/frontends/onnx/module_path.h"
#include "compiler/frontends/onnx/onnx_source.h"
#include "schemas/error.h"
#include "schemas/onnx_external_data.h"
#include "schemas/sha256.h"

namespace ppc::onnx_frontend {

const onnx::TensorProto& OnnxSource::initializer(const std::string& name) const {
  const int at = initializer_at(name);
  if (at == ir::kNone) throw std::logic_error("onnx: no initializer '" + name + "'");
  return model_.graph().initializer(at);
}

const onnx::TypeProto* OnnxSource::value_type(const std::string& name) const {
  const int k = types_index_.find(name, type_name());
  return k == ir::kNone ? nullptr : types_[k].second;
}

namespace {

ir::DType dtype_of(int32_t t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return ir::DType::Float32;
    case onnx::TensorProto::DOUBLE: return ir::DType::Float64;
    case onnx::TensorProto::FLOAT16: return ir::DType::Float16;
    case onnx::TensorProto::BFLOAT16: return ir::DType::BFloat16;
    case onnx::TensorProto::INT64: return ir::DType::Int64;
    case onnx::TensorProto::INT32: return ir::DType::Int32;
    case onnx::TensorProto::INT16: return ir::DType::Int16;
    case onnx::TensorProto::INT8: return ir::DType::Int8;
    case onnx::TensorProto::UINT8: return ir::DType::UInt8;
    case onnx::TensorProto::BOOL: return ir::DType::Bool;
    case onnx::TensorProto::STRING: return ir::DType::String;
    case onnx::TensorProto::UNDEFINED: return ir::DType::Undefined;
    default: return ir::DType::Other;
  }
}

ir::Shape shape_of(const onnx::TypeProto& t) {
  if (!t.has_tensor_type() || !t.tensor_type().has_shape()) return ir::Shape::unranked();
  ir::Shape s = ir::Shape::of({});
  for (const auto& d : t.tensor_type().shape().dim()) {
    if (d.has_dim_value())
      s.dims.push_back(ir::Dim::known(d.dim_value()));
    else if (d.has_dim_param() && !d.dim_param().empty())
      s.dims.push_back(ir::Dim::symbolic(d.dim_param()));
    else
      s.dims.push_back(ir::Dim::unknown());
  }
  return s;
}

ir::Shape shape_of(const onnx::TensorProto& t) {
  ir::Shape s = ir::Shape::of({});
  for (int64_t d : t.dims()) s.dims.push_back(ir::Dim::known(d));
  return s;
}

int64_t numel(const onnx::TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  return n;
}

// Raw little-endian bytes of a tensor, whichever field holds them.
std::string tensor_bytes(const onnx::TensorProto& t) {
  if (t.has_raw_data()) return t.raw_data();
  std::string out;
  auto append = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      for (float f : t.float_data()) append(&f, 4);
      break;
    case onnx::TensorProto::DOUBLE:
      for (double d : t.double_data()) append(&d, 8);
      break;
    case onnx::TensorProto::INT64:
      for (int64_t v : t.int64_data()) append(&v, 8);
      break;
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: {
      int size = ir::dtype_size(dtype_of(t.data_type()));
      for (int32_t v : t.int32_data()) append(&v, static_cast<size_t>(size));
      break;
    }
    default: break;
  }
  return out;
}

bool is_subgraph_op(const onnx::NodeProto& n) {
  for (const auto& a : n.attribute())
    if (a.has_g() || a.graphs_size() > 0) return true;
  return false;
}

bool is_random_op(const std::string& op) {
  static const std::set<std::string> kRandom = {"RandomNormal",      "RandomNormalLike", "RandomUniform",
                                                "RandomUniformLike", "Multinomial",      "Bernoulli"};
  return kRandom.count(op) > 0;
}

// Names a subgraph reads from enclosing scopes (implicit inputs of If/Loop/Scan).
void outer_names(const onnx::GraphProto& g, std::set<std::string> defined, std::set<std::string>& out) {
  for (const auto& i : g.input()) defined.insert(i.name());
  for (const auto& i : g.initializer()) defined.insert(i.name());
  for (const auto& n : g.node()) {
    for (const auto& in : n.input())
      if (!in.empty() && !defined.count(in)) out.insert(in);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) outer_names(a.g(), defined, out);
      for (const auto& sg : a.graphs()) outer_names(sg, defined, out);
    }
    for (const auto& o : n.output()) defined.insert(o);
  }
  for (const auto& o : g.output())
    if (!defined.count(o.name())) out.insert(o.name());
}

// The nodes inside a node's subgraphs (If branches, Loop/Scan bodies), at any depth.
void subgraph_nodes(const onnx::NodeProto& n, std::vector<const onnx::NodeProto*>& out) {
  auto walk = [&out](const onnx::GraphProto& sg) {
    for (const auto& inner : sg.node()) {
      out.push_back(&inner);
      subgraph_nodes(inner, out);
    }
  };
  for (const auto& a : n.attribute()) {
    if (a.has_g()) walk(a.g());
    for (const auto& sg : a.graphs()) walk(sg);
  }
}

// A node's module path: from the dynamo exporter's metadata where the node
// has it, else from the scopes in its name (the TorchScript-based exporter).
std::string node_module(const onnx::NodeProto& p, const std::set<std::string>& scopes) {
  for (const auto& kv : p.metadata_props())
    if (kv.key() == "pkg.torch.onnx.name_scopes")
      if (auto list = parse_python_str_list(kv.value())) return module_from_name_scopes(*list);
  return module_path(scope_segments(p.name()), scopes);
}

// The dynamo exporter's graph signature (graph metadata
// pkg.torch.export.ExportedProgram.graph_signature): which initializers are the
// module's parameters and buffers ("p_x: PARAMETER target='h.0.ln_1.weight'",
// "b_x: BUFFER target='...'"); the others are the exporter's constants. Empty
// for other exporters.
struct GraphSignature {
  std::set<std::string> parameters, buffers;
  std::set<std::string> transient;  ///< buffers registered persistent=False: not in state_dict()
  std::vector<std::string> order;   ///< parameters and buffers in the signature's order (state_dict's)
  bool empty() const { return parameters.empty() && buffers.empty(); }
};

GraphSignature graph_signature(const onnx::GraphProto& g) {
  GraphSignature sig;
  for (const auto& kv : g.metadata_props()) {
    if (kv.key() != "pkg.torch.export.ExportedProgram.graph_signature") continue;
    std::istringstream lines(kv.value());
    for (std::string line; std::getline(lines, line);) {
      for (auto [marker, set] :
           {std::pair<const char*, std::set<std::string>*>{": PARAMETER target='", &sig.parameters},
            {": BUFFER target='", &sig.buffers}}) {
        size_t at = line.find(marker);
        if (at == std::string::npos) continue;
        at += std::strlen(marker);
        size_t end = line.find('\'', at);
        if (end == std::string::npos) continue;
        std::string target = line.substr(at, end - at);
        if (set->insert(target).second) sig.order.push_back(target);
        if (set == &sig.buffers && line.find("persistent=False", end) != std::string::npos)
          sig.transient.insert(target);
      }
    }
  }
  return sig;
}

// Whether every element of a tensor's raw bytes (elements of `elem` bytes) is
// equal to the first: ones, zeros, a filled constant.
bool uniform_bytes(const std::string& bytes, size_t elem) {
  if (elem == 0 || bytes.size() < elem) return false;
  for (size_t i = elem; i + elem <= bytes.size(); i += elem)
    if (bytes.compare(i, elem, bytes, 0, elem) != 0) return false;
  return true;
}

// "h.0.ln_1.weight" -> module "h.0.ln_1", leaf "weight" ("w" -> "", "w").
std::string module_of(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}
std::string leaf_of(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// The dynamo exporter's optimizer merges initializers of equal content into
// one, under the first's name: every LayerNorm weight of a freshly built model
// (all ones) becomes `h.0.ln_1.weight`, every zero bias one tensor, every
// layer's causal-mask buffer one buffer. PyTorch has separate tensors there,
// and trains them apart. Give each merged parameter or buffer its own
// initializer again: a node in module M that reads merged initializer X, where
// the signature has a tensor M.<leaf of X> that is no initializer, reads a
// copy of X under that name. A parameter is split only where X is uniform
// (ones, zeros: what equal initialisations look like); a non-uniform one
// shared across modules is a real tie (an embedding and its LM head) and
// stays one. Returns how many tensors were split off.
int unshare_merged_initializers(onnx::ModelProto& model, const GraphSignature& sig,
                                const std::set<std::string>& scopes) {
  if (sig.empty()) return 0;
  onnx::GraphProto* g = model.mutable_graph();
  std::map<std::string, int> init;
  for (int i = 0; i < g->initializer_size(); ++i) init[g->initializer(i).name()] = i;
  auto missing = [&](const std::string& name) {
    return (sig.parameters.count(name) || sig.buffers.count(name)) && !init.count(name);
  };
  std::map<std::string, std::string> made;  // new name -> the initializer it copies
  int split_off = 0;
  for (auto& n : *g->mutable_node()) {
    const std::string module = node_module(n, scopes);
    for (auto& in : *n.mutable_input()) {
      auto it = init.find(in);
      if (it == init.end()) continue;
      const std::string own = module.empty() ? leaf_of(in) : module + "." + leaf_of(in);
      if (own == in) continue;
      auto done = made.find(own);
      if (done != made.end()) {
        if (done->second == in) in = own;
        continue;
      }
      if (!missing(own)) continue;
      const onnx::TensorProto& t = g->initializer(it->second);
      const bool buffer = sig.buffers.count(own) > 0;
      const size_t elem = static_cast<size_t>(ir::dtype_size(dtype_of(t.data_type())));
      if (!buffer && !(t.has_raw_data() && uniform_bytes(t.raw_data(), elem))) continue;
      onnx::TensorProto copy = t;
      copy.set_name(own);
      made[own] = in;
      *g->add_initializer() = std::move(copy);
      init[own] = g->initializer_size() - 1;
      in = own;
      ++split_off;
    }
  }
  return split_off;
}

const ir::Shape* shape_in(const ir::Graph& g, ir::ValueId v) { return v == ir::kNone ? nullptr : &g.values[v].shape; }

int64_t dim_or(const ir::Shape* s, int idx, int64_t fallback = 1) {
  if (!s || !s->rank_known) return fallback;
  int r = static_cast<int>(s->dims.size());
  if (idx < 0) idx += r;
  if (idx < 0 || idx >= r) return fallback;
  return s->dims[idx].is_known() ? s->dims[idx].value : fallback;
}

// Forward FLOPs from shapes; symbolic dims count as 1.
double estimate_flops(const ir::Graph& g, const ir::Node& n, const onnx::NodeProto& p) {
  const ir::Shape* out = n.outputs.empty() ? nullptr : shape_in(g, n.outputs[0]);
  double out_elems = out ? out->numel(1.0) : 1.0;
  const ir::Shape* a = n.inputs.size() > 0 ? shape_in(g, n.inputs[0]) : nullptr;
  const ir::Shape* b = n.inputs.size() > 1 ? shape_in(g, n.inputs[1]) : nullptr;
  if (n.op == "MatMul") return 2.0 * out_elems * static_cast<double>(dim_or(a, -1));
  if (n.op == "Gemm") {
    int64_t trans_a = 0;
    for (const auto& at : p.attribute())
      if (at.name() == "transA") trans_a = at.i();
    return 2.0 * out_elems * static_cast<double>(dim_or(a, trans_a ? 0 : 1));
  }
  if (n.op == "Conv" && b && b->rank_known) {
    double k = 1.0;
    for (size_t i = 1; i < b->dims.size(); ++i) k *= static_cast<double>(dim_or(b, static_cast<int>(i)));
    return 2.0 * out_elems * k;
  }
  if (n.op == "ConvTranspose" && b && b->rank_known) {
    double k = 1.0;
    for (size_t i = 1; i < b->dims.size(); ++i) k *= static_cast<double>(dim_or(b, static_cast<int>(i)));
    return 2.0 * (a ? a->numel(1.0) : 1.0) * k;
  }
  if (n.op == "Constant" || n.op == "Shape" || n.op == "Size") return 0.0;
  return out_elems;
}

std::string read_file(const std::string& path, const std::string& display) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(display + ": cannot read model file: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Output shape of Reshape from its input shape and the (data-propagated)
// target; -1 and 0 resolved where the dims allow it.
bool reshape_output(const onnx::TensorShapeProto* in, const onnx::TensorShapeProto& target, bool allowzero,
                    onnx::TensorShapeProto& out) {
  out.Clear();
  int minus_one = -1;
  for (int i = 0; i < target.dim_size(); ++i) {
    const auto& t = target.dim(i);
    auto* d = out.add_dim();
    if (t.has_dim_value()) {
      int64_t v = t.dim_value();
      if (v > 0) {
        d->set_dim_value(v);
      } else if (v == 0 && !allowzero) {
        if (!in || i >= in->dim_size()) continue;
        *d = in->dim(i);
      } else if (v == -1) {
        minus_one = i;
      } else if (v == 0) {
        d->set_dim_value(0);
      }
    } else if (t.has_dim_param()) {
      d->set_dim_param(t.dim_param());
    }
  }
  if (minus_one >= 0 && in) {
    // Known product of the input / known product of the other target dims.
    int64_t in_prod = 1, out_prod = 1;
    bool known = true;
    for (const auto& d : in->dim()) known = known && d.has_dim_value() && (in_prod *= d.dim_value(), true);
    for (int i = 0; i < out.dim_size(); ++i)
      if (i != minus_one) known = known && out.dim(i).has_dim_value() && (out_prod *= out.dim(i).dim_value(), true);
    if (known && out_prod > 0) out.mutable_dim(minus_one)->set_dim_value(in_prod / out_prod);
  }
  return true;
}

// ONNX shape inference with data propagation, plus one thing it lacks before
// Reshape-14: Reshape-13 ignores a computed (Shape->Gather->Concat) target, so
// every shape after the first attention reshape is lost. Fill those in from
// the propagated data (or at least the rank) and infer again until nothing
// changes.
// Integer values known before running: Constant nodes, initializers, and
// what data propagation computed (Shape -> Gather -> Unsqueeze chains).
std::optional<std::vector<int64_t>> known_ints(const onnx::GraphProto& g, const std::string& name,
                                               const std::unordered_map<std::string, onnx::TensorShapeProto>& data) {
  auto from_tensor = [](const onnx::TensorProto& t) -> std::optional<std::vector<int64_t>> {
    std::vector<int64_t> v;
    if (t.data_type() == onnx::TensorProto::INT64) {
      if (t.has_raw_data()) {
        const std::string& r = t.raw_data();
        v.resize(r.size() / 8);
        std::memcpy(v.data(), r.data(), v.size() * 8);
      } else {
        v.assign(t.int64_data().begin(), t.int64_data().end());
      }
    } else if (t.data_type() == onnx::TensorProto::INT32) {
      if (t.has_raw_data()) {
        const std::string& r = t.raw_data();
        std::vector<int32_t> w(r.size() / 4);
        std::memcpy(w.data(), r.data(), w.size() * 4);
        v.assign(w.begin(), w.end());
      } else {
        v.assign(t.int32_data().begin(), t.int32_data().end());
      }
    } else {
      return std::nullopt;
    }
    return v;
  };
  auto it = data.find(name);
  if (it != data.end()) {
    std::vector<int64_t> v;
    for (const auto& d : it->second.dim()) {
      if (!d.has_dim_value()) return std::nullopt;
      v.push_back(d.dim_value());
    }
    return v;
  }
  for (const auto& t : g.initializer())
    if (t.name() == name) return from_tensor(t);
  for (const auto& n : g.node())
    if (n.op_type() == "Constant" && n.output_size() == 1 && n.output(0) == name)
      for (const auto& a : n.attribute())
        if (a.name() == "value" && a.has_t()) return from_tensor(a.t());
  return std::nullopt;
}

// Slice's output shape where ONNX's inference leaves it out (ends computed
// from a Shape at run time, e.g. a causal mask cut to the sequence length):
// the input's rank always, and each sliced dim when its bounds are known.
bool slice_output(const onnx::TensorShapeProto& in, const onnx::GraphProto& g, const onnx::NodeProto& n,
                  const std::unordered_map<std::string, onnx::TensorShapeProto>& data, onnx::TensorShapeProto& out) {
  out = in;
  const int r = in.dim_size();
  auto starts = known_ints(g, n.input(1), data), ends = known_ints(g, n.input(2), data);
  std::optional<std::vector<int64_t>> axes, steps;
  if (n.input_size() > 3 && !n.input(3).empty()) axes = known_ints(g, n.input(3), data);
  if (n.input_size() > 4 && !n.input(4).empty()) steps = known_ints(g, n.input(4), data);
  bool bounds = starts && ends && starts->size() == ends->size() &&
                (n.input_size() <= 3 || n.input(3).empty() || axes) &&
                (n.input_size() <= 4 || n.input(4).empty() || steps);
  if (!bounds) {
    // Which axes are sliced is unknown: every dim may change.
    for (auto& d : *out.mutable_dim()) d.Clear();
    return true;
  }
  for (size_t k = 0; k < starts->size(); ++k) {
    int64_t axis = axes ? (*axes)[k] : static_cast<int64_t>(k);
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) return false;
    auto* d = out.mutable_dim(static_cast<int>(axis));
    int64_t step = steps ? (*steps)[k] : 1;
    if (!in.dim(static_cast<int>(axis)).has_dim_value() || step == 0) {
      d->Clear();
      continue;
    }
    const int64_t size = in.dim(static_cast<int>(axis)).dim_value();
    int64_t b = (*starts)[k], e = (*ends)[k];
    if (b < 0) b += size;
    if (e < 0) e += size;
    int64_t len;
    if (step > 0) {
      b = std::clamp<int64_t>(b, 0, size);
      e = std::clamp<int64_t>(e, 0, size);
      len = e > b ? (e - b + step - 1) / step : 0;
    } else {
      b = std::clamp<int64_t>(b, -1, size - 1);
      e = std::clamp<int64_t>(e, -1, size - 1);
      len = b > e ? (b - e - step - 1) / -step : 0;
    }
    d->Clear();
    d->set_dim_value(len);
  }
  return true;
}

// With `strict`, every round also checks each node's input and output types
// against its schema and fails at the end of a round where any node's
// inference failed (what the checker's full check adds): a model that gets
// through is consistent in its final types. A model without such errors gets
// the same types either way.
// Without `data_prop`, no values are propagated (see reads_propagated_data).
void infer_shapes(onnx::ModelProto& model, bool fill_slices = false, bool strict = false, bool data_prop = true) {
  onnx::ShapeInferenceOptions opts(/*check_type=*/strict, /*error_mode=*/strict ? 1 : 0, data_prop);
  for (int round = 0; round < 64; ++round) {
    std::unordered_map<std::string, onnx::TensorShapeProto> data;
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), opts, &data);
    onnx::GraphProto* g = model.mutable_graph();
    // Only Reshape (and, filling slices, Slice and Range) outputs are filled in below.
    auto fillable = [fill_slices](const onnx::NodeProto& n) {
      return n.domain().empty() &&
             (n.op_type() == "Reshape" || (fill_slices && (n.op_type() == "Slice" || n.op_type() == "Range")));
    };
    if (std::none_of(g->node().begin(), g->node().end(), fillable)) return;
    std::unordered_map<std::string, const onnx::TypeProto*> types;
    for (const auto& vi : g->input()) types[vi.name()] = &vi.type();
    for (const auto& vi : g->value_info()) types[vi.name()] = &vi.type();
    for (const auto& vi : g->output()) types[vi.name()] = &vi.type();
    std::vector<onnx::ValueInfoProto> added;
    for (const auto& n : g->node()) {
      if (fill_slices && n.op_type() == "Range" && n.domain().empty() && n.input_size() == 3 && n.output_size() == 1) {
        // Range's inference reads only constant inputs; its bounds may come
        // from a Shape (positions 0 .. seq): their propagated values.
        auto out_t = types.find(n.output(0));
        if (out_t == types.end()) continue;  // no element type inferred
        const auto& have = out_t->second->tensor_type();
        if (have.has_shape() && have.shape().dim_size() == 1 && have.shape().dim(0).has_dim_value()) continue;
        auto start = known_ints(*g, n.input(0), data), limit = known_ints(*g, n.input(1), data),
             delta = known_ints(*g, n.input(2), data);
        if (!start || !limit || !delta || start->size() != 1 || limit->size() != 1 || delta->size() != 1 ||
            (*delta)[0] == 0)
          continue;
        const int64_t span = (*limit)[0] - (*start)[0], step = (*delta)[0];
        const int64_t len = std::max<int64_t>(0, span / step + (span % step != 0 && (span > 0) == (step > 0)));
        onnx::ValueInfoProto vi;
        vi.set_name(n.output(0));
        auto* tt = vi.mutable_type()->mutable_tensor_type();
        tt->set_elem_type(have.elem_type());
        tt->mutable_shape()->add_dim()->set_dim_value(len);
        added.push_back(std::move(vi));
        continue;
      }
      if (fill_slices && n.op_type() == "Slice" && n.domain().empty() && n.input_size() >= 3 && n.output_size() == 1) {
        auto out_t = types.find(n.output(0));
        if (out_t != types.end() && out_t->second->tensor_type().has_shape()) continue;
        onnx::TensorShapeProto in_shape;
        int elem = 0;
        auto in_t = types.find(n.input(0));
        if (in_t != types.end() && in_t->second->tensor_type().has_shape()) {
          in_shape = in_t->second->tensor_type().shape();
          elem = in_t->second->tensor_type().elem_type();
        } else {
          auto init = std::find_if(g->initializer().begin(), g->initializer().end(),
                                   [&](const onnx::TensorProto& t) { return t.name() == n.input(0); });
          if (init == g->initializer().end()) continue;
          for (int64_t d : init->dims()) in_shape.add_dim()->set_dim_value(d);
          elem = init->data_type();
        }
        onnx::ValueInfoProto vi;
        vi.set_name(n.output(0));
        auto* tt = vi.mutable_type()->mutable_tensor_type();
        tt->set_elem_type(elem);
        if (!slice_output(in_shape, *g, n, data, *tt->mutable_shape())) continue;
        added.push_back(std::move(vi));
        continue;
      }
      if (n.op_type() != "Reshape" || !n.domain().empty() || n.input_size() < 2 || n.output_size() < 1) continue;
      auto out_t = types.find(n.output(0));
      if (out_t != types.end() && out_t->second->tensor_type().has_shape()) continue;
      auto in_t = types.find(n.input(0));
      if (in_t == types.end() || !in_t->second->has_tensor_type()) continue;
      const onnx::TensorShapeProto* in_shape =
          in_t->second->tensor_type().has_shape() ? &in_t->second->tensor_type().shape() : nullptr;
      onnx::TensorShapeProto target;
      auto it = data.find(n.input(1));
      if (it != data.end()) {
        target = it->second;
      } else {
        auto st = types.find(n.input(1));
        if (st == types.end() || !st->second->tensor_type().has_shape() ||
            st->second->tensor_type().shape().dim_size() != 1 ||
            !st->second->tensor_type().shape().dim(0).has_dim_value())
          continue;
        for (int64_t i = 0; i < st->second->tensor_type().shape().dim(0).dim_value(); ++i) target.add_dim();
      }
      bool allowzero = false;
      for (const auto& a : n.attribute())
        if (a.name() == "allowzero") allowzero = a.i() != 0;
      onnx::ValueInfoProto vi;
      vi.set_name(n.output(0));
      auto* tt = vi.mutable_type()->mutable_tensor_type();
      tt->set_elem_type(in_t->second->tensor_type().elem_type());
      reshape_output(in_shape, target, allowzero, *tt->mutable_shape());
      added.push_back(std::move(vi));
    }
    if (added.empty()) return;
    // Each replaces the value_info of its name (every one of that name), or is appended.
    std::unordered_map<std::string, size_t> added_at;
    for (size_t k = 0; k < added.size(); ++k) added_at.emplace(added[k].name(), k);
    std::vector<bool> replaced(added.size(), false);
    for (auto& existing : *g->mutable_value_info()) {
      auto it = added_at.find(existing.name());
      if (it == added_at.end()) continue;
      existing = added[it->second];
      replaced[it->second] = true;
    }
    for (size_t k = 0; k < added.size(); ++k)
      if (!replaced[k]) *g->add_value_info() = std::move(added[k]);
  }
}

// Dims ONNX's inference leaves unnamed (it makes up "unk__N", or leaves them
// blank) though they follow a symbolic input dim. E.g. a position embedding
// gathered with Range(0, Shape(idx)[1]) is [unk__1, d], and so is every value
// after it is added to the token embedding, though unk__1 is always `seq`.
// Inferred again with each input symbol set to a size, twice at different
// sizes, a dim that equals one symbol's size both times is named after that
// symbol: the manifest then says "seq", and pprun knows the shape of what
// arrives before it arrives. Dims that track no single symbol (2 * seq, a
// size clamped by a table) stay as they are.
bool name_derived_dims(onnx::ModelProto& model) {
  const onnx::GraphProto& g = model.graph();
  std::set<std::string> inits;  // the inputs that are initializers (old exporters list them)
  {
    std::unordered_set<std::string_view> inputs;
    for (const auto& vi : g.input()) inputs.insert(vi.name());
    for (const auto& t : g.initializer())
      if (inputs.count(t.name())) inits.insert(t.name());
  }
  std::vector<std::string> symbols;
  for (const auto& vi : g.input()) {
    if (inits.count(vi.name()) || !vi.type().tensor_type().has_shape()) continue;
    for (const auto& d : vi.type().tensor_type().shape().dim())
      if (!d.has_dim_value() && !d.dim_param().empty() &&
          std::find(symbols.begin(), symbols.end(), d.dim_param()) == symbols.end())
        symbols.push_back(d.dim_param());
  }
  auto unnamed = [&](const onnx::TensorShapeProto::Dimension& d) {
    return !d.has_dim_value() && std::find(symbols.begin(), symbols.end(), d.dim_param()) == symbols.end();
  };
  auto has_unnamed = [&](const onnx::ValueInfoProto& vi) {
    if (!vi.type().tensor_type().has_shape()) return false;
    const auto& dims = vi.type().tensor_type().shape().dim();
    return std::any_of(dims.begin(), dims.end(), unnamed);
  };
  if (symbols.empty() || (std::none_of(g.value_info().begin(), g.value_info().end(), has_unnamed) &&
                          std::none_of(g.output().begin(), g.output().end(), has_unnamed)))
    return false;
  // Sizes far from any small constant a model compares against, and unlike
  // between symbols and between the two runs.
  auto size_of = [](int run, size_t k) { return static_cast<int64_t>(run == 0 ? 1031 + 6 * k : 2053 + 10 * k); };
  std::map<std::string, std::vector<int64_t>> dims_at[2];
  for (int run = 0; run < 2; ++run) {
    onnx::ModelProto m = model;
    for (auto& vi : *m.mutable_graph()->mutable_input()) {
      if (inits.count(vi.name()) || !vi.type().tensor_type().has_shape()) continue;
      for (auto& d : *vi.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()) {
        if (d.has_dim_value() || d.dim_param().empty()) continue;
        size_t k = static_cast<size_t>(std::find(symbols.begin(), symbols.end(), d.dim_param()) - symbols.begin());
        d.Clear();
        d.set_dim_value(size_of(run, k));
      }
    }
    try {
      infer_shapes(m, /*fill_slices=*/true);
    } catch (const std::exception&) {
      return false;  // the symbolic shapes stay as they are
    }
    auto record = [&](const onnx::ValueInfoProto& vi) {
      if (!vi.type().tensor_type().has_shape()) return;
      std::vector<int64_t>& out = dims_at[run][vi.name()];
      for (const auto& d : vi.type().tensor_type().shape().dim()) out.push_back(d.has_dim_value() ? d.dim_value() : -1);
    };
    for (const auto& vi : m.graph().value_info()) record(vi);
    for (const auto& vi : m.graph().output()) record(vi);
  }
  bool renamed = false;
  auto rename = [&](onnx::ValueInfoProto& vi) {
    if (!vi.type().tensor_type().has_shape()) return;
    auto a = dims_at[0].find(vi.name()), b = dims_at[1].find(vi.name());
    if (a == dims_at[0].end() || b == dims_at[1].end()) return;
    auto* dims = vi.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim();
    if (a->second.size() != static_cast<size_t>(dims->size()) || b->second.size() != a->second.size()) return;
    for (int i = 0; i < dims->size(); ++i) {
      auto& d = *dims->Mutable(i);
      if (!unnamed(d)) continue;
      for (size_t k = 0; k < symbols.size(); ++k)
        if (a->second[i] == size_of(0, k) && b->second[i] == size_of(1, k)) {
          d.Clear();
          d.set_dim_param(symbols[k]);
          renamed = true;
          break;
        }
    }
  };
  for (auto& vi : *model.mutable_graph()->mutable_value_info()) rename(vi);
  for (auto& vi : *model.mutable_graph()->mutable_output()) rename(vi);
  return renamed;
}

}  // namespace

class OnnxLowering {
 public:
  // What lowering reads no types for: the params (with their content
  // fingerprints), the inputs, and the nodes with their values and module
  // paths, every value's type still undefined. It reads the model's
  // initializers, inputs' names and nodes, which shape inference does not
  // change, and may run while inference adds the model's value_info
  // (load_onnx).
  static void lower_untyped(OnnxSource& src, const std::string& display) {
    const onnx::GraphProto& gp = src.model_.graph();
    ir::Graph& g = src.graph_;
    // Every initializer, input and node output is a value (most nodes make one).
    g.values.reserve(static_cast<size_t>(gp.initializer_size() + gp.input_size() + gp.node_size()));
    g.nodes.reserve(static_cast<size_t>(gp.node_size()));
    lower_params(src, display);
    std::vector<const onnx::NodeProto*> all;
    for (const auto& n : gp.node()) {
      all.push_back(&n);
      subgraph_nodes(n, all);
    }
    std::vector<std::string> names;
    names.reserve(all.size());
    for (const onnx::NodeProto* n : all) names.push_back(n->name());
    src.scopes_ = collect_scopes(names);
    src.node_modules_.reserve(static_cast<size_t>(gp.node_size()));
    for (const auto& n : gp.node()) src.node_modules_.push_back(node_module(n, src.scopes_));
    lower_inputs(src);
    lower_nodes(src, display, identity_params(src));
  }

  // The rest, once the model's types are inferred (after lower_untyped).
  static void lower(OnnxSource& src, const std::string& display, std::vector<std::string>* notes) {
    const onnx::GraphProto& gp = src.model_.graph();
    ir::Graph& g = src.graph_;
    g.name = gp.name();
    src.types_.reserve(static_cast<size_t>(gp.input_size() + gp.value_info_size() + gp.output_size()));
    for (const auto& vi : gp.input()) src.set_type(vi.name(), &vi.type());
    for (const auto& vi : gp.value_info()) src.set_type(vi.name(), &vi.type());
    for (const auto& vi : gp.output()) src.set_type(vi.name(), &vi.type());
    // Each input's and node output's type, as the model (after inference) has it.
    src.value_types_.assign(g.values.size(), {false, nullptr});
    auto type_value = [&](ir::ValueId v) {
      src.value_types_[v] = {true, type_of(src, g.values[v].name, g.values[v].dtype, g.values[v].shape)};
    };
    for (ir::ValueId v : g.inputs) type_value(v);
    for (const ir::Node& node : g.nodes)
      for (ir::ValueId v : node.outputs) type_value(v);
    for (const ir::Node& node : g.nodes) g.nested_modules.erase(node.module);
    find_aliases(src.model_, g);
    freeze_constants(src.model_, g, display, notes);
    mark_state(src.model_, g);
    for (const auto& o : gp.output()) {
      ir::ValueId v = g.find_value(o.name());
      if (v == ir::kNone) throw Error(display + ": model output '" + o.name() + "' is never produced");
      g.mark_output(v);
    }
    try {
      g.sort_topologically();
    } catch (const std::exception& e) { throw Error(display + ": " + e.what()); }
    std::string problem = g.verify();
    if (!problem.empty()) throw Error(display + ": malformed graph: " + problem);
    (void)notes;
  }

 private:
  // Element type and shape of a value from the model's type information
  // (Undefined when it has none, Other when it is not a tensor); returns that type.
  static const onnx::TypeProto* type_of(const OnnxSource& src, const std::string& name, ir::DType& dt, ir::Shape& sh) {
    const onnx::TypeProto* t = src.value_type(name);
    if (!t || !t->has_tensor_type()) {
      dt = !t ? ir::DType::Undefined : ir::DType::Other;
      sh = ir::Shape::unranked();
      return t;
    }
    dt = dtype_of(t->tensor_type().elem_type());
    sh = shape_of(*t);
    return t;
  }

  // Params: every initializer, with content fingerprints for tie detection.
  static void lower_params(OnnxSource& src, const std::string& display) {
    const onnx::GraphProto& gp = src.model_.graph();
    ir::Graph& g = src.graph_;
    for (int i = 0; i < gp.initializer_size(); ++i) {
      const auto& t = gp.initializer(i);
      if (!src.initializer_index_.insert(t.name(), i,
                                         [&](int k) -> std::string_view { return gp.initializer(k).name(); }))
        throw Error(display + ": initializer '" + t.name() + "' is defined twice");
      ir::DType dt = dtype_of(t.data_type());
      ir::ValueId v = g.add_param(t.name(), dt, shape_of(t), numel(t) * ir::dtype_size(dt));
      fingerprint(g.params[g.values[v].param], t);
    }
    if (gp.sparse_initializer_size() > 0) throw Error(display + ": sparse initializers are not supported");
  }

  static void lower_inputs(OnnxSource& src) {
    for (const auto& vi : src.model_.graph().input()) {
      if (src.initializer_at(vi.name()) != ir::kNone) continue;  // initializer listed as input (old exporters)
      src.graph_.add_input(vi.name(), ir::DType::Undefined, ir::Shape::unranked());  // typed by lower()
    }
  }

  // torch deduplicates equal initializers of DIFFERENT parameters behind
  // Identity nodes; each Identity output is its own parameter, so it becomes
  // a param whose data comes from the shared initializer. Returns, per node,
  // whether it was folded into such a param.
  static std::vector<bool> identity_params(OnnxSource& src) {
    const onnx::GraphProto& gp = src.model_.graph();
    ir::Graph& g = src.graph_;
    std::set<std::string> graph_outputs;
    for (const auto& o : gp.output()) graph_outputs.insert(o.name());
    std::vector<bool> folded(gp.node_size(), false);
    for (int i = 0; i < gp.node_size(); ++i) {
      const auto& n = gp.node(i);
      if (n.op_type() != "Identity" || !n.domain().empty() || n.input_size() != 1 || n.output_size() != 1) continue;
      const int at = src.initializer_at(n.input(0));
      if (at == ir::kNone || graph_outputs.count(n.output(0))) continue;
      const auto& t = gp.initializer(at);
      ir::DType dt = dtype_of(t.data_type());
      ir::ValueId v = g.add_param(n.output(0), dt, shape_of(t), numel(t) * ir::dtype_size(dt));
      ir::Param& prm = g.params[g.values[v].param];
      const ir::Param& from = g.params[g.values[g.find_value(t.name())].param];
      prm.data_source = t.name();
      prm.content_hash = from.content_hash;
      prm.transpose_hash = from.transpose_hash;
      prm.is_uniform = from.is_uniform;
      folded[i] = true;
    }
    return folded;
  }

  // One IR node per graph node not `folded`, in graph order, under a unique
  // name and the module its name's scopes give.
  static void lower_nodes(OnnxSource& src, const std::string& display, const std::vector<bool>& folded) {
    const onnx::GraphProto& gp = src.model_.graph();
    ir::Graph& g = src.graph_;
    const std::set<std::string>& scopes = src.scopes_;
    for (int i = 0; i < gp.node_size(); ++i) {
      if (folded[i]) continue;
      const auto& p = gp.node(i);
      ir::Node n;
      n.name = p.name().empty() ? p.op_type() + "_" + std::to_string(i) : p.name();
      if (g.find_node(n.name) != ir::kNone) n.name += "__" + std::to_string(i);  // keep node names unique
      n.op = p.domain().empty() ? p.op_type() : p.domain() + "::" + p.op_type();
      n.module = std::move(src.node_modules_[static_cast<size_t>(i)]);
      n.source_index = i;
      if (p.op_type() == "Constant" && p.domain().empty()) n.flags |= ir::kNodeConstantSource;
      if (is_random_op(p.op_type())) n.flags |= ir::kNodeNondeterministic;
      if (is_subgraph_op(p)) n.flags |= ir::kNodeHasSubgraph;
      lower_node_inputs(g, p, n);
      lower_node_outputs(src, display, p, n);
      n.flops = 0;  // costs_at_size estimates them from the shapes (a Constant's stay 0)
      ir::NodeId id = g.add_node(std::move(n));
      if (g.nodes[id].flags & ir::kNodeHasSubgraph) record_nested_modules(g, p, scopes, id);
    }
  }

  // A node's inputs, plus the outer values its subgraphs read.
  static void lower_node_inputs(ir::Graph& g, const onnx::NodeProto& p, ir::Node& n) {
    for (const auto& in : p.input()) {
      if (in.empty()) {
        n.inputs.push_back(ir::kNone);
        continue;
      }
      ir::ValueId v = g.find_value(in);
      if (v == ir::kNone) v = g.add_value(in);  // produced later (sorted below) or undefined (verify catches)
      n.inputs.push_back(v);
    }
    if (n.flags & ir::kNodeHasSubgraph) {
      std::set<std::string> outer;
      for (const auto& a : p.attribute()) {
        if (a.has_g()) outer_names(a.g(), {}, outer);
        for (const auto& sg : a.graphs()) outer_names(sg, {}, outer);
      }
      for (const auto& name : outer) {
        ir::ValueId v = g.find_value(name);
        if (v == ir::kNone) v = g.add_value(name);
        if (std::find(n.inputs.begin(), n.inputs.end(), v) == n.inputs.end()) n.inputs.push_back(v);
      }
    }
  }

  // A node's outputs: new values, or the values that nodes before it read; a
  // value defined before is an error. lower() types them.
  static void lower_node_outputs(OnnxSource& src, const std::string& display, const onnx::NodeProto& p, ir::Node& n) {
    ir::Graph& g = src.graph_;
    for (const auto& out : p.output()) {
      if (out.empty()) continue;
      ir::ValueId v = g.find_value(out);
      if (v == ir::kNone) {
        v = g.add_value(out);
      } else if (g.values[v].producer != ir::kNone || g.values[v].param != ir::kNone ||
                 g.values[v].graph_input != ir::kNone) {
        throw Error(display + ": node '" + n.name + "' redefines value '" + out + "'");
      }
      n.outputs.push_back(v);
    }
  }

  // Module paths inside this node's subgraphs: a module that occurs only
  // there cannot be cut at (see nested_modules).
  static void record_nested_modules(ir::Graph& g, const onnx::NodeProto& p, const std::set<std::string>& scopes,
                                    ir::NodeId id) {
    std::vector<const onnx::NodeProto*> inner;
    subgraph_nodes(p, inner);
    for (const onnx::NodeProto* q : inner) {
      std::string path = node_module(*q, scopes);
      if (!path.empty()) g.nested_modules.emplace(path, id);
    }
  }

  // The dynamo exporter stores constants (scale factors, fill values, folded
  // masks) as initializers beside the parameters, and its graph signature
  // says which are which. Every initializer that is neither a parameter
  // nor a copy of one is frozen (not trained), as PyTorch would not train it.
  // Its optimizer folds a small parameter that passes through a Transpose into
  // a new initializer (val_N): such a copy is recognised by its content (equal
  // to a parameter, or to its transpose) or as the only non-scalar initializer
  // read in the module whose parameter went missing, and stays trainable.
  static void freeze_constants(const onnx::ModelProto& model, ir::Graph& g, const std::string& display,
                               std::vector<std::string>* notes) {
    const GraphSignature sig = graph_signature(model.graph());
    if (sig.empty()) return;  // not a dynamo export: every float initializer is a parameter
    const std::set<std::string>& parameters = sig.parameters;
    const std::set<std::string>& buffers = sig.buffers;
    std::set<std::string> hashes, present;  // of the parameters that are initializers
    for (const ir::Param& p : g.params)
      if (parameters.count(p.name)) {
        present.insert(p.name);
        if (p.is_uniform) continue;  // ones and zeros say nothing about where a tensor came from
        if (!p.content_hash.empty()) hashes.insert(p.content_hash);
        if (!p.transpose_hash.empty()) hashes.insert(p.transpose_hash);
      }
    std::map<std::string, int> missing_in;  // module -> parameters not stored under their name
    for (const std::string& t : parameters)
      if (!present.count(t)) missing_in[module_of(t)]++;
    std::map<std::string, std::vector<int>> candidates_in;  // module -> unnamed float initializers read there
    std::vector<int> frozen;
    for (size_t k = 0; k < g.params.size(); ++k) {
      ir::Param& p = g.params[k];
      if (!p.is_float || parameters.count(p.name)) continue;
      if (buffers.count(p.name)) {
        p.is_float = false;
        continue;
      }
      if (!p.is_uniform && (hashes.count(p.content_hash) || hashes.count(p.transpose_hash))) continue;  // a copy of one
      const ir::Value& v = g.values[p.value];
      std::set<std::string> modules;
      for (ir::NodeId n : v.consumers) modules.insert(g.nodes[n].module);
      if (!p.is_uniform && v.shape.rank_known && !v.shape.dims.empty() && modules.size() == 1 &&
          missing_in.count(*modules.begin()))
        candidates_in[*modules.begin()].push_back(static_cast<int>(k));
      else
        frozen.push_back(static_cast<int>(k));
    }
    std::vector<std::string> unmatched;
    for (const auto& [module, ks] : candidates_in) {
      if (static_cast<int>(ks.size()) <= missing_in[module]) continue;  // each a folded parameter: trainable
      for (int k : ks) frozen.push_back(k);                             // more than went missing: cannot tell which
      unmatched.push_back(module.empty() ? "(root)" : module);
    }
    for (int k : frozen) g.params[k].is_float = false;
    if (!notes) return;
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
      return s;
    };
    if (!unmatched.empty())
      notes->push_back(display + ": cannot tell which initializers of module(s) " + join(unmatched) +
                       " are the exporter's folded copies of parameters; they are treated as constants");
    // A parameter that is neither stored, nor folded into a copy, nor another
    // name of a stored one (a tie: its module reads a parameter with its leaf
    // name) is gone from the graph: the exporter's optimizer removed it (a
    // zero bias added) or folded it into a constant. Training cannot update it.
    std::set<std::string> read_as;  // "module|leaf" of every stored parameter a node reads
    for (const ir::Node& n : g.nodes)
      for (ir::ValueId v : n.inputs)
        if (v != ir::kNone && g.values[v].param != ir::kNone && parameters.count(g.values[v].name))
          read_as.insert(n.module + "|" + leaf_of(g.values[v].name));
    std::set<std::string> aliased;  // stored under another of its names (find_aliases)
    for (const ir::Param& p : g.params) aliased.insert(p.aliases.begin(), p.aliases.end());
    std::vector<std::string> gone;
    for (const std::string& t : parameters) {
      if (present.count(t) || aliased.count(t)) continue;
      if (read_as.count(module_of(t) + "|" + leaf_of(t)) || candidates_in.count(module_of(t))) continue;
      gone.push_back(t);
    }
    if (!gone.empty())
      notes->push_back(display + ": parameter(s) " + join(gone) +
                       " of the graph signature are not in the graph (the exporter's optimizer removed or folded them: "
                       "training cannot update them; export with optimize=False to train them)");
  }

  // The dynamo exporter stores a tied parameter once, under one of its
  // state_dict() names (torch.export keeps the last); the graph signature
  // still lists the others. Each such name M gets its stored tensor X as an
  // alias (so params.pt can list it and load strictly) when exactly one X
  // fits, by the first rule that finds one:
  //   1. a node of M's module reads X under M's leaf name (the embedding of
  //      `transformer.wte` reads `lm_head.weight`);
  //   2. X, later in the signature with M's leaf name, has aliases by rule 1
  //      (T5's `shared.weight`, the module the embeddings are);
  //   3. X, later in the signature with M's leaf name, is held by a direct
  //      child of M's module (BERT's `cls.predictions.bias`, which is
  //      `cls.predictions.decoder.bias`).
  // Rules 2 and 3 only apply where M's module runs no node of its own (its
  // tensors are read elsewhere); else M was folded into a copy there. A name
  // none of them resolves is named in freeze_constants' note.
  static void find_aliases(const onnx::ModelProto& model, ir::Graph& g) {
    const GraphSignature sig = graph_signature(model.graph());
    if (sig.empty()) return;
    std::map<std::string, int> stored, pos;  // signature target -> param index; -> position
    for (size_t k = 0; k < g.params.size(); ++k)
      if (sig.parameters.count(g.params[k].name) || sig.buffers.count(g.params[k].name))
        stored[g.params[k].name] = static_cast<int>(k);
    for (size_t i = 0; i < sig.order.size(); ++i) pos[sig.order[i]] = static_cast<int>(i);
    std::map<std::string, std::set<std::string>> read_in;  // "module|leaf" -> stored tensors read there
    for (const ir::Node& n : g.nodes)
      for (ir::ValueId v : n.inputs)
        if (v != ir::kNone && g.values[v].param != ir::kNone && stored.count(g.values[v].name))
          read_in[n.module + "|" + leaf_of(g.values[v].name)].insert(g.values[v].name);
    std::vector<std::string> missing;
    for (const std::string& t : sig.order)
      if (!stored.count(t) && !sig.transient.count(t)) missing.push_back(t);
    std::map<std::string, std::string> alias_of;  // missing name -> stored tensor
    std::set<std::string> by_rule1;
    auto unique_later = [&](const std::string& m, auto&& fits) {
      std::string hit;
      int count = 0;
      for (const auto& [x, k] : stored)
        if (pos.count(x) && pos[x] > pos[m] && leaf_of(x) == leaf_of(m) && fits(x)) hit = x, ++count;
      return count == 1 ? hit : std::string();
    };
    for (const std::string& m : missing) {
      auto it = read_in.find(module_of(m) + "|" + leaf_of(m));
      if (it != read_in.end() && it->second.size() == 1) {
        alias_of[m] = *it->second.begin();
        by_rule1.insert(alias_of[m]);
      }
    }
    std::set<std::string> running;  // modules that run nodes themselves
    for (const ir::Node& n : g.nodes) running.insert(n.module);
    for (const std::string& m : missing) {
      // A module that runs nodes but reads no tensor as M: M was folded into
      // a copy there (freeze_constants), not tied.
      if (alias_of.count(m) || running.count(module_of(m))) continue;
      std::string x = unique_later(m, [&](const std::string& c) { return by_rule1.count(c) > 0; });
      if (x.empty())
        x = unique_later(m, [&](const std::string& c) {
          const std::string mod = module_of(c);
          return !mod.empty() && mod != module_of(m) && module_of(mod) == module_of(m);
        });
      if (!x.empty()) alias_of[m] = x;
    }
    for (const std::string& m : missing)  // in signature order
      if (alias_of.count(m)) g.params[stored[alias_of[m]]].aliases.push_back(m);
  }

  // Which params are the module's state_dict() entries: for a dynamo export,
  // the persistent parameters and buffers of its signature, and trainable
  // copies of parameters the exporter folded (saved under their own name);
  // its constants are not. Every param of other exports is.
  static void mark_state(const onnx::ModelProto& model, ir::Graph& g) {
    const GraphSignature sig = graph_signature(model.graph());
    if (sig.empty()) return;
    for (ir::Param& p : g.params) {
      const bool named = sig.parameters.count(p.name) || sig.buffers.count(p.name);
      p.is_state = named ? !sig.transient.count(p.name) : p.is_float;
    }
  }

  static void fingerprint(ir::Param& prm, const onnx::TensorProto& t) {
    ir::DType dt = dtype_of(t.data_type());
    if (!ir::dtype_is_float(dt)) return;
    std::string bytes = tensor_bytes(t);
    const int es = ir::dtype_size(dt);
    const int64_t n = numel(t);
    if (static_cast<int64_t>(bytes.size()) != n * es || n == 0) return;
    prm.is_uniform = uniform_bytes(bytes, static_cast<size_t>(es));
    if (t.dims_size() == 2) {
      const int64_t r = t.dims(0), c = t.dims(1);
      std::string tr(bytes.size(), '\0');
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < c; ++j)
          std::memcpy(&tr[static_cast<size_t>((j * r + i) * es)], &bytes[static_cast<size_t>((i * c + j) * es)],
                      static_cast<size_t>(es));
      // The transpose carries its own shape, so a [r,c] tensor never matches a [c,r] reshape by accident.
      prm.transpose_hash = sha256_hex(tr + "|" + std::to_string(c) + "x" + std::to_string(r));
    }
    prm.content_hash = sha256_hex(bytes + "|" + shape_key(t));
  }
  static std::string shape_key(const onnx::TensorProto& t) {
    if (t.dims_size() == 2) return std::to_string(t.dims(0)) + "x" + std::to_string(t.dims(1));
    std::string s;
    for (int64_t d : t.dims()) s += std::to_string(d) + ",";
    return s;
  }
};

namespace {
// The size at which the cost model counts each symbolic input dim: --dim's,
// else 1 (the batch). Sets them in `inputs` when given (the copy inferred at
// that size). Checks that every --dim names a symbolic input dim, and notes
// the symbols other than an input's first that count as 1.
std::map<std::string, int64_t> cost_sizes(const onnx::GraphProto& g, const std::string& display,
                                          const std::map<std::string, int64_t>& dims, std::vector<std::string>* notes,
                                          onnx::GraphProto* inputs) {
  std::map<std::string, int64_t> sizes;
  std::set<std::string> seen, counted_as_one;
  for (int i = 0; i < g.input_size(); ++i) {
    const onnx::ValueInfoProto& vi = g.input(i);
    if (!vi.type().has_tensor_type() || !vi.type().tensor_type().has_shape()) continue;
    int pos = 0;
    const auto& shape = vi.type().tensor_type().shape();
    for (int k = 0; k < shape.dim_size(); ++k) {
      const auto& d = shape.dim(k);
      if (d.has_dim_value() || pos++ < 0) continue;
      std::string sym = d.has_dim_param() ? d.dim_param() : "";
      seen.insert(sym);
      if (pos > 1 && !dims.count(sym)) counted_as_one.insert(sym.empty() ? "?" : sym);
      auto it = dims.find(sym);
      const int64_t size = it != dims.end() ? it->second : 1;
      if (!sym.empty()) sizes.emplace(sym, size);
      if (!inputs) continue;
      auto* out = inputs->mutable_input(i)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(k);
      out->Clear();
      out->set_dim_value(size);
    }
  }
  for (const auto& [name, size] : dims)
    if (!seen.count(name)) {
      std::string have;
      for (const auto& s : seen)
        if (!s.empty()) have += (have.empty() ? "" : ", ") + s;
      throw Error("--dim " + name + "=" + std::to_string(size) + ": " + display + " has no symbolic input dim '" +
                  name + "'" + (have.empty() ? std::string(" (it has none)") : " (it has: " + have + ")"));
    }
  if (!counted_as_one.empty() && notes) {
    std::string list;
    for (const auto& x : counted_as_one) list += (list.empty() ? "'" : ", '") + x + "'";
    notes->push_back(display + ": the cost model counts symbolic input dim " + list +
                     " as 1 (give its size with --dim NAME=N)");
  }
  return sizes;
}

// Whether every value the nodes make has a shape of known dims and the input
// symbols of `sizes`. Then inference at the cost size gives each value its
// shape with those symbols set to their sizes (inference is sound: a dim it
// names after an input symbol is that dim, a known dim stays what it is), so
// the symbols are replaced instead of inferring the whole model again.
bool shapes_follow_inputs(const ir::Graph& g, const std::map<std::string, int64_t>& sizes) {
  for (const ir::Value& v : g.values) {
    if (v.param != ir::kNone) continue;
    if (!v.shape.rank_known) return false;
    for (const ir::Dim& d : v.shape.dims)
      if (!d.is_known() && !(d.is_symbolic() && sizes.count(d.symbol))) return false;
  }
  return true;
}

// The shapes at the cost size, inferred again on a copy of the model (where
// they do not follow the input symbols): the shapes of the IR's values are
// set to them where inference gives one; returns the copy, whose nodes the
// FLOPs are estimated from.
std::unique_ptr<onnx::ModelProto> infer_at_size(OnnxSource& src, const std::string& display,
                                                const std::map<std::string, int64_t>& dims,
                                                std::vector<std::string>* notes) {
  auto m = std::make_unique<onnx::ModelProto>(src.model());
  cost_sizes(src.model().graph(), display, dims, nullptr, m->mutable_graph());
  try {
    infer_shapes(*m, /*fill_slices=*/true);
  } catch (const std::exception& e) {
    if (notes)
      notes->push_back(display + ": shape inference at the --dim size stopped early (" + std::string(e.what()) + ")");
  }
  std::unordered_map<std::string, const onnx::TypeProto*> types;
  for (const auto& vi : m->graph().input()) types[vi.name()] = &vi.type();
  for (const auto& vi : m->graph().value_info()) types[vi.name()] = &vi.type();
  for (const auto& vi : m->graph().output()) types[vi.name()] = &vi.type();
  ir::Graph& g = src.mutable_graph();
  for (size_t v = 0; v < g.values.size(); ++v) {
    auto it = types.find(g.values[v].name);
    if (g.values[v].param == ir::kNone && it != types.end() && it->second->has_tensor_type())
      g.values[v].shape = shape_of(*it->second);
  }
  return m;
}

// FLOPs and value sizes at a concrete size: the model's symbolic input dims
// set (given ones to their size, the rest, e.g. the batch, to 1), shapes
// inferred again (or the symbols replaced: shapes_follow_inputs), Slice
// outputs filled in; the IR keeps its symbolic shapes.
void costs_at_size(OnnxSource& src, const std::string& display, const std::map<std::string, int64_t>& dims,
                   std::vector<std::string>* notes, bool shapes_exact) {
  const std::map<std::string, int64_t> sizes = cost_sizes(src.model().graph(), display, dims, notes, nullptr);
  ir::Graph& g = src.mutable_graph();
  std::vector<ir::Shape> symbolic(g.values.size());
  for (size_t v = 0; v < g.values.size(); ++v) symbolic[v] = g.values[v].shape;
  std::unique_ptr<onnx::ModelProto> at_size;
  if (shapes_exact && shapes_follow_inputs(g, sizes)) {
    for (ir::Value& v : g.values) {
      if (v.param != ir::kNone) continue;
      for (ir::Dim& d : v.shape.dims)
        if (d.is_symbolic()) d = ir::Dim::known(sizes.at(d.symbol));
    }
  } else {
    at_size = infer_at_size(src, display, dims, notes);
  }
  const onnx::GraphProto& nodes_from = at_size ? at_size->graph() : src.model().graph();
  for (auto& n : g.nodes)
    if (!(n.flags & ir::kNodeConstantSource)) n.flops = estimate_flops(g, n, nodes_from.node(n.source_index));
  for (size_t v = 0; v < g.values.size(); ++v) {
    if (g.values[v].shape.rank_known) g.values[v].cost_numel = g.values[v].shape.numel(1.0);
    g.values[v].shape = std::move(symbolic[v]);
  }
}

// Bytes per element of the ONNX tensor types stored whole bytes apiece (0
// for strings and the packed 4-bit types, whose raw_data is not checked).
size_t raw_element_size(int32_t data_type) {
  switch (data_type) {
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::BOOL:
    case onnx::TensorProto::FLOAT8E4M3FN:
    case onnx::TensorProto::FLOAT8E4M3FNUZ:
    case onnx::TensorProto::FLOAT8E5M2:
    case onnx::TensorProto::FLOAT8E5M2FNUZ: return 1;
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return 2;
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32: return 4;
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::COMPLEX64: return 8;
    case onnx::TensorProto::COMPLEX128: return 16;
    default: return 0;
  }
}

// A tensor's raw_data must hold exactly its shape's bytes: ONNX's shape
// inference copies raw_data into a buffer sized by the shape (a heap overflow
// when it is longer; found by fuzz_onnx_external), and a stage would carry a
// tensor PyTorch cannot read. Checked for the main graph's initializers
// (external data already read in) and Constant values.
void check_raw_sizes(const onnx::GraphProto& g, const std::string& display) {
  auto check = [&](const onnx::TensorProto& t, const std::string& what) {
    // Every tensor's size in bytes must fit an int64 (found by fuzzing: the
    // element count of a tensor without data overflowed), whichever field
    // holds its data.
    const size_t elem = raw_element_size(t.data_type());
    uint64_t want = elem == 0 ? 8 : elem;
    for (int64_t d : t.dims())
      if (d < 0 || __builtin_mul_overflow(want, static_cast<uint64_t>(d), &want) ||
          want > static_cast<uint64_t>(INT64_MAX))
        throw Error(display + ": " + what + " has a bad shape (dimension " + std::to_string(d) + ")");
    if (!t.has_raw_data() || elem == 0) return;
    if (t.raw_data().size() != want)
      throw Error(display + ": " + what + " holds " + std::to_string(t.raw_data().size()) +
                  " bytes, its type and shape need " + std::to_string(want));
  };
  for (const auto& t : g.initializer()) check(t, "initializer '" + t.name() + "'");
  for (const auto& n : g.node())
    for (const auto& a : n.attribute())
      if (a.has_t()) check(a.t(), "node '" + n.name() + "' attribute '" + a.name() + "'");
}

// Whether a node's inference can read a value that data propagation computed
// (a shape computed at run time: Shape -> Gather -> Concat -> Reshape). ONNX's
// inference functions read propagated values only through a shape input
// (Reshape, Expand, ConstantOfShape, Resize, Upsample, AffineGrid), and hand
// them into subgraphs and function bodies; ppc's own Reshape filling reads
// them too. Where no node can, propagating values changes no type and is
// skipped: a long chain of MatMul/Add/Relu propagates through every Add.
bool reads_propagated_data(const onnx::ModelProto& model) {
  static const std::set<std::string_view> kReaders = {"Reshape", "Expand",   "ConstantOfShape",
                                                      "Resize",  "Upsample", "AffineGrid"};
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (const auto& n : model.graph().node()) {
    if (is_subgraph_op(n)) return true;
    if (!seen.emplace(n.domain(), n.op_type()).second) continue;
    if (kReaders.count(n.op_type())) return true;
    const std::string domain = n.domain() == "ai.onnx" ? std::string() : n.domain();
    for (const auto& op : model.opset_import()) {
      if ((op.domain() == "ai.onnx" ? std::string() : op.domain()) != domain) continue;
      const onnx::OpSchema* schema =
          onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(op.version()), domain);
      if (!schema || (!schema->has_type_and_shape_inference_function() && schema->HasFunction())) return true;
    }
  }
  return false;
}

// Whether ONNX's inference knows every op of the model (no model-local
// functions, a schema for every node at its domain's opset, subgraphs
// included). Inference stops reporting errors after an op it does not know,
// so only then does a strict pass over the whole model speak for its stages.
bool every_op_known(const onnx::ModelProto& model) {
  if (model.functions_size() > 0) return false;
  std::map<std::string, int> opset;
  for (const auto& op : model.opset_import())
    opset[op.domain() == "ai.onnx" ? std::string() : op.domain()] = static_cast<int>(op.version());
  std::set<std::pair<std::string_view, std::string_view>> seen;
  std::vector<const onnx::NodeProto*> nodes;
  for (const auto& n : model.graph().node()) {
    nodes.push_back(&n);
    subgraph_nodes(n, nodes);
  }
  for (const onnx::NodeProto* n : nodes) {
    if (!seen.emplace(n->domain(), n->op_type()).second) continue;
    const std::string domain = n->domain() == "ai.onnx" ? std::string() : n->domain();
    auto it = opset.find(domain);
    if (it == opset.end() || !onnx::OpSchemaRegistry::Schema(n->op_type(), it->second, domain)) return false;
  }
  return true;
}

}  // namespace

// The parsed model's weights read into memory and the initializers the
// exporter merged split off again (returns how many).
int prepare_model(OnnxSource& src, const std::string& path, const std::string& display) {
  src.external_data_ = onnx_data::internalize(src.model_, std::filesystem::path(path).parent_path().string(), display);
  check_raw_sizes(src.model_.graph(), display);
  const GraphSignature sig = graph_signature(src.model_.graph());
  std::vector<std::string> names;
  if (!sig.empty())  // the scopes are only read for a signature
    for (const auto& n : src.model_.graph().node()) names.push_back(n.name());
  return unshare_merged_initializers(src.model_, sig, collect_scopes(names));
}

// Shape inference of the whole model. Where ONNX knows every op its rounds
// run strictly (types checked, a node's failure an error): a model that
// passes is consistent in its final types, which its stages carry, and the
// stages skip their own strict inference (see OnnxSource::strictly_inferred).
// A model that does not is parsed again and inferred leniently as always, so
// that it gets the types, notes and (from its stages' strict inference) the
// errors it always got.
void infer_model_shapes(OnnxSource& src, const std::string& bytes, const std::string& path, const std::string& display,
                        std::vector<std::string>* notes, std::future<void>& untyped) {
  if (every_op_known(src.model_)) {
    try {
      infer_shapes(src.model_, /*fill_slices=*/false, /*strict=*/true, reads_propagated_data(src.model_));
      src.strictly_inferred_ = true;
      return;
    } catch (const std::exception&) {
      untyped.wait();  // it reads the model
      src.model_.Clear();
      if (!src.model_.ParseFromString(bytes)) throw std::logic_error("onnx: a model parsed once does not parse again");
      prepare_model(src, path, display);
    }
  }
  try {
    infer_shapes(src.model_);
  } catch (const std::exception& e) {
    if (notes)
      notes->push_back(display + ": shape inference stopped early (" + std::string(e.what()) +
                       "); some shapes are unknown");
  }
}

std::unique_ptr<SourceModel> load_onnx(const std::string& path, const std::string& display_name,
                                       std::vector<std::string>* notes,
                                       const std::map<std::string, int64_t>& cost_dims) {
  auto src = std::make_unique<OnnxSource>();
  std::string bytes = read_file(path, display_name);
  if (!src->model_.ParseFromString(bytes) || !src->model_.has_graph())
    throw Error(display_name + ": not an ONNX model (cannot parse it as an ONNX ModelProto)");
  for (const auto& op : src->model_.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") src->opset_ = op.version();
  // Newer than the ONNX library knows: say so plainly, before the checker's wording.
  if (src->model_.ir_version() > onnx::IR_VERSION)
    throw Error(display_name + ": IR version " + std::to_string(src->model_.ir_version()) +
                " is newer than ppc reads (IR versions up to " + std::to_string(onnx::IR_VERSION) + ", ONNX " +
                PPC_ONNX_VERSION + ")");
  {
    const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
    for (const auto& op : src->model_.opset_import()) {
      const std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
      auto it = known.find(domain);
      if (it != known.end() && op.version() > it->second.second)
        throw Error(display_name + ": opset " + std::to_string(op.version()) + " of domain '" +
                    (domain.empty() ? std::string("ai.onnx") : domain) + "' is newer than ppc knows (up to " +
                    std::to_string(it->second.second) + ", ONNX " + PPC_ONNX_VERSION + ")");
    }
  }
  const int split_off = prepare_model(*src, path, display_name);
  if (split_off > 0 && notes)
    notes->push_back(display_name + ": " + std::to_string(split_off) +
                     " parameters or buffers that the exporter merged with an equal one get their own initializer "
                     "again (named as in the graph signature)");
  try {
    // With its weights in memory a large model passes protobuf's 2 GB limit,
    // which the in-memory checker refuses: check the file, data beside it.
    if (src->external_data_)
      onnx::checker::check_model(path);
    else
      onnx::checker::check_model(src->model_);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    throw Error(display_name + ": the ONNX checker rejects the model: " + msg);
  }
  {
    // Lowering's untyped part runs beside inference (it reads what inference
    // does not change; inference of a subgraph does touch its node, so then
    // it runs after); infer_model_shapes waits for it before it parses the
    // model again.
    const auto& nodes = src->model_.graph().node();
    const bool beside = std::none_of(nodes.begin(), nodes.end(), is_subgraph_op);
    std::future<void> untyped = std::async(beside ? std::launch::async : std::launch::deferred,
                                           [&] { OnnxLowering::lower_untyped(*src, display_name); });
    infer_model_shapes(*src, bytes, path, display_name, notes, untyped);
    untyped.get();
  }
  const bool renamed = name_derived_dims(src->model_);
  OnnxLowering::lower(*src, display_name, notes);
  costs_at_size(*src, display_name, cost_dims, notes, /*shapes_exact=*/!renamed);
  return src;
}

}  // namespace ppc::onnx_frontend
