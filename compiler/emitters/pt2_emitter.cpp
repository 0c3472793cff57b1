// .pt2 stage emitter: a stage as an ExportedProgram in a torch.export archive.
#include "compiler/emitters/pt2_emitter.h"

#include <cstdint>
#include <fstream>
#include <map>
#include <set>

#include "compiler/frontends/pt2/pt2_source.h"
#include "schemas/error.h"
#include "schemas/zip_archive.h"

namespace ppc {

namespace {

using nlohmann::json;
using pt2_frontend::Pt2Param;
using pt2_frontend::Pt2Source;

// --- sample inputs: torch.save((tensors, {})) written without torch ----------

void pickle_int(std::string& p, int64_t v) {
  const bool small = v >= INT32_MIN && v <= INT32_MAX;
  p += small ? "J" : "\x8a\x08";  // BININT (4 bytes) or LONG1 of 8 bytes, little-endian
  for (int i = 0; i < (small ? 4 : 8); ++i)
    p.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
}

void pickle_str(std::string& p, const std::string& s) {
  p += 'X';  // BINUNICODE
  for (int i = 0; i < 4; ++i) p.push_back(static_cast<char>((s.size() >> (8 * i)) & 0xff));
  p += s;
}

const char* storage_class(ir::DType t) {
  switch (t) {
    case ir::DType::Float32: return "FloatStorage";
    case ir::DType::Float64: return "DoubleStorage";
    case ir::DType::Float16: return "HalfStorage";
    case ir::DType::BFloat16: return "BFloat16Storage";
    case ir::DType::Int64: return "LongStorage";
    case ir::DType::Int32: return "IntStorage";
    case ir::DType::Int16: return "ShortStorage";
    case ir::DType::Int8: return "CharStorage";
    case ir::DType::UInt8: return "ByteStorage";
    case ir::DType::Bool: return "BoolStorage";
    default: return nullptr;
  }
}

struct SampleTensor {
  ir::DType dtype;
  std::vector<int64_t> sizes;
};

// The bytes torch.save((t0, t1, ...), {}) writes for zero tensors of these
// types and sizes: a zip of data.pkl (protocol 2) and one storage per tensor.
std::string torch_save_zeros(const std::vector<SampleTensor>& tensors) {
  std::string pkl = "\x80\x02(";
  std::vector<std::string> storages;
  for (size_t i = 0; i < tensors.size(); ++i) {
    // One zero element broadcast to the example's sizes (all strides 0): the
    // archive stays small whatever the activations' sizes.
    const SampleTensor& t = tensors[i];
    int64_t numel = 1;
    for (int64_t d : t.sizes) numel = d == 0 ? 0 : numel;
    pkl += "ctorch._utils\n_rebuild_tensor_v2\n((";
    pickle_str(pkl, "storage");
    pkl += std::string("ctorch\n") + storage_class(t.dtype) + "\n";
    pickle_str(pkl, std::to_string(i));
    pickle_str(pkl, "cpu");
    pickle_int(pkl, numel);
    pkl += "tQ";  // TUPLE, BINPERSID
    pickle_int(pkl, 0);
    pkl += '(';
    for (int64_t d : t.sizes) pickle_int(pkl, d);
    pkl += "t(";
    for (size_t k = 0; k < t.sizes.size(); ++k) pickle_int(pkl, 0);
    pkl +=
        "t\x89"
        "ccollections\nOrderedDict\n)RtR";  // requires_grad False, hooks, REDUCE
    storages.push_back(std::string(static_cast<size_t>(numel * ir::dtype_size(t.dtype)), '\0'));
  }
  pkl += "t}\x86.";  // the tuple of tensors, {}, TUPLE2, STOP
  zip::Writer w;
  w.add("archive/data.pkl", pkl);
  w.add("archive/.format_version", "1");
  w.add("archive/.storage_alignment", "64");
  w.add("archive/byteorder", "little");
  for (size_t i = 0; i < storages.size(); ++i) w.add("archive/data/" + std::to_string(i), storages[i]);
  w.add("archive/version", "3\n");
  return w.finish();
}

// --- the stage's program -------------------------------------------------------

json tensor_arg(const std::string& name) { return json{{"as_tensor", json{{"name", name}}}}; }

// A pytree spec (torch.utils._pytree's JSON): a tuple of `n` leaves.
json tuple_spec(size_t n) {
  json leaves = json::array();
  for (size_t i = 0; i < n; ++i)
    leaves.push_back(json{{"type", nullptr}, {"context", nullptr}, {"children_spec", json::array()}});
  return json{{"type", "builtins.tuple"}, {"context", "null"}, {"children_spec", leaves}};
}

std::string pytree_text(const json& spec) { return json::array({1, spec}).dump(); }

// The example value of a symbolic size (its hint), 1 where it has none.
int64_t expr_hint(const json& e) {
  if (!e.is_object() || !e.contains("hint")) return 1;
  const json& h = e.at("hint");
  return h.is_object() && h.contains("as_int") ? pt2_frontend::as_int64(h.at("as_int")) : 1;
}

// Symbolic-int names a node's arguments read.
std::vector<std::string> sym_args(const json& node) {
  std::vector<std::string> r;
  for (const json& in : node.at("inputs")) {
    const json& arg = in.at("arg");
    const std::string kind = pt2_frontend::union_kind(arg);
    const json& v = pt2_frontend::union_value(arg);
    if ((kind == "as_sym_int" || kind == "as_sym_bool" || kind == "as_sym_float") && v.contains("as_name"))
      r.push_back(v.at("as_name"));
    if (kind == "as_sym_ints" || kind == "as_sym_bools" || kind == "as_sym_floats")
      for (const json& e : v)
        if (e.contains("as_name")) r.push_back(e.at("as_name"));
  }
  return r;
}

std::vector<std::string> tensor_outputs(const json& node) {
  std::vector<std::string> r;
  for (const json& o : node.at("outputs")) {
    const std::string kind = pt2_frontend::union_kind(o);
    const json& v = pt2_frontend::union_value(o);
    if (kind == "as_tensor") r.push_back(v.at("name"));
    if (kind == "as_tensors")
      for (const json& t : v) r.push_back(t.at("name"));
    if (kind == "as_optional_tensors")
      for (const json& t : v)
        if (t.contains("as_tensor")) r.push_back(t.at("as_tensor").at("name"));
  }
  return r;
}

class StageProgram {
 public:
  StageProgram(const Pt2Source& src, const analysis::StagePlan& sp, int stage) : src_(src), sp_(sp), stage_(stage) {}

  void build() {
    const ir::Graph& g = src_.graph();
    if (!sp_.derived.empty())
      throw fail("a tie group transmitted between stages is not supported for .pt2 stages; use the replicate policy");
    for (int prm : sp_.params) add_available(src_.params()[static_cast<size_t>(prm)].placeholder);
    for (const auto& in : sp_.inputs) {
      if (g.values[in.value].param != ir::kNone)
        throw fail("parameter '" + g.values[in.value].name + "' arrives from another stage; not supported for .pt2");
      inputs_.push_back(g.values[in.value].name);
      add_available(inputs_.back());
    }
    for (ir::NodeId id : sp_.nodes) {
      const json& node = src_.node_json(g.nodes[id].source_index);
      for (const std::string& s : sym_args(node)) materialize(s, g.nodes[id].name);
      nodes_.push_back(node);
      for (const std::string& t : tensor_outputs(node)) add_available(t);
    }
    for (ir::ValueId v : sp_.outputs) {
      if (g.values[v].param != ir::kNone)
        throw fail("parameter '" + g.values[v].name + "' leaves the stage; not supported for .pt2");
      outputs_.push_back(g.values[v].name);
    }
  }

  json program() const;
  json weights_config(zip::Writer& w, const std::string& dir, bool constants) const;
  std::vector<SampleTensor> sample_inputs() const;

 private:
  Error fail(const std::string& msg) const { return Error("stage " + std::to_string(stage_) + ": " + msg); }

  void add_available(const std::string& t) {
    if (available_set_.insert(t).second) available_.push_back(t);
  }

  std::string tensor_input(const json& node, const char* name) const {
    for (const json& in : node.at("inputs"))
      if (in.at("name") == name && in.at("arg").contains("as_tensor")) return in.at("arg").at("as_tensor").at("name");
    return "";
  }

  // Adds the nodes that compute symbolic int `s` from tensors the stage has:
  // the source's own aten.sym_size.int where its tensor is here, else the
  // same size read from another tensor of the stage with that dimension.
  void materialize(const std::string& s, const std::string& user) {
    if (syms_.count(s)) return;
    auto it = src_.sym_defs().find(s);
    if (it == src_.sym_defs().end()) throw fail("node '" + user + "' reads symbolic size '" + s + "', undefined");
    json def = src_.node_json(it->second);
    for (const std::string& a : sym_args(def)) materialize(a, user);
    if (def.at("target") == "torch.ops.aten.sym_size.int") {
      const std::string t = tensor_input(def, "self");
      if (!available_set_.count(t)) def = substitute_size(def, t, s, user);
    } else {
      for (const json& in : def.at("inputs"))
        if (in.at("arg").contains("as_tensor") && !available_set_.count(in.at("arg").at("as_tensor").at("name")))
          throw fail("symbolic size '" + s + "' (used by node '" + user + "') is computed from tensor '" +
                     in.at("arg").at("as_tensor").at("name").get<std::string>() + "', which is not in this stage");
    }
    syms_.insert(s);
    sym_order_.push_back(s);
    nodes_.push_back(std::move(def));
  }

  json substitute_size(json def, const std::string& t, const std::string& s, const std::string& user) const {
    int64_t dim = 0;
    for (const json& in : def.at("inputs"))
      if (in.at("name") == "dim") dim = pt2_frontend::as_int64(in.at("arg").at("as_int"));
    const json& tv = src_.graph_json().at("tensor_values");
    std::string symbol;
    if (tv.contains(t) && tv.at(t).contains("sizes") && dim >= 0 &&
        static_cast<size_t>(dim) < tv.at(t).at("sizes").size())
      symbol = pt2_frontend::size_symbol(tv.at(t).at("sizes")[static_cast<size_t>(dim)]);
    if (symbol.empty())
      throw fail("node '" + user + "' uses size '" + s + "' of tensor '" + t +
                 "' from another stage, and that size is no plain symbol this stage could read elsewhere");
    for (const std::string& cand : available_)
      for (size_t d = 0; tv.contains(cand) && d < tv.at(cand).value("sizes", json::array()).size(); ++d)
        if (src_.dim_is_symbol(cand, d, symbol)) {
          for (json& in : def.at("inputs")) {
            if (in["name"] == "self") in["arg"] = tensor_arg(cand);
            if (in["name"] == "dim") in["arg"] = json{{"as_int", d}};
          }
          return def;
        }
    throw fail("node '" + user + "' uses size '" + s + "' (symbol " + symbol +
               "), and no tensor this stage receives or computes before it has that dimension");
  }

  const Pt2Source& src_;
  const analysis::StagePlan& sp_;
  int stage_;
  std::vector<std::string> inputs_, outputs_, available_;
  std::set<std::string> available_set_, syms_;
  std::vector<std::string> sym_order_;
  std::vector<json> nodes_;
};

json StageProgram::program() const {
  const json& src_prog = src_.program();
  const json& src_graph = src_.graph_json();
  json graph = json::object();
  json specs = json::array(), graph_inputs = json::array();
  for (int prm : sp_.params) {
    const Pt2Param& p = src_.params()[static_cast<size_t>(prm)];
    specs.push_back(p.spec);
    graph_inputs.push_back(tensor_arg(p.placeholder));
  }
  for (const std::string& in : inputs_) {
    specs.push_back(json{{"user_input", json{{"arg", tensor_arg(in)}}}});
    graph_inputs.push_back(tensor_arg(in));
  }
  json outs = json::array(), out_specs = json::array();
  for (const std::string& o : outputs_) {
    outs.push_back(tensor_arg(o));
    out_specs.push_back(json{{"user_output", json{{"arg", tensor_arg(o)}}}});
  }
  json tensor_values = json::object();
  for (const std::string& t : available_) tensor_values[t] = src_graph["tensor_values"].at(t);
  json sym_ints = json::object();
  for (const std::string& s : sym_order_)
    if (src_graph.value("sym_int_values", json::object()).contains(s)) sym_ints[s] = src_graph["sym_int_values"][s];
  graph["inputs"] = graph_inputs;
  graph["outputs"] = outs;
  graph["nodes"] = nodes_;
  graph["tensor_values"] = tensor_values;
  graph["sym_int_values"] = sym_ints;
  graph["sym_bool_values"] = json::object();
  graph["sym_float_values"] = json::object();
  graph["custom_obj_values"] = json::object();
  graph["is_single_tensor_return"] = false;
  json in_spec =
      json{{"type", "builtins.tuple"},
           {"context", "null"},
           {"children_spec",
            json::array({tuple_spec(inputs_.size()),
                         json{{"type", "builtins.dict"}, {"context", "[]"}, {"children_spec", json::array()}}})}};
  json root = json{{"fqn", ""},
                   {"signature", json{{"inputs", json::array()},
                                      {"outputs", json::array()},
                                      {"in_spec", pytree_text(in_spec)},
                                      {"out_spec", pytree_text(tuple_spec(outputs_.size()))},
                                      {"forward_arg_names", inputs_}}}};
  json gm = src_prog["graph_module"];
  gm["graph"] = graph;
  gm["signature"] = json{{"input_specs", specs}, {"output_specs", out_specs}};
  gm["module_call_graph"] = json::array({root});
  json prog = src_prog;
  prog["graph_module"] = gm;
  prog["guards_code"] = json::array();
  return prog;
}

// The stage's weights (or constants) config, their files added to `w`: one
// file per source file, so aliases stay aliases.
json StageProgram::weights_config(zip::Writer& w, const std::string& dir, bool constants) const {
  json config = json::object();
  std::map<std::string, std::string> renamed;  // source path_name -> stage path_name
  const char* prefix = constants ? "tensor_" : "weight_";
  for (int prm : sp_.params) {
    const Pt2Param& p = src_.params()[static_cast<size_t>(prm)];
    if (p.constant != constants) continue;
    const std::string from = p.payload.at("path_name");
    auto it = renamed.find(from);
    if (it == renamed.end()) {
      it = renamed.emplace(from, prefix + std::to_string(renamed.size())).first;
      w.add(dir + it->second, src_.payload_bytes(p));
    }
    json meta = p.payload;
    meta["path_name"] = it->second;
    config[p.fqn] = meta;
  }
  return json{{"config", config}};
}

std::vector<SampleTensor> StageProgram::sample_inputs() const {
  std::vector<SampleTensor> r;
  const ir::Graph& g = src_.graph();
  for (const std::string& in : inputs_) {
    const json& meta = src_.graph_json().at("tensor_values").at(in);
    SampleTensor t{g.values[g.find_value(in)].dtype, {}};
    if (!storage_class(t.dtype)) throw fail("input '" + in + "' has a dtype .pt2 sample inputs cannot hold");
    for (const json& s : meta.at("sizes"))
      t.sizes.push_back(s.contains("as_int") ? pt2_frontend::as_int64(s.at("as_int")) : expr_hint(s.at("as_expr")));
    r.push_back(std::move(t));
  }
  return r;
}

}  // namespace

EmittedStage emit_pt2_stage(const SourceModel& source, const analysis::Partition& p, int stage,
                            const std::string& path) {
  const auto* src = dynamic_cast<const Pt2Source*>(&source);
  if (!src) throw std::logic_error("emit_pt2_stage: the source is not a .pt2 program");
  StageProgram sp(*src, p.stages[static_cast<size_t>(stage)], stage);
  // Records in the order torch.export.save writes them; the top folder is
  // the artifact's name, as PyTorch's archive writer names it.
  std::string top = path.substr(path.find_last_of('/') + 1);
  top = top.substr(0, top.rfind('.')) + "/";
  zip::Writer w;
  try {
    sp.build();
    const json weights = sp.weights_config(w, top + "data/weights/", false);
    w.add(top + "data/weights/model_weights_config.json", weights.dump());
    const json constants = sp.weights_config(w, top + "data/constants/", true);
    w.add(top + "data/constants/model_constants_config.json", constants.dump());
    w.add(top + "models/model.json", sp.program().dump());
    w.add(top + "data/sample_inputs/model.pt", torch_save_zeros(sp.sample_inputs()));
  } catch (const json::exception& e) {
    // What the frontend did not read of the program (it reads what the IR needs).
    throw Error(src->path() + ": malformed exported program: " + e.what());
  }
  w.add(top + "archive_format", "pt2");
  w.add(top + "archive_version", "0");
  w.add(top + ".data/version", "6\n");
  w.add(top + "byteorder", "little");
  EmittedStage out;
  out.bytes = w.finish();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(out.bytes.data(), static_cast<std::streamsize>(out.bytes.size()));
  if (!f) throw Error(path + ": cannot write stage artifact");
  return out;
}

}  // namespace ppc
