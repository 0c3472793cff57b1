#include "compiler/frontends/pt2/pt2_frontend.h"

#include <algorithm>
#include <regex>
#include <set>

#include "compiler/frontends/pt2/pt2_source.h"
#include "schemas/error.h"

namespace ppc::pt2_frontend {

using nlohmann::json;

const json& union_value(const json& u) {
  if (!u.is_object() || u.size() != 1)
    throw json::type_error::create(302, "expected a union (an object of one member), not " + u.dump().substr(0, 80),
                                   nullptr);
  return u.begin().value();
}

// `key` of object `j` as an integer, or `fallback` where it has none.
int64_t int_or(const json& j, const char* key, int64_t fallback) {
  return j.is_object() && j.contains(key) ? as_int64(j.at(key)) : fallback;
}

std::string union_kind(const json& u) {
  union_value(u);
  return u.begin().key();
}

int64_t as_int64(const json& j) {
  if (!j.is_number_integer() || (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
    throw json::type_error::create(302, "expected an integer, not " + j.dump().substr(0, 80), nullptr);
  return j.get<int64_t>();
}

std::string size_symbol(const json& s) {
  if (!s.is_object() || !s.contains("as_expr")) return "";
  static const std::regex kSymbol(R"(^Symbol\('([A-Za-z_][A-Za-z0-9_]*)'.*\)$)");
  std::smatch m;
  const std::string expr = s.at("as_expr").value("expr_str", "");
  return std::regex_match(expr, m, kSymbol) ? m[1].str() : "";
}

std::string Pt2Source::payload_bytes(const Pt2Param& p) const {
  const std::string dir = p.constant ? "data/constants/" : "data/weights/";
  return zip_->read(prefix_ + dir + p.payload.at("path_name").get<std::string>());
}

bool Pt2Source::dim_is_symbol(const std::string& name, size_t dim, const std::string& symbol) const {
  const json& tv = graph_json().at("tensor_values");
  auto it = tv.find(name);
  if (it == tv.end() || !it->contains("sizes")) return false;
  const json& sizes = (*it).at("sizes");
  return dim < sizes.size() && size_symbol(sizes[dim]) == symbol;
}

namespace {

ir::DType dtype_of(int64_t code) {
  switch (code) {
    case 1: return ir::DType::UInt8;
    case 2: return ir::DType::Int8;
    case 3: return ir::DType::Int16;
    case 4: return ir::DType::Int32;
    case 5: return ir::DType::Int64;
    case 6: return ir::DType::Float16;
    case 7: return ir::DType::Float32;
    case 8: return ir::DType::Float64;
    case 12: return ir::DType::Bool;
    case 13: return ir::DType::BFloat16;
    default: return ir::DType::Other;
  }
}

ir::Shape shape_of(const json& meta) {
  if (!meta.contains("sizes")) return ir::Shape::unranked();
  std::vector<ir::Dim> dims;
  for (const json& s : meta.at("sizes")) {
    if (s.contains("as_int"))
      dims.push_back(ir::Dim::known(as_int64(s.at("as_int"))));
    else if (std::string sym = size_symbol(s); !sym.empty())
      dims.push_back(ir::Dim::symbolic(sym));
    else
      dims.push_back(ir::Dim::unknown());
  }
  return ir::Shape::of(std::move(dims));
}

// The innermost module of a node's nn_module_stack ("key,path,class;..."), or
// "" for the root (and for the exporter's placeholder of an empty stack).
std::string module_of(const json& node) {
  const json& meta = node.value("metadata", json::object());
  auto it = meta.find("nn_module_stack");
  if (it == meta.end() || !it->is_string()) return "";
  const std::string stack = it->get<std::string>();
  const std::string last = stack.substr(stack.rfind(';') == std::string::npos ? 0 : stack.rfind(';') + 1);
  const size_t a = last.find(','), b = a == std::string::npos ? a : last.find(',', a + 1);
  if (b == std::string::npos) return "";
  std::string path = last.substr(a + 1, b - a - 1);
  if (path.find("nn_module_stack") != std::string::npos) return "";
  return path;
}

// Operators whose results differ between runs with equal inputs.
bool nondeterministic(const std::string& target) {
  static const std::set<std::string> kRandom = {"dropout", "native_dropout", "bernoulli", "bernoulli_",  "rand",
                                                "randn",   "randint",        "rand_like", "randn_like",  "randint_like",
                                                "normal",  "normal_",        "uniform_",  "multinomial", "randperm"};
  const std::string op = target.rfind("torch.ops.aten.", 0) == 0 ? target.substr(15) : target;
  return kRandom.count(op.substr(0, op.find('.'))) > 0;
}

double numel_of(const ir::Graph& g, ir::ValueId v) { return g.values[v].shape.numel(1.0); }

int64_t last_dim(const ir::Graph& g, ir::ValueId v, int from_end) {
  const ir::Shape& s = g.values[v].shape;
  if (!s.rank_known || static_cast<int>(s.dims.size()) < from_end) return 1;
  const ir::Dim& d = s.dims[s.dims.size() - static_cast<size_t>(from_end)];
  return d.is_known() ? d.value : 1;
}

// Forward FLOPs of the operators that dominate; the output's size otherwise.
double estimate_flops(const ir::Graph& g, const ir::Node& n) {
  if (n.outputs.empty()) return 0;
  const double out = numel_of(g, n.outputs[0]);
  auto in = [&](size_t i) { return i < n.inputs.size() ? n.inputs[i] : ir::kNone; };
  const std::string& op = n.op;
  if ((op == "aten.linear.default" || op == "aten.matmul.default" || op == "aten.mm.default" ||
       op == "aten.bmm.default") &&
      in(1) != ir::kNone)
    return 2 * out * static_cast<double>(last_dim(g, in(0), 1));
  if (op == "aten.addmm.default" && in(1) != ir::kNone) return 2 * out * static_cast<double>(last_dim(g, in(1), 1));
  if (op == "aten.scaled_dot_product_attention.default" && in(1) != ir::kNone)
    return 4 * numel_of(g, in(0)) * static_cast<double>(last_dim(g, in(1), 2));
  if ((op == "aten.conv2d.default" || op == "aten.conv1d.default" || op == "aten.convolution.default") &&
      in(1) != ir::kNone) {
    const double w = numel_of(g, in(1));
    const int64_t oc = g.values[in(1)].shape.rank_known && !g.values[in(1)].shape.dims.empty()
                           ? std::max<int64_t>(1, g.values[in(1)].shape.dims[0].value)
                           : 1;
    return 2 * out * w / static_cast<double>(oc);
  }
  return out;
}

}  // namespace

class Pt2Lowering {
 public:
  Pt2Lowering(Pt2Source& src, const std::string& path, std::string display, std::vector<std::string>* notes)
      : src_(src), display_(std::move(display)), notes_(notes) {
    src_.path_ = path;
    src_.graph_.name = "pt2";
  }

  void run() {
    open_archive();
    check_version();
    lower_signature();
    lower_nodes();
    lower_outputs();
    alias_unused_params();
    ir::Graph& g = src_.graph_;
    g.sort_topologically();
    if (std::string err = g.verify(); !err.empty()) throw Error(where() + "the graph is inconsistent: " + err);
  }

 private:
  std::string where() const { return display_ + ": " + model_record_ + ": "; }
  Error fail(const std::string& msg) const { return Error(where() + msg); }

  // The archive's top folder, its format marker, and its one program.
  void open_archive() {
    src_.zip_ = std::make_unique<zip::Reader>(src_.path_);
    const zip::Reader& z = *src_.zip_;
    for (const zip::Entry& e : z.entries()) {
      const size_t slash = e.name.find('/');
      if (slash != std::string::npos && e.name.substr(slash + 1) == "archive_format")
        src_.prefix_ = e.name.substr(0, slash + 1);
    }
    if (src_.prefix_.empty() && !z.find("archive_format"))
      throw Error(display_ +
                  ": not a torch.export archive (no archive_format record; .pt2 files are written by "
                  "torch.export.save)");
    const std::string format = z.read(src_.prefix_ + "archive_format");
    if (format != "pt2") throw Error(display_ + ": archive_format is '" + format.substr(0, 40) + "', not 'pt2'");
    std::vector<std::string> models;
    const std::string dir = src_.prefix_ + "models/";
    for (const zip::Entry& e : z.entries())
      if (e.name.rfind(dir, 0) == 0 && e.name.size() > 5 && e.name.substr(e.name.size() - 5) == ".json")
        models.push_back(e.name);
    if (models.empty())
      throw Error(display_ + ": the archive holds no exported program (no models/*.json; an AOTInductor package?)");
    if (models.size() > 1)
      throw Error(display_ + ": the archive holds " + std::to_string(models.size()) +
                  " exported programs; ppc splits one");
    model_record_ = models[0].substr(src_.prefix_.size());
    model_name_ = model_record_.substr(7, model_record_.size() - 12);
    try {
      src_.program_ = json::parse(z.read(models[0]));
    } catch (const json::exception& e) { throw fail(std::string("not valid JSON: ") + e.what()); }
    weights_ = read_config("data/weights/" + model_name_ + "_weights_config.json");
    constants_ = read_config("data/constants/" + model_name_ + "_constants_config.json");
  }

  json read_config(const std::string& record) const {
    const zip::Reader& z = *src_.zip_;
    if (!z.find(src_.prefix_ + record)) return json::object();
    try {
      json j = json::parse(z.read(src_.prefix_ + record));
      return j.value("config", json::object());
    } catch (const json::exception& e) { throw Error(display_ + ": " + record + ": not valid JSON: " + e.what()); }
  }

  void check_version() const {
    const json& p = src_.program_;
    if (!p.is_object() || !p.contains("graph_module") || !p.at("graph_module").contains("graph"))
      throw fail("not a serialized ExportedProgram (no graph_module.graph)");
    const json v = p.value("schema_version", json::object());
    const int64_t major = int_or(v, "major", -1), minor = int_or(v, "minor", -1);
    if (major != kSchemaMajor)
      throw fail("ExportedProgram schema version " + std::to_string(major) + "." + std::to_string(minor) +
                 "; ppc reads schema " + std::to_string(kSchemaMajor) + ".x (torch.export.save of PyTorch 2.11)");
  }

  const json& tensor_meta(const std::string& name) const {
    const json& tv = src_.graph_json().at("tensor_values");
    auto it = tv.find(name);
    if (it == tv.end()) throw fail("tensor '" + name + "' has no entry in tensor_values");
    return *it;
  }

  ir::ValueId add_tensor_input(const std::string& name) {
    const json& meta = tensor_meta(name);
    return src_.graph_.add_input(name, dtype_of(int_or(meta, "dtype", 0)), shape_of(meta));
  }

  // Params (parameters, buffers, lifted tensor constants) and user inputs, in
  // the signature's order.
  void lower_signature() {
    const json& specs = src_.program_.at("graph_module").at("signature").at("input_specs");
    for (const json& spec : specs)
      for (const char* key : {"parameter_name", "buffer_name", "tensor_constant_name"})
        if (union_value(spec).contains(key)) signature_fqns_.insert(union_value(spec).at(key).get<std::string>());
    for (const json& spec : specs) {
      const std::string kind = union_kind(spec);
      const json& body = union_value(spec);
      if (kind == "user_input") {
        const json& arg = body.at("arg");
        if (!arg.contains("as_tensor"))
          throw fail("user input " + arg.dump() + " is not a tensor; ppc splits programs whose inputs are tensors");
        const std::string name = arg.at("as_tensor").at("name");
        src_.placeholders_[name] = add_tensor_input(name);
        continue;
      }
      std::string fqn_key = kind == "parameter"         ? "parameter_name"
                            : kind == "buffer"          ? "buffer_name"
                            : kind == "tensor_constant" ? "tensor_constant_name"
                                                        : "";
      if (fqn_key.empty())
        throw fail("graph signature input of kind '" + kind +
                   "' is not supported (parameters, buffers, tensor "
                   "constants and tensor user inputs are)");
      add_param(kind, body, body.at(fqn_key).get<std::string>(), spec);
    }
  }

  void add_param(const std::string& kind, const json& body, const std::string& fqn, const json& spec) {
    Pt2Param p;
    p.placeholder = body.at("arg").at("name");
    p.fqn = fqn;
    p.spec = spec;
    p.constant = kind == "tensor_constant" || !weights_.contains(fqn);
    const json& config = p.constant ? constants_ : weights_;
    if (!config.contains(fqn))
      throw fail(kind + " '" + fqn + "' has no stored data (no entry in the weights or constants config)");
    p.payload = config[fqn];
    if (p.payload.value("use_pickle", false))
      throw fail(kind + " '" + fqn + "' is stored pickled (a tensor subclass); ppc reads plain tensors");
    const json& meta = tensor_meta(p.placeholder);
    const ir::DType dt = dtype_of(int_or(meta, "dtype", 0));
    ir::Shape shape = shape_of(meta);
    const double numel = shape.numel(1.0);
    if (!(numel >= 0 && numel * std::max(1, ir::dtype_size(dt)) < 9.0e18))
      throw fail(kind + " '" + fqn + "' has an impossible size " + shape.str());
    const int64_t bytes = static_cast<int64_t>(numel) * ir::dtype_size(dt);
    ir::Graph& g = src_.graph_;
    if (g.find_value(fqn) != ir::kNone) throw fail(kind + " '" + fqn + "' is named like another value");
    const ir::ValueId v = g.add_param(fqn, dt, std::move(shape), bytes);
    ir::Param& prm = g.params.back();
    prm.data_source = fqn;
    prm.is_float = kind == "parameter" && ir::dtype_is_float(dt) && meta.value("requires_grad", true);
    // state_dict() holds parameters and persistent buffers; a tied parameter
    // is one placeholder, its other names share its weight file.
    prm.is_state = kind == "parameter" || (kind == "buffer" && body.value("persistent", true));
    if (!p.constant)
      for (const auto& [other, meta_other] : weights_.items())
        if (other != fqn && !signature_fqns_.count(other) &&
            meta_other.value("path_name", "") == p.payload.value("path_name", "") &&
            meta_other.value("tensor_meta", json()) == p.payload.value("tensor_meta", json()))
          prm.aliases.push_back(other);
    src_.placeholders_[p.placeholder] = v;
    src_.params_.push_back(std::move(p));
  }

  // Tensor names a node's argument reads (none for non-tensor arguments).
  std::vector<std::string> tensor_args(const json& node, const json& arg) const {
    const std::string kind = union_kind(arg);
    const json& v = union_value(arg);
    if (kind == "as_tensor" || kind == "as_optional_tensor") {
      if (kind == "as_optional_tensor" && !v.contains("as_tensor")) return {};
      return {kind == "as_tensor" ? v.at("name").get<std::string>() : v.at("as_tensor").at("name").get<std::string>()};
    }
    if (kind == "as_tensors") {
      std::vector<std::string> r;
      for (const json& t : v) r.push_back(t.at("name"));
      return r;
    }
    if (kind == "as_optional_tensors") {
      std::vector<std::string> r;
      for (const json& t : v)
        if (t.contains("as_tensor")) r.push_back(t.at("as_tensor").at("name"));
      return r;
    }
    if (kind == "as_graph" || kind == "as_custom_obj" || kind == "as_operator" || kind == "as_string_to_argument")
      throw fail("node '" + node.value("name", "") + "' (" + node.value("target", "") + "): arguments of kind '" +
                 kind + "' (higher-order operators, custom objects) are not supported");
    return {};
  }

  // Output tensor names; `symbolic` when every output is a symbolic scalar.
  std::vector<std::string> outputs_of(const json& node, bool& symbolic) const {
    std::vector<std::string> r;
    bool any_sym = false;
    for (const json& o : node.at("outputs")) {
      const std::string kind = union_kind(o);
      const json& v = union_value(o);
      if (kind == "as_tensor")
        r.push_back(v.at("name"));
      else if (kind == "as_tensors")
        for (const json& t : v) r.push_back(t.at("name"));
      else if (kind == "as_optional_tensors")
        for (const json& t : v) {
          if (t.contains("as_tensor")) r.push_back(t.at("as_tensor").at("name"));
        }
      else if (kind == "as_sym_int" || kind == "as_sym_bool" || kind == "as_sym_float")
        any_sym = true;
      else if (kind != "as_none")
        throw fail("node '" + node.value("name", "") + "' (" + node.value("target", "") + "): outputs of kind '" +
                   kind + "' are not supported");
    }
    symbolic = r.empty() && any_sym;
    return r;
  }

  void lower_nodes() {
    const json& nodes = src_.graph_json().at("nodes");
    int dropped = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
      const json& node = nodes[i];
      const std::string target = node.value("target", "");
      bool symbolic = false;
      std::vector<std::string> outs = outputs_of(node, symbolic);
      if (symbolic) {
        for (const json& o : node.at("outputs")) {
          const json& v = union_value(o);
          if (v.contains("as_name")) src_.sym_defs_[v.at("as_name").get<std::string>()] = static_cast<int>(i);
        }
        continue;
      }
      if (target.rfind("torch.ops.", 0) != 0)
        throw fail("node '" + node.value("name", "") + "' calls '" + target +
                   "', not an operator under torch.ops (only symbolic sizes may use Python operators)");
      if (outs.empty()) {
        const std::string op = target.substr(10);
        if (op.find("._assert") != std::string::npos || op.find("sym_constrain_range") != std::string::npos) {
          ++dropped;
          continue;
        }
        throw fail("node '" + node.value("name", "") + "' (" + target +
                   ") has no outputs: a side effect ppc cannot place in a stage");
      }
      add_node(node, static_cast<int>(i), target, outs);
    }
    if (dropped && notes_)
      notes_->push_back(display_ + ": " + std::to_string(dropped) +
                        " assertion node(s) (aten._assert_*) dropped: they check, they compute nothing");
  }

  void add_node(const json& node, int index, const std::string& target, const std::vector<std::string>& outs) {
    ir::Graph& g = src_.graph_;
    ir::Node n;
    n.name = node.value("name", "");
    if (n.name.empty() || g.find_node(n.name) != ir::kNone) n.name = "node_" + std::to_string(index);
    n.op = target.substr(10);
    n.module = module_of(node);
    n.source_index = index;
    for (const json& in : node.at("inputs"))
      for (const std::string& t : tensor_args(node, in.at("arg"))) {
        auto ph = src_.placeholders_.find(t);
        const ir::ValueId v = ph != src_.placeholders_.end() ? ph->second : g.find_value(t);
        if (v == ir::kNone)
          throw fail("node '" + n.name + "' reads tensor '" + t + "', which nothing before it produces");
        n.inputs.push_back(v);
      }
    if (n.inputs.empty()) n.flags |= ir::kNodeConstantSource;
    if (nondeterministic(target)) n.flags |= ir::kNodeNondeterministic;
    for (const std::string& o : outs) {
      const json& meta = tensor_meta(o);
      if (g.find_value(o) != ir::kNone) throw fail("tensor '" + o + "' is produced twice");
      n.outputs.push_back(g.add_value(o, dtype_of(int_or(meta, "dtype", 0)), shape_of(meta)));
    }
    const ir::NodeId id = g.add_node(std::move(n));
    g.nodes[id].flops = estimate_flops(g, g.nodes[id]);
  }

  // torch.export keeps each name of a tied parameter as a placeholder of its
  // own, reads only one of them, and stores one weight file for all: an
  // unread placeholder whose file a read one shares is an alias of it (so
  // params.pt holds it under every state_dict() name).
  void alias_unused_params() {
    ir::Graph& g = src_.graph_;
    for (size_t i = 0; i < g.params.size(); ++i) {
      const Pt2Param& pi = src_.params_[i];
      if (pi.constant || !g.values[g.params[i].value].consumers.empty()) continue;
      for (size_t j = 0; j < g.params.size(); ++j) {
        const Pt2Param& pj = src_.params_[j];
        if (j == i || pj.constant || g.values[g.params[j].value].consumers.empty()) continue;
        if (pi.payload.value("path_name", "") != pj.payload.value("path_name", "") ||
            pi.payload.value("tensor_meta", json()) != pj.payload.value("tensor_meta", json()))
          continue;
        g.params[j].aliases.push_back(pi.fqn);
        g.params[i].is_state = false;  // saved as j's alias
        break;
      }
    }
  }

  void lower_outputs() {
    ir::Graph& g = src_.graph_;
    for (const json& spec : src_.program_.at("graph_module").at("signature").at("output_specs")) {
      const std::string kind = union_kind(spec);
      const json& arg = union_value(spec).at("arg");
      if (kind != "user_output")
        throw fail("graph output of kind '" + kind + "' (" + arg.dump() +
                   ") is not supported: export the module in eval mode, or without in-place updates of buffers "
                   "and inputs");
      if (!arg.contains("as_tensor"))
        throw fail("graph output " + arg.dump() + " is not a tensor; ppc splits programs whose outputs are tensors");
      const std::string name = arg.at("as_tensor").at("name");
      auto ph = src_.placeholders_.find(name);
      const ir::ValueId v = ph != src_.placeholders_.end() ? ph->second : g.find_value(name);
      if (v == ir::kNone)
        throw fail("graph output '" + arg.at("as_tensor").at("name").get<std::string>() + "' is undefined");
      g.mark_output(v);
    }
  }

  Pt2Source& src_;
  std::string display_;
  std::vector<std::string>* notes_;
  std::string model_record_, model_name_;
  json weights_, constants_;
  std::set<std::string> signature_fqns_;  ///< every state name the signature binds
};

std::unique_ptr<SourceModel> load_pt2(const std::string& path, const std::string& display_name,
                                      std::vector<std::string>* notes) {
  auto src = std::make_unique<Pt2Source>();
  try {
    Pt2Lowering(*src, path, display_name, notes).run();
  } catch (const json::exception& e) { throw Error(display_name + ": malformed exported program: " + e.what()); }
  return src;
}

}  // namespace ppc::pt2_frontend
