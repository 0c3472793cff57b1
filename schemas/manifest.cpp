#include "schemas/manifest.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include "schemas/error.h"
#include "schemas/json_reader.h"
#include "schemas/json_text.h"

namespace ppc::manifest {

using json = nlohmann::ordered_json;

namespace {

json shape_json(const std::optional<std::vector<Dim>>& shape) {
  if (!shape) return nullptr;
  json a = json::array();
  for (const Dim& d : *shape) {
    if (d.value)
      a.push_back(*d.value);
    else if (!d.symbol.empty())
      a.push_back(d.symbol);
    else
      a.push_back(nullptr);
  }
  return a;
}

json ints_json(const std::vector<int>& v) {
  json a = json::array();
  for (int x : v) a.push_back(x);
  return a;
}

void put_tensor(json& j, const TensorInfo& t) {
  j["name"] = t.name;
  j["dtype"] = t.dtype;
  j["shape"] = shape_json(t.shape);
  j["batch_dim"] = t.batch_dim ? json(*t.batch_dim) : json(nullptr);
}

}  // namespace

std::string shape_str(const std::optional<std::vector<Dim>>& shape) {
  if (!shape) return "?";
  std::string s = "[";
  for (size_t i = 0; i < shape->size(); ++i) {
    const Dim& d = (*shape)[i];
    if (i) s += ",";
    s += d.value ? std::to_string(*d.value) : (d.symbol.empty() ? "?" : d.symbol);
  }
  return s + "]";
}

namespace {

json model_inputs_json(const std::vector<ModelInput>& inputs) {
  json mi = json::array();
  for (const auto& in : inputs) {
    json e;
    put_tensor(e, in);
    e["split"] = in.split;
    e["stages"] = ints_json(in.stages);
    mi.push_back(std::move(e));
  }
  return mi;
}

json model_outputs_json(const std::vector<ModelOutput>& outputs) {
  json mo = json::array();
  for (const auto& out : outputs) {
    json e;
    put_tensor(e, out);
    e["stage"] = out.stage;
    mo.push_back(std::move(e));
  }
  return mo;
}

json stage_inputs_json(const std::vector<StageInput>& inputs) {
  json ins = json::array();
  for (const auto& in : inputs) {
    json x;
    put_tensor(x, in);
    x["source"] = in.source;
    x["from_stage"] = in.from_stage >= 0 ? json(in.from_stage) : json(nullptr);
    ins.push_back(std::move(x));
  }
  return ins;
}

json stage_outputs_json(const std::vector<StageOutput>& outputs) {
  json outs = json::array();
  for (const auto& out : outputs) {
    json x;
    put_tensor(x, out);
    x["to_stages"] = ints_json(out.to_stages);
    x["model_output"] = out.model_output;
    outs.push_back(std::move(x));
  }
  return outs;
}

json stage_params_json(const std::vector<StageParam>& params) {
  json ps = json::array();
  for (const auto& p : params) {
    json x;
    x["name"] = p.name;
    x["original"] = p.original;
    x["dtype"] = p.dtype;
    x["shape"] = p.shape;
    x["bytes"] = p.bytes;
    x["trainable"] = p.trainable;
    if (!p.state) x["state"] = false;
    if (!p.aliases.empty()) x["aliases"] = p.aliases;
    ps.push_back(std::move(x));
  }
  return ps;
}

json stage_json(const Stage& s) {
  json e;
  e["index"] = s.index;
  e["artifact"] = s.artifact;
  e["sha256"] = s.sha256;
  if (!s.data_file.empty()) e["external_data"] = {{"file", s.data_file}, {"sha256", s.data_sha256}};
  e["inputs"] = stage_inputs_json(s.inputs);
  e["outputs"] = stage_outputs_json(s.outputs);
  e["params"] = stage_params_json(s.params);
  e["nodes"] = {{"count", s.node_count}, {"cloned", s.cloned_nodes}, {"first", s.first_node}, {"last", s.last_node}};
  e["modules"] = s.modules;
  e["cost"] = {{"flops", s.flops}, {"param_bytes", s.param_bytes}};
  if (s.model_cost) e["cost"]["model"] = *s.model_cost;
  if (s.model_compute) e["cost"]["model_compute"] = *s.model_compute;
  if (s.model_memory) e["cost"]["memory_bytes"] = *s.model_memory;
  return e;
}

json edge_json(const Edge& e) {
  json x;
  x["value"] = e.value;
  x["dtype"] = e.dtype;
  x["shape"] = shape_json(e.shape);
  x["batch_dim"] = e.batch_dim ? json(*e.batch_dim) : json(nullptr);
  x["producer"] = e.producer;
  x["consumers"] = ints_json(e.consumers);
  x["differentiable"] = e.differentiable;
  x["kind"] = e.kind;
  return x;
}

json tie_json(const TieGroup& t) {
  json x;
  x["name"] = t.name;
  x["policy"] = t.policy;
  x["owner"] = t.owner;
  x["detected_by"] = t.detected_by;
  json mem = json::array();
  for (const auto& mm : t.members)
    mem.push_back({{"param", mm.param}, {"relation", mm.relation}, {"stages", ints_json(mm.stages)}});
  x["members"] = mem;
  return x;
}

json cost_model_json(const Manifest::CostModel& c) {
  json j = {{"balance", c.balance},
            {"unit", c.unit},
            {"partition", c.partition},
            {"bottleneck", c.bottleneck},
            {"imbalance", c.imbalance},
            {"lower_bound", c.lower_bound},
            {"forward_fraction", c.forward_fraction}};
  if (c.message_ms) j["message_ms"] = *c.message_ms;
  if (c.message_bytes_per_second) j["message_bytes_per_second"] = *c.message_bytes_per_second;
  if (c.message_cpu_ms) j["message_cpu_ms"] = *c.message_cpu_ms;
  if (c.message_cpu_bytes_per_second) j["message_cpu_bytes_per_second"] = *c.message_cpu_bytes_per_second;
  if (!c.message_bytes.empty()) {
    json edges = json::array();
    for (const auto& e : c.message_bytes)
      edges.push_back(
          {{"from", e.from}, {"to", e.to}, {"bytes_per_sample", e.bytes}, {"grad_bytes_per_sample", e.grad_bytes}});
    j["message_bytes"] = edges;
  }
  if (c.step_overhead_ms) j["step_overhead_ms"] = *c.step_overhead_ms;
  if (c.predicted_step_ms) j["predicted_step_ms"] = *c.predicted_step_ms;
  if (c.predicted_schedule) j["predicted_schedule"] = *c.predicted_schedule;
  if (c.predicted_cores) j["predicted_cores"] = *c.predicted_cores;
  return j;
}

}  // namespace

json to_json(const Manifest& m) {
  json j;
  j["version"] = m.version;
  j["producer"] = m.producer;
  j["source"] = {
      {"format", m.source.format}, {"file", m.source.file}, {"sha256", m.source.sha256}, {"opset", m.source.opset}};
  j["model_inputs"] = model_inputs_json(m.model_inputs);
  j["model_outputs"] = model_outputs_json(m.model_outputs);
  json st = json::array();
  for (const auto& s : m.stages) st.push_back(stage_json(s));
  j["stages"] = std::move(st);
  json ed = json::array();
  for (const auto& e : m.edges) ed.push_back(edge_json(e));
  j["edges"] = std::move(ed);
  json ties = json::array();
  for (const auto& t : m.ties) ties.push_back(tie_json(t));
  j["ties"] = std::move(ties);
  json d = json::object();
  if (m.default_schedule) d["schedule"] = *m.default_schedule;
  if (m.default_chunks) d["chunks"] = *m.default_chunks;
  if (m.default_dp) d["dp"] = *m.default_dp;
  j["defaults"] = std::move(d);
  j["cost"] = {{"total_flops", m.total_flops}};
  if (m.cost_model) j["cost"]["model"] = cost_model_json(*m.cost_model);
  return j;
}

namespace {

// The manifest's text written straight from the structs, character for
// character what to_json(m).dump(2) writes (a large model's manifest is
// hundreds of thousands of values: building the JSON tree first took longer
// than writing it). Strings of plain printable ASCII and integers are written
// here; any other string and every double by nlohmann's own serializer, so
// escapes, UTF-8 checks and number formatting are its own.
class TextWriter {
 public:
  std::string out;

  void begin_object() { open('{'); }
  void begin_array() { open('['); }
  void end() {
    const auto [bracket, count] = open_.back();
    open_.pop_back();
    if (count > 0) {
      out += '\n';
      out.append(2 * open_.size(), ' ');
    }
    out += bracket == '{' ? '}' : ']';
  }
  /// The next member of the open object: its key; its value follows.
  TextWriter& key(std::string_view k) {
    next();
    str(k);
    out += ": ";
    return *this;
  }
  /// The next element of the open array; its value follows.
  TextWriter& item() {
    next();
    return *this;
  }

  void str(std::string_view v) {
    const bool plain =
        std::all_of(v.begin(), v.end(), [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
    if (!plain) {
      out += json(std::string(v)).dump();
      return;
    }
    out += '"';
    out += v;
    out += '"';
  }
  void num(int64_t v) { out += std::to_string(v); }
  void real(double v) { out += json(v).dump(); }
  void boolean(bool v) { out += v ? "true" : "false"; }
  void null() { out += "null"; }

  template <class T, class F>
  void array(const std::vector<T>& v, F&& each) {
    begin_array();
    for (const T& x : v) {
      item();
      each(x);
    }
    end();
  }
  void ints(const std::vector<int>& v) {
    array(v, [&](int x) { num(x); });
  }
  void strs(const std::vector<std::string>& v) {
    array(v, [&](const std::string& x) { str(x); });
  }
  void shape(const std::optional<std::vector<Dim>>& s) {
    if (!s) return null();
    array(*s, [&](const Dim& d) {
      if (d.value)
        num(*d.value);
      else if (!d.symbol.empty())
        str(d.symbol);
      else
        null();
    });
  }
  void opt_int(const std::optional<int>& v) { v ? num(*v) : null(); }
  void tensor(const TensorInfo& t) {
    key("name").str(t.name);
    key("dtype").str(t.dtype);
    key("shape").shape(t.shape);
    key("batch_dim").opt_int(t.batch_dim);
  }

 private:
  void open(char bracket) {
    out += bracket;
    open_.emplace_back(bracket, 0);
  }
  void next() {
    out += open_.back().second++ > 0 ? ",\n" : "\n";
    out.append(2 * open_.size(), ' ');
  }
  std::vector<std::pair<char, int>> open_;  // bracket, members written
};

void write_stage_io(TextWriter& w, const Stage& s) {
  w.key("inputs").array(s.inputs, [&](const StageInput& in) {
    w.begin_object();
    w.tensor(in);
    w.key("source").str(in.source);
    w.key("from_stage");
    in.from_stage >= 0 ? w.num(in.from_stage) : w.null();
    w.end();
  });
  w.key("outputs").array(s.outputs, [&](const StageOutput& out) {
    w.begin_object();
    w.tensor(out);
    w.key("to_stages").ints(out.to_stages);
    w.key("model_output").boolean(out.model_output);
    w.end();
  });
}

void write_stage(TextWriter& w, const Stage& s) {
  w.begin_object();
  w.key("index").num(s.index);
  w.key("artifact").str(s.artifact);
  w.key("sha256").str(s.sha256);
  if (!s.data_file.empty()) {
    w.key("external_data").begin_object();
    w.key("file").str(s.data_file);
    w.key("sha256").str(s.data_sha256);
    w.end();
  }
  write_stage_io(w, s);
  w.key("params").array(s.params, [&](const StageParam& p) {
    w.begin_object();
    w.key("name").str(p.name);
    w.key("original").str(p.original);
    w.key("dtype").str(p.dtype);
    w.key("shape").array(p.shape, [&](int64_t d) { w.num(d); });
    w.key("bytes").num(p.bytes);
    w.key("trainable").boolean(p.trainable);
    if (!p.state) w.key("state").boolean(false);
    if (!p.aliases.empty()) w.key("aliases").strs(p.aliases);
    w.end();
  });
  w.key("nodes").begin_object();
  w.key("count").num(s.node_count);
  w.key("cloned").num(s.cloned_nodes);
  w.key("first").str(s.first_node);
  w.key("last").str(s.last_node);
  w.end();
  w.key("modules").strs(s.modules);
  w.key("cost").begin_object();
  w.key("flops").num(s.flops);
  w.key("param_bytes").num(s.param_bytes);
  if (s.model_cost) w.key("model").real(*s.model_cost);
  if (s.model_compute) w.key("model_compute").real(*s.model_compute);
  if (s.model_memory) w.key("memory_bytes").real(*s.model_memory);
  w.end();
  w.end();
}

void write_cost_model(TextWriter& w, const Manifest::CostModel& c) {
  w.begin_object();
  w.key("balance").str(c.balance);
  w.key("unit").str(c.unit);
  w.key("partition").str(c.partition);
  w.key("bottleneck").real(c.bottleneck);
  w.key("imbalance").real(c.imbalance);
  w.key("lower_bound").real(c.lower_bound);
  w.key("forward_fraction").real(c.forward_fraction);
  if (c.message_ms) w.key("message_ms").real(*c.message_ms);
  if (c.message_bytes_per_second) w.key("message_bytes_per_second").real(*c.message_bytes_per_second);
  if (c.message_cpu_ms) w.key("message_cpu_ms").real(*c.message_cpu_ms);
  if (c.message_cpu_bytes_per_second) w.key("message_cpu_bytes_per_second").real(*c.message_cpu_bytes_per_second);
  if (!c.message_bytes.empty())
    w.key("message_bytes").array(c.message_bytes, [&](const Manifest::CostModel::EdgeBytes& e) {
      w.begin_object();
      w.key("from").num(e.from);
      w.key("to").num(e.to);
      w.key("bytes_per_sample").real(e.bytes);
      w.key("grad_bytes_per_sample").real(e.grad_bytes);
      w.end();
    });
  if (c.step_overhead_ms) w.key("step_overhead_ms").real(*c.step_overhead_ms);
  if (c.predicted_step_ms) w.key("predicted_step_ms").real(*c.predicted_step_ms);
  if (c.predicted_schedule) w.key("predicted_schedule").str(*c.predicted_schedule);
  if (c.predicted_cores) w.key("predicted_cores").real(*c.predicted_cores);
  w.end();
}

void write_graph(TextWriter& w, const Manifest& m) {
  w.key("edges").array(m.edges, [&](const Edge& e) {
    w.begin_object();
    w.key("value").str(e.value);
    w.key("dtype").str(e.dtype);
    w.key("shape").shape(e.shape);
    w.key("batch_dim").opt_int(e.batch_dim);
    w.key("producer").num(e.producer);
    w.key("consumers").ints(e.consumers);
    w.key("differentiable").boolean(e.differentiable);
    w.key("kind").str(e.kind);
    w.end();
  });
  w.key("ties").array(m.ties, [&](const TieGroup& t) {
    w.begin_object();
    w.key("name").str(t.name);
    w.key("policy").str(t.policy);
    w.key("owner").num(t.owner);
    w.key("detected_by").str(t.detected_by);
    w.key("members").array(t.members, [&](const TieMember& mm) {
      w.begin_object();
      w.key("param").str(mm.param);
      w.key("relation").str(mm.relation);
      w.key("stages").ints(mm.stages);
      w.end();
    });
    w.end();
  });
}

}  // namespace

std::string to_json_text(const Manifest& m) {
  TextWriter w;
  w.begin_object();
  w.key("version").num(m.version);
  w.key("producer").str(m.producer);
  w.key("source").begin_object();
  w.key("format").str(m.source.format);
  w.key("file").str(m.source.file);
  w.key("sha256").str(m.source.sha256);
  w.key("opset").num(m.source.opset);
  w.end();
  w.key("model_inputs").array(m.model_inputs, [&](const ModelInput& in) {
    w.begin_object();
    w.tensor(in);
    w.key("split").str(in.split);
    w.key("stages").ints(in.stages);
    w.end();
  });
  w.key("model_outputs").array(m.model_outputs, [&](const ModelOutput& out) {
    w.begin_object();
    w.tensor(out);
    w.key("stage").num(out.stage);
    w.end();
  });
  w.key("stages").array(m.stages, [&](const Stage& s) { write_stage(w, s); });
  write_graph(w, m);
  w.key("defaults").begin_object();
  if (m.default_schedule) w.key("schedule").str(*m.default_schedule);
  if (m.default_chunks) w.key("chunks").num(*m.default_chunks);
  if (m.default_dp) w.key("dp").num(*m.default_dp);
  w.end();
  w.key("cost").begin_object();
  w.key("total_flops").num(m.total_flops);
  if (m.cost_model) {
    w.key("model");
    write_cost_model(w, *m.cost_model);
  }
  w.end();
  w.end();
  w.out += '\n';
  return std::move(w.out);
}

// ---------------------------------------------------------------------------
// Reading

namespace {

std::optional<std::vector<Dim>> read_shape(const JsonNode& n) {
  if (n.json().is_null()) return std::nullopt;
  n.expect_array("shape");
  std::vector<Dim> dims;
  for (size_t i = 0; i < n.size(); ++i) {
    JsonNode d = n.at(i);
    Dim dim;
    if (d.json().is_string())
      dim.symbol = d.as_string("dim");
    else if (!d.json().is_null())
      dim.value = d.as_int("dim");
    dims.push_back(dim);
  }
  return dims;
}

std::optional<int> read_opt_int(const JsonNode& parent, const char* key) {
  if (!parent.has(key) || parent.at(key).json().is_null()) return std::nullopt;
  return static_cast<int>(parent.at(key).as_int(std::string("'") + key + "'"));
}

void read_tensor(const JsonNode& n, TensorInfo& t) {
  if (!n.json().is_object()) throw n.error("expected an object");
  t.name = n.at("name").as_string("'name'");
  t.dtype = n.at("dtype").as_string("'dtype'");
  t.shape = n.has("shape") ? read_shape(n.at("shape")) : std::nullopt;
  t.batch_dim = read_opt_int(n, "batch_dim");
}

std::vector<int> read_ints(const JsonNode& n, const std::string& what) {
  n.expect_array(what);
  std::vector<int> v;
  for (size_t i = 0; i < n.size(); ++i) v.push_back(static_cast<int>(n.at(i).as_int(what)));
  return v;
}

void check_stage_refs(const JsonNode& n, const std::vector<int>& v, int nstages) {
  for (int s : v)
    if (s < 0 || s >= nstages)
      throw n.error("stage " + std::to_string(s) + " does not exist (the manifest has " + std::to_string(nstages) +
                    " stages)");
}

JsonDocument parse_document(const std::string& text, const std::string& display_name) {
  try {
    return JsonDocument::parse(text, display_name);
  } catch (const JsonSyntaxError& e) { throw Error(e.what()); }
}

void check_version(const JsonNode& root) {
  int64_t version = root.at("version").as_int("'version'");
  if (version != kVersion)
    throw root.at("version").error("unsupported manifest version " + std::to_string(version) +
                                   " (this build reads version " + std::to_string(kVersion) + ")");
}

Source parse_source(const JsonNode& src) {
  Source source;
  source.format = src.at("format").as_enum("source format", {"onnx", "torchscript", "pt2"});
  source.file = src.at("file").as_string("'file'");
  if (src.has("sha256")) source.sha256 = src.at("sha256").as_string("'sha256'");
  if (src.has("opset")) source.opset = src.at("opset").as_int("'opset'");
  return source;
}

// Artifacts are opened next to the manifest: a path could reach outside it.
bool is_plain_file_name(const std::string& name) {
  return !(name.empty() || name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
           name == ".." || name == ".");
}

void parse_stage_files(const JsonNode& sn, Stage& s) {
  s.artifact = sn.at("artifact").as_string("'artifact'");
  if (!is_plain_file_name(s.artifact))
    throw sn.at("artifact").error("'artifact' must be a plain file name next to the manifest");
  if (sn.has("sha256")) s.sha256 = sn.at("sha256").as_string("'sha256'");
  if (sn.has("external_data")) {
    JsonNode ed = sn.at("external_data");
    s.data_file = ed.at("file").as_string("'file'");
    if (!is_plain_file_name(s.data_file) || s.data_file == s.artifact)
      throw ed.at("file").error("'file' must be a plain file name next to the manifest, other than the artifact");
    s.data_sha256 = ed.at("sha256").as_string("'sha256'");
  }
}

StageInput parse_stage_input(const JsonNode& x, int nstages) {
  StageInput in;
  read_tensor(x, in);
  in.source = x.at("source").as_enum("input source", {"model_input", "edge", "tie"});
  in.from_stage = read_opt_int(x, "from_stage").value_or(-1);
  if (in.source != "model_input" && (in.from_stage < 0 || in.from_stage >= nstages))
    throw x.error("input '" + in.name + "' comes from a stage that does not exist");
  return in;
}

StageOutput parse_stage_output(const JsonNode& x, int nstages) {
  StageOutput out;
  read_tensor(x, out);
  if (x.has("to_stages")) out.to_stages = read_ints(x.at("to_stages"), "'to_stages'");
  check_stage_refs(x, out.to_stages, nstages);
  if (x.has("model_output")) out.model_output = x.at("model_output").as_bool("'model_output'");
  return out;
}

StageParam parse_stage_param(const JsonNode& x) {
  StageParam p;
  p.name = x.at("name").as_string("'name'");
  p.original = x.has("original") ? x.at("original").as_string("'original'") : p.name;
  p.dtype = x.at("dtype").as_string("'dtype'");
  JsonNode shp = x.at("shape");
  shp.expect_array("'shape'");
  for (size_t d = 0; d < shp.size(); ++d) p.shape.push_back(shp.at(d).as_int("dim"));
  if (x.has("bytes")) p.bytes = x.at("bytes").as_int("'bytes'");
  if (x.has("trainable")) p.trainable = x.at("trainable").as_bool("'trainable'");
  if (x.has("state")) p.state = x.at("state").as_bool("'state'");
  if (x.has("aliases")) {
    JsonNode al = x.at("aliases");
    al.expect_array("'aliases'");
    for (size_t i = 0; i < al.size(); ++i) p.aliases.push_back(al.at(i).as_string("alias"));
  }
  return p;
}

// The descriptive keys: node counts, modules and cost figures.
void parse_stage_summary(const JsonNode& sn, Stage& s) {
  if (sn.has("nodes")) {
    JsonNode nd = sn.at("nodes");
    if (nd.has("count")) s.node_count = static_cast<int>(nd.at("count").as_int("'count'"));
    if (nd.has("cloned")) s.cloned_nodes = static_cast<int>(nd.at("cloned").as_int("'cloned'"));
    if (nd.has("first")) s.first_node = nd.at("first").as_string("'first'");
    if (nd.has("last")) s.last_node = nd.at("last").as_string("'last'");
  }
  if (sn.has("modules")) {
    JsonNode mods = sn.at("modules");
    mods.expect_array("'modules'");
    for (size_t k = 0; k < mods.size(); ++k) s.modules.push_back(mods.at(k).as_string("module"));
  }
  if (sn.has("cost")) {
    JsonNode c = sn.at("cost");
    if (c.has("flops")) s.flops = c.at("flops").as_int("'flops'");
    if (c.has("param_bytes")) s.param_bytes = c.at("param_bytes").as_int("'param_bytes'");
    if (c.has("model")) s.model_cost = c.at("model").as_number("'model'");
    if (c.has("model_compute")) s.model_compute = c.at("model_compute").as_number("'model_compute'");
    if (c.has("memory_bytes")) s.model_memory = c.at("memory_bytes").as_number("'memory_bytes'");
  }
}

// Stage `i` of `nstages`; its index must be its position.
Stage parse_stage(const JsonNode& sn, size_t i, int nstages) {
  Stage s;
  s.index = static_cast<int>(sn.at("index").as_int("'index'"));
  if (s.index != static_cast<int>(i))
    throw sn.at("index").error("stage index " + std::to_string(s.index) + " out of order (expected " +
                               std::to_string(i) + ")");
  parse_stage_files(sn, s);
  JsonNode ins = sn.at("inputs");
  ins.expect_array("'inputs'");
  for (size_t k = 0; k < ins.size(); ++k) s.inputs.push_back(parse_stage_input(ins.at(k), nstages));
  JsonNode outs = sn.at("outputs");
  outs.expect_array("'outputs'");
  for (size_t k = 0; k < outs.size(); ++k) s.outputs.push_back(parse_stage_output(outs.at(k), nstages));
  if (sn.has("params")) {
    JsonNode ps = sn.at("params");
    ps.expect_array("'params'");
    for (size_t k = 0; k < ps.size(); ++k) s.params.push_back(parse_stage_param(ps.at(k)));
  }
  parse_stage_summary(sn, s);
  return s;
}

Edge parse_edge(const JsonNode& x, int nstages) {
  Edge e;
  e.value = x.at("value").as_string("'value'");
  e.dtype = x.at("dtype").as_string("'dtype'");
  e.shape = x.has("shape") ? read_shape(x.at("shape")) : std::nullopt;
  e.batch_dim = read_opt_int(x, "batch_dim");
  e.producer = static_cast<int>(x.at("producer").as_int("'producer'"));
  check_stage_refs(x.at("producer"), {e.producer}, nstages);
  e.consumers = read_ints(x.at("consumers"), "'consumers'");
  check_stage_refs(x.at("consumers"), e.consumers, nstages);
  for (int c : e.consumers)
    if (c <= e.producer)
      throw x.at("consumers")
          .error("edge '" + e.value + "' flows backwards (stage " + std::to_string(e.producer) + " -> " +
                 std::to_string(c) + ")");
  if (x.has("differentiable")) e.differentiable = x.at("differentiable").as_bool("'differentiable'");
  if (x.has("kind")) e.kind = x.at("kind").as_enum("edge kind", {"activation", "param"});
  return e;
}

TieMember parse_tie_member(const JsonNode& y, int nstages) {
  TieMember mm;
  mm.param = y.at("param").as_string("'param'");
  mm.relation = y.at("relation").as_enum("tie relation", {"identity", "transpose"});
  mm.stages = read_ints(y.at("stages"), "'stages'");
  check_stage_refs(y.at("stages"), mm.stages, nstages);
  return mm;
}

TieGroup parse_tie(const JsonNode& x, int nstages) {
  TieGroup t;
  t.name = x.at("name").as_string("'name'");
  t.policy = x.at("policy").as_enum("tie policy", {"replicate", "transmit"});
  t.owner = static_cast<int>(x.at("owner").as_int("'owner'"));
  check_stage_refs(x.at("owner"), {t.owner}, nstages);
  if (x.has("detected_by")) t.detected_by = x.at("detected_by").as_string("'detected_by'");
  JsonNode mem = x.at("members");
  mem.expect_array("'members'");
  for (size_t k = 0; k < mem.size(); ++k) t.members.push_back(parse_tie_member(mem.at(k), nstages));
  return t;
}

ModelInput parse_model_input(const JsonNode& x, int nstages) {
  ModelInput in;
  read_tensor(x, in);
  if (x.has("split")) in.split = x.at("split").as_enum("input split", {"batch", "replicate"});
  if (x.has("stages")) in.stages = read_ints(x.at("stages"), "'stages'");
  check_stage_refs(x, in.stages, nstages);
  return in;
}

ModelOutput parse_model_output(const JsonNode& x, int nstages) {
  ModelOutput out;
  read_tensor(x, out);
  out.stage = static_cast<int>(x.at("stage").as_int("'stage'"));
  check_stage_refs(x.at("stage"), {out.stage}, nstages);
  return out;
}

Manifest::CostModel::EdgeBytes parse_message_bytes(const JsonNode& e, int nstages) {
  Manifest::CostModel::EdgeBytes b;
  b.from = static_cast<int>(e.at("from").as_int("'from'"));
  b.to = static_cast<int>(e.at("to").as_int("'to'"));
  if (b.from < 0 || b.to <= b.from || b.to >= nstages)
    throw e.error("not an edge from an earlier stage to a later one of the " + std::to_string(nstages) + " stages");
  b.bytes = e.at("bytes_per_sample").as_number("'bytes_per_sample'");
  b.grad_bytes = e.at("grad_bytes_per_sample").as_number("'grad_bytes_per_sample'");
  if (!(b.bytes >= 0) || !(b.grad_bytes >= 0)) throw e.error("bytes must be 0 or more");
  return b;
}

Manifest::CostModel parse_cost_model(const JsonNode& c, int nstages) {
  Manifest::CostModel cm;
  cm.balance = c.at("balance").as_string("'balance'");
  cm.unit = c.at("unit").as_string("'unit'");
  if (c.has("partition")) cm.partition = c.at("partition").as_string("'partition'");
  cm.bottleneck = c.at("bottleneck").as_number("'bottleneck'");
  cm.imbalance = c.at("imbalance").as_number("'imbalance'");
  if (c.has("lower_bound")) cm.lower_bound = c.at("lower_bound").as_number("'lower_bound'");
  if (c.has("forward_fraction")) cm.forward_fraction = c.at("forward_fraction").as_number("'forward_fraction'");
  if (c.has("message_ms")) cm.message_ms = c.at("message_ms").as_number("'message_ms'");
  if (c.has("message_bytes_per_second"))
    cm.message_bytes_per_second = c.at("message_bytes_per_second").as_number("'message_bytes_per_second'");
  if (c.has("message_cpu_ms")) cm.message_cpu_ms = c.at("message_cpu_ms").as_number("'message_cpu_ms'");
  if (c.has("message_cpu_bytes_per_second"))
    cm.message_cpu_bytes_per_second = c.at("message_cpu_bytes_per_second").as_number("'message_cpu_bytes_per_second'");
  if (c.has("message_bytes")) {
    JsonNode edges = c.at("message_bytes");
    edges.expect_array("'message_bytes'");
    for (size_t k = 0; k < edges.size(); ++k) cm.message_bytes.push_back(parse_message_bytes(edges.at(k), nstages));
  }
  if (c.has("step_overhead_ms")) cm.step_overhead_ms = c.at("step_overhead_ms").as_number("'step_overhead_ms'");
  if (c.has("predicted_step_ms")) cm.predicted_step_ms = c.at("predicted_step_ms").as_number("'predicted_step_ms'");
  if (c.has("predicted_schedule")) cm.predicted_schedule = c.at("predicted_schedule").as_string("'predicted_schedule'");
  if (c.has("predicted_cores")) cm.predicted_cores = c.at("predicted_cores").as_number("'predicted_cores'");
  return cm;
}

// Edges, ties, model inputs and outputs: the keys that name stages by index.
void parse_cross_stage(const JsonNode& root, int nstages, Manifest& m) {
  if (root.has("edges")) {
    JsonNode es = root.at("edges");
    es.expect_array("'edges'");
    for (size_t i = 0; i < es.size(); ++i) m.edges.push_back(parse_edge(es.at(i), nstages));
  }
  if (root.has("ties")) {
    JsonNode ts = root.at("ties");
    ts.expect_array("'ties'");
    for (size_t i = 0; i < ts.size(); ++i) m.ties.push_back(parse_tie(ts.at(i), nstages));
  }
  JsonNode mi = root.at("model_inputs");
  mi.expect_array("'model_inputs'");
  for (size_t i = 0; i < mi.size(); ++i) m.model_inputs.push_back(parse_model_input(mi.at(i), nstages));
  JsonNode mo = root.at("model_outputs");
  mo.expect_array("'model_outputs'");
  for (size_t i = 0; i < mo.size(); ++i) m.model_outputs.push_back(parse_model_output(mo.at(i), nstages));
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& display_name) {
  JsonDocument doc = parse_document(text, display_name);
  JsonNode root = root_node(doc);
  if (!root.json().is_object()) throw root.error("a manifest must be a JSON object");
  Manifest m;
  check_version(root);
  m.version = kVersion;
  if (root.has("producer")) m.producer = root.at("producer").as_string("'producer'");
  m.source = parse_source(root.at("source"));

  // Stages first: every later reference to a stage is checked against their count.
  JsonNode stages = root.at("stages");
  stages.expect_array("'stages'");
  if (stages.size() == 0) throw stages.error("a manifest needs at least one stage");
  const int ns = static_cast<int>(stages.size());
  for (size_t i = 0; i < stages.size(); ++i) m.stages.push_back(parse_stage(stages.at(i), i, ns));
  parse_cross_stage(root, ns, m);
  if (root.has("defaults")) {
    JsonNode d = root.at("defaults");
    if (d.has("schedule")) m.default_schedule = d.at("schedule").as_string("'schedule'");
    if (d.has("chunks")) m.default_chunks = static_cast<int>(d.at("chunks").as_int("'chunks'"));
    if (d.has("dp")) {
      const int64_t dp = d.at("dp").as_int("'dp'");
      if (dp < 1 || dp > 1000000) throw d.at("dp").error("'dp' must be between 1 and 1000000");
      m.default_dp = static_cast<int>(dp);
    }
  }
  if (root.has("cost") && root.at("cost").has("total_flops"))
    m.total_flops = root.at("cost").at("total_flops").as_int("'total_flops'");
  if (root.has("cost") && root.at("cost").has("model"))
    m.cost_model = parse_cost_model(root.at("cost").at("model"), ns);
  return m;
}

Manifest load_manifest(const std::string& path, const std::string& display_name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(display_name + ": cannot read manifest");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_manifest(ss.str(), display_name);
}

}  // namespace ppc::manifest
