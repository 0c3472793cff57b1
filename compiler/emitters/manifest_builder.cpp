#include "compiler/emitters/manifest_builder.h"

#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "schemas/suggest.h"
#include "schemas/error.h"

namespace ppc {

namespace {

std::optional<std::vector<manifest::Dim>> dims_of(const ir::Shape& s) {
  if (!s.rank_known) return std::nullopt;
  std::vector<manifest::Dim> out;
  for (const auto& d : s.dims) {
    manifest::Dim md;
    if (d.is_known())
      md.value = d.value;
    else if (d.is_symbolic())
      md.symbol = d.symbol;
    out.push_back(md);
  }
  return out;
}

// The batch dim of a value: the first dim carrying one of the batch symbols.
std::optional<int> batch_dim_of(const ir::Shape& s, const std::set<std::string>& batch_symbols) {
  if (!s.rank_known) return std::nullopt;
  for (size_t i = 0; i < s.dims.size(); ++i)
    if (s.dims[i].is_symbolic() && batch_symbols.count(s.dims[i].symbol)) return static_cast<int>(i);
  return std::nullopt;
}

template <typename T>
void fill_tensor(T& t, const ir::Value& v, const std::set<std::string>& batch_symbols) {
  t.name = v.name;
  t.dtype = ir::dtype_name(v.dtype);
  t.shape = dims_of(v.shape);
  t.batch_dim = v.param != ir::kNone ? std::nullopt : batch_dim_of(v.shape, batch_symbols);
}

// "layer1.0.conv1" -> "layer1.0"; "h.0.attn" -> "h.0"; "stem.0" -> "stem.0"... a
// top-level module plus its index when it is a container element.
std::string top_module(const std::string& path) {
  size_t dot = path.find('.');
  if (dot == std::string::npos) return path;
  size_t next = path.find('.', dot + 1);
  std::string second = path.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
  bool numeric = !second.empty();
  for (char c : second) numeric = numeric && std::isdigit(static_cast<unsigned char>(c));
  return numeric ? path.substr(0, next) : path.substr(0, dot);
}

int64_t to_int(double x) { return static_cast<int64_t>(std::llround(x)); }

// The symbols of the model inputs' batch dims: a value carrying one of them
// in a dim is batched along that dim.
std::set<std::string> batch_symbols_of(const ir::Graph& g, const std::vector<std::optional<int>>& input_batch_dims) {
  std::set<std::string> batch_symbols;
  for (size_t k = 0; k < g.inputs.size(); ++k) {
    const ir::Shape& s = g.values[g.inputs[k]].shape;
    if (input_batch_dims[k] && s.rank_known && *input_batch_dims[k] < static_cast<int>(s.dims.size()) &&
        s.dims[*input_batch_dims[k]].is_symbolic())
      batch_symbols.insert(s.dims[*input_batch_dims[k]].symbol);
  }
  return batch_symbols;
}

std::vector<manifest::StageInput> stage_inputs(const ir::Graph& g, const analysis::StagePlan& sp,
                                               const std::vector<std::optional<int>>& input_batch_dims,
                                               const std::set<std::string>& batch_symbols) {
  std::vector<manifest::StageInput> out;
  for (const auto& in : sp.inputs) {
    manifest::StageInput si;
    fill_tensor(si, g.values[in.value], batch_symbols);
    if (in.source == analysis::InputSource::ModelInput) {
      si.source = "model_input";
      si.batch_dim = input_batch_dims[g.values[in.value].graph_input];
    } else {
      si.source = in.source == analysis::InputSource::Tie ? "tie" : "edge";
      si.from_stage = in.from_stage;
    }
    out.push_back(si);
  }
  return out;
}

std::vector<manifest::StageParam> stage_params(const SourceModel& src, const analysis::StagePlan& sp) {
  const ir::Graph& g = src.graph();
  std::vector<manifest::StageParam> out;
  for (int prm : sp.params) {
    const ir::Param& param = g.params[prm];
    const ir::Value& v = g.values[param.value];
    manifest::StageParam mp;
    mp.name = src.artifact_param_name(prm);
    mp.original = param.name;
    mp.dtype = ir::dtype_name(v.dtype);
    for (const auto& d : v.shape.dims) mp.shape.push_back(d.value);
    mp.bytes = param.bytes;
    mp.trainable = param.is_float;
    mp.state = param.is_state;
    mp.aliases = param.aliases;
    out.push_back(mp);
  }
  return out;
}

// Node counts, the first and last placed node and the top-level modules the
// stage runs (clones of other stages' nodes are not its own).
void describe_stage_nodes(const ir::Graph& g, const analysis::StagePlan& sp, manifest::Stage& st) {
  st.node_count = sp.placed_nodes;
  st.cloned_nodes = static_cast<int>(sp.cloned.size());
  std::set<ir::NodeId> cloned(sp.cloned.begin(), sp.cloned.end());
  std::set<std::string> seen;
  for (ir::NodeId n : sp.nodes) {
    if (cloned.count(n)) continue;
    if (st.first_node.empty()) st.first_node = g.nodes[n].name;
    st.last_node = g.nodes[n].name;
    const std::string& mod = g.nodes[n].module;
    if (mod.empty()) continue;
    std::string top = top_module(mod);
    if (seen.insert(top).second) st.modules.push_back(top);
  }
}

manifest::Stage manifest_stage(const SourceModel& src, const analysis::Partition& p, int s,
                               const std::map<ir::ValueId, const analysis::CrossEdge*>& edge_of,
                               const std::vector<std::optional<int>>& input_batch_dims,
                               const std::set<std::string>& batch_symbols) {
  const ir::Graph& g = src.graph();
  const analysis::StagePlan& sp = p.stages[s];
  manifest::Stage st;
  st.index = s;
  st.inputs = stage_inputs(g, sp, input_batch_dims, batch_symbols);
  for (ir::ValueId v : sp.outputs) {
    manifest::StageOutput so;
    fill_tensor(so, g.values[v], batch_symbols);
    auto it = edge_of.find(v);
    if (it != edge_of.end()) so.to_stages = it->second->consumers;
    so.model_output = g.values[v].is_graph_output;
    st.outputs.push_back(so);
  }
  st.params = stage_params(src, sp);
  describe_stage_nodes(g, sp, st);
  st.flops = to_int(sp.flops);
  st.param_bytes = sp.param_bytes;
  return st;
}

manifest::Edge manifest_edge(const ir::Graph& g, const analysis::CrossEdge& e,
                             const std::set<std::string>& batch_symbols) {
  manifest::Edge me;
  const ir::Value& v = g.values[e.value];
  me.value = v.name;
  me.dtype = ir::dtype_name(v.dtype);
  me.shape = dims_of(v.shape);
  me.batch_dim = e.is_param ? std::nullopt : batch_dim_of(v.shape, batch_symbols);
  me.producer = e.producer;
  me.consumers = e.consumers;
  // A tensor whose dtype the frontend could not infer (a traced TorchScript
  // graph keeps few types) may well be floating point: gradients must be
  // able to flow back along it, and the runtime decides by the dtype of the
  // tensor it actually sends. Marking it non-differentiable cut the backward
  // pass at that edge and froze every parameter upstream of it.
  me.differentiable = (v.dtype == ir::DType::Undefined || ir::dtype_is_float(v.dtype)) && !v.scalar;
  me.kind = e.is_param ? "param" : "activation";
  return me;
}

}  // namespace

std::vector<std::optional<int>> model_input_batch_dims(const ir::Graph& g, const spec::SplitSpec& spec,
                                                       const JsonDocument* doc) {
  std::vector<std::optional<int>> dims(g.inputs.size());
  std::vector<std::string> names;
  for (ir::ValueId v : g.inputs) names.push_back(g.values[v].name);
  for (size_t k = 0; k < g.inputs.size(); ++k) {
    const ir::Shape& s = g.values[g.inputs[k]].shape;
    if (s.rank_known && s.dims.empty()) continue;  // a scalar is replicated
    dims[k] = 0;  // batch-first unless a symbolic dim says otherwise (or the rank is unknown)
    if (!s.rank_known) continue;
    for (size_t i = 0; i < s.dims.size(); ++i)
      if (s.dims[i].is_symbolic()) {
        dims[k] = static_cast<int>(i);
        break;
      }
  }
  for (const auto& is : spec.inputs) {
    auto it = std::find(names.begin(), names.end(), is.name);
    if (it == names.end()) {
      std::string msg = "unknown model input '" + is.name + "'" + did_you_mean(is.name, names);
      throw Error(doc ? doc->where_key(is.pointer, msg) : msg);
    }
    size_t k = static_cast<size_t>(it - names.begin());
    if (is.replicate) {
      dims[k] = std::nullopt;
    } else if (is.batch_dim) {
      const ir::Shape& s = g.values[g.inputs[k]].shape;
      if (s.rank_known && *is.batch_dim >= static_cast<int>(s.dims.size())) {
        std::string msg = "batch_dim " + std::to_string(*is.batch_dim) + " is out of range for input '" + is.name +
                          "' of shape " + s.str();
        throw Error(doc ? doc->where(is.pointer + "/batch_dim", msg) : msg);
      }
      dims[k] = is.batch_dim;
    }
  }
  return dims;
}

manifest::Manifest build_manifest(const SourceModel& src, const analysis::Partition& p, const spec::SplitSpec& spec,
                                  const std::vector<std::optional<int>>& input_batch_dims) {
  const ir::Graph& g = src.graph();
  manifest::Manifest m;
  m.source.format = src.format();
  m.source.opset = src.opset();

  const std::set<std::string> batch_symbols = batch_symbols_of(g, input_batch_dims);

  for (size_t k = 0; k < g.inputs.size(); ++k) {
    manifest::ModelInput mi;
    fill_tensor(mi, g.values[g.inputs[k]], batch_symbols);
    mi.batch_dim = input_batch_dims[k];
    mi.split = input_batch_dims[k] ? "batch" : "replicate";
    mi.stages = p.input_stages[k];
    m.model_inputs.push_back(mi);
  }
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    manifest::ModelOutput mo;
    fill_tensor(mo, g.values[g.outputs[o]], batch_symbols);
    mo.stage = p.output_stage[o];
    m.model_outputs.push_back(mo);
  }

  std::map<ir::ValueId, const analysis::CrossEdge*> edge_of;
  for (const auto& e : p.edges) edge_of[e.value] = &e;
  double total = 0.0;
  for (int s = 0; s < p.num_stages; ++s) {
    m.stages.push_back(manifest_stage(src, p, s, edge_of, input_batch_dims, batch_symbols));
    total += p.stages[s].flops;
  }
  m.total_flops = to_int(total);

  for (const auto& e : p.edges) m.edges.push_back(manifest_edge(g, e, batch_symbols));
  for (const auto& t : p.ties) {
    manifest::TieGroup mt;
    mt.name = t.name;
    mt.policy = spec::tie_policy_name(t.policy);
    mt.owner = t.owner;
    mt.detected_by = t.detected_by;
    for (const auto& mem : t.members)
      mt.members.push_back(manifest::TieMember{g.params[mem.param].name, mem.relation, mem.stages});
    m.ties.push_back(mt);
  }
  m.default_schedule = spec.defaults.schedule;
  m.default_chunks = spec.defaults.chunks;
  m.default_dp = spec.defaults.dp;
  return m;
}

}  // namespace ppc
