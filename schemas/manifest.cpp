#include "schemas/manifest.h"

#include <fstream>
#include <sstream>

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

json to_json(const Manifest& m) {
  json j;
  j["version"] = m.version;
  j["producer"] = m.producer;
  j["source"] = {{"format", m.source.format}, {"file", m.source.file}, {"sha256", m.source.sha256}, {"opset", m.source.opset}};
  json mi = json::array();
  for (const auto& in : m.model_inputs) {
    json e;
    put_tensor(e, in);
    e["split"] = in.split;
    e["stages"] = ints_json(in.stages);
    mi.push_back(e);
  }
  j["model_inputs"] = mi;
  json mo = json::array();
  for (const auto& out : m.model_outputs) {
    json e;
    put_tensor(e, out);
    e["stage"] = out.stage;
    mo.push_back(e);
  }
  j["model_outputs"] = mo;
  json st = json::array();
  for (const auto& s : m.stages) {
    json e;
    e["index"] = s.index;
    e["artifact"] = s.artifact;
    e["sha256"] = s.sha256;
    if (!s.data_file.empty()) e["external_data"] = {{"file", s.data_file}, {"sha256", s.data_sha256}};
    json ins = json::array();
    for (const auto& in : s.inputs) {
      json x;
      put_tensor(x, in);
      x["source"] = in.source;
      x["from_stage"] = in.from_stage >= 0 ? json(in.from_stage) : json(nullptr);
      ins.push_back(x);
    }
    e["inputs"] = ins;
    json outs = json::array();
    for (const auto& out : s.outputs) {
      json x;
      put_tensor(x, out);
      x["to_stages"] = ints_json(out.to_stages);
      x["model_output"] = out.model_output;
      outs.push_back(x);
    }
    e["outputs"] = outs;
    json ps = json::array();
    for (const auto& p : s.params) {
      json x;
      x["name"] = p.name;
      x["original"] = p.original;
      x["dtype"] = p.dtype;
      x["shape"] = p.shape;
      x["bytes"] = p.bytes;
      x["trainable"] = p.trainable;
      ps.push_back(x);
    }
    e["params"] = ps;
    e["nodes"] = {{"count", s.node_count}, {"cloned", s.cloned_nodes}, {"first", s.first_node}, {"last", s.last_node}};
    e["modules"] = s.modules;
    e["cost"] = {{"flops", s.flops}, {"param_bytes", s.param_bytes}};
    if (s.model_cost) e["cost"]["model"] = *s.model_cost;
    if (s.model_compute) e["cost"]["model_compute"] = *s.model_compute;
    if (s.model_memory) e["cost"]["memory_bytes"] = *s.model_memory;
    st.push_back(e);
  }
  j["stages"] = st;
  json ed = json::array();
  for (const auto& e : m.edges) {
    json x;
    x["value"] = e.value;
    x["dtype"] = e.dtype;
    x["shape"] = shape_json(e.shape);
    x["batch_dim"] = e.batch_dim ? json(*e.batch_dim) : json(nullptr);
    x["producer"] = e.producer;
    x["consumers"] = ints_json(e.consumers);
    x["differentiable"] = e.differentiable;
    x["kind"] = e.kind;
    ed.push_back(x);
  }
  j["edges"] = ed;
  json ties = json::array();
  for (const auto& t : m.ties) {
    json x;
    x["name"] = t.name;
    x["policy"] = t.policy;
    x["owner"] = t.owner;
    x["detected_by"] = t.detected_by;
    json mem = json::array();
    for (const auto& mm : t.members)
      mem.push_back({{"param", mm.param}, {"relation", mm.relation}, {"stages", ints_json(mm.stages)}});
    x["members"] = mem;
    ties.push_back(x);
  }
  j["ties"] = ties;
  json d = json::object();
  if (m.default_schedule) d["schedule"] = *m.default_schedule;
  if (m.default_chunks) d["chunks"] = *m.default_chunks;
  j["defaults"] = d;
  j["cost"] = {{"total_flops", m.total_flops}};
  if (m.cost_model) {
    const auto& c = *m.cost_model;
    j["cost"]["model"] = {{"balance", c.balance},         {"unit", c.unit},
                          {"partition", c.partition},     {"bottleneck", c.bottleneck},
                          {"imbalance", c.imbalance},     {"lower_bound", c.lower_bound},
                          {"forward_fraction", c.forward_fraction}};
    if (c.message_ms) j["cost"]["model"]["message_ms"] = *c.message_ms;
    if (c.message_bytes_per_second) j["cost"]["model"]["message_bytes_per_second"] = *c.message_bytes_per_second;
    if (c.message_cpu_ms) j["cost"]["model"]["message_cpu_ms"] = *c.message_cpu_ms;
    if (c.message_cpu_bytes_per_second)
      j["cost"]["model"]["message_cpu_bytes_per_second"] = *c.message_cpu_bytes_per_second;
    if (!c.message_bytes.empty()) {
      json edges = json::array();
      for (const auto& e : c.message_bytes)
        edges.push_back({{"from", e.from}, {"to", e.to}, {"bytes_per_sample", e.bytes},
                         {"grad_bytes_per_sample", e.grad_bytes}});
      j["cost"]["model"]["message_bytes"] = edges;
    }
    if (c.step_overhead_ms) j["cost"]["model"]["step_overhead_ms"] = *c.step_overhead_ms;
    if (c.predicted_step_ms) j["cost"]["model"]["predicted_step_ms"] = *c.predicted_step_ms;
    if (c.predicted_schedule) j["cost"]["model"]["predicted_schedule"] = *c.predicted_schedule;
    if (c.predicted_cores) j["cost"]["model"]["predicted_cores"] = *c.predicted_cores;
  }
  return j;
}

std::string to_json_text(const Manifest& m) { return to_json(m).dump(2) + "\n"; }

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
    if (s < 0 || s >= nstages) throw n.error("stage " + std::to_string(s) + " does not exist (the manifest has " + std::to_string(nstages) + " stages)");
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& display_name) {
  JsonDocument doc = [&] {
    try {
      return JsonDocument::parse(text, display_name);
    } catch (const JsonSyntaxError& e) {
      throw Error(e.what());
    }
  }();
  JsonNode root = root_node(doc);
  if (!root.json().is_object()) throw root.error("a manifest must be a JSON object");
  Manifest m;
  int64_t version = root.at("version").as_int("'version'");
  if (version != kVersion)
    throw root.at("version").error("unsupported manifest version " + std::to_string(version) + " (this build reads version " + std::to_string(kVersion) + ")");
  m.version = kVersion;
  if (root.has("producer")) m.producer = root.at("producer").as_string("'producer'");
  JsonNode src = root.at("source");
  m.source.format = src.at("format").as_enum("source format", {"onnx", "torchscript"});
  m.source.file = src.at("file").as_string("'file'");
  if (src.has("sha256")) m.source.sha256 = src.at("sha256").as_string("'sha256'");
  if (src.has("opset")) m.source.opset = src.at("opset").as_int("'opset'");

  JsonNode stages = root.at("stages");
  stages.expect_array("'stages'");
  if (stages.size() == 0) throw stages.error("a manifest needs at least one stage");
  const int ns = static_cast<int>(stages.size());
  for (size_t i = 0; i < stages.size(); ++i) {
    JsonNode sn = stages.at(i);
    Stage s;
    s.index = static_cast<int>(sn.at("index").as_int("'index'"));
    if (s.index != static_cast<int>(i)) throw sn.at("index").error("stage index " + std::to_string(s.index) + " out of order (expected " + std::to_string(i) + ")");
    s.artifact = sn.at("artifact").as_string("'artifact'");
    if (s.artifact.empty() || s.artifact.find('/') != std::string::npos || s.artifact.find('\\') != std::string::npos || s.artifact == ".." || s.artifact == ".")
      throw sn.at("artifact").error("'artifact' must be a plain file name next to the manifest");
    if (sn.has("sha256")) s.sha256 = sn.at("sha256").as_string("'sha256'");
    if (sn.has("external_data")) {
      JsonNode ed = sn.at("external_data");
      s.data_file = ed.at("file").as_string("'file'");
      if (s.data_file.empty() || s.data_file.find('/') != std::string::npos || s.data_file.find('\\') != std::string::npos ||
          s.data_file == ".." || s.data_file == "." || s.data_file == s.artifact)
        throw ed.at("file").error("'file' must be a plain file name next to the manifest, other than the artifact");
      s.data_sha256 = ed.at("sha256").as_string("'sha256'");
    }
    JsonNode ins = sn.at("inputs");
    ins.expect_array("'inputs'");
    for (size_t k = 0; k < ins.size(); ++k) {
      StageInput in;
      JsonNode x = ins.at(k);
      read_tensor(x, in);
      in.source = x.at("source").as_enum("input source", {"model_input", "edge", "tie"});
      in.from_stage = read_opt_int(x, "from_stage").value_or(-1);
      if (in.source != "model_input" && (in.from_stage < 0 || in.from_stage >= ns))
        throw x.error("input '" + in.name + "' comes from a stage that does not exist");
      s.inputs.push_back(in);
    }
    JsonNode outs = sn.at("outputs");
    outs.expect_array("'outputs'");
    for (size_t k = 0; k < outs.size(); ++k) {
      StageOutput out;
      JsonNode x = outs.at(k);
      read_tensor(x, out);
      if (x.has("to_stages")) out.to_stages = read_ints(x.at("to_stages"), "'to_stages'");
      check_stage_refs(x, out.to_stages, ns);
      if (x.has("model_output")) out.model_output = x.at("model_output").as_bool("'model_output'");
      s.outputs.push_back(out);
    }
    if (sn.has("params")) {
      JsonNode ps = sn.at("params");
      ps.expect_array("'params'");
      for (size_t k = 0; k < ps.size(); ++k) {
        JsonNode x = ps.at(k);
        StageParam p;
        p.name = x.at("name").as_string("'name'");
        p.original = x.has("original") ? x.at("original").as_string("'original'") : p.name;
        p.dtype = x.at("dtype").as_string("'dtype'");
        JsonNode shp = x.at("shape");
        shp.expect_array("'shape'");
        for (size_t d = 0; d < shp.size(); ++d) p.shape.push_back(shp.at(d).as_int("dim"));
        if (x.has("bytes")) p.bytes = x.at("bytes").as_int("'bytes'");
        if (x.has("trainable")) p.trainable = x.at("trainable").as_bool("'trainable'");
        s.params.push_back(p);
      }
    }
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
    m.stages.push_back(std::move(s));
  }
  if (root.has("edges")) {
    JsonNode es = root.at("edges");
    es.expect_array("'edges'");
    for (size_t i = 0; i < es.size(); ++i) {
      JsonNode x = es.at(i);
      Edge e;
      e.value = x.at("value").as_string("'value'");
      e.dtype = x.at("dtype").as_string("'dtype'");
      e.shape = x.has("shape") ? read_shape(x.at("shape")) : std::nullopt;
      e.batch_dim = read_opt_int(x, "batch_dim");
      e.producer = static_cast<int>(x.at("producer").as_int("'producer'"));
      check_stage_refs(x.at("producer"), {e.producer}, ns);
      e.consumers = read_ints(x.at("consumers"), "'consumers'");
      check_stage_refs(x.at("consumers"), e.consumers, ns);
      for (int c : e.consumers)
        if (c <= e.producer) throw x.at("consumers").error("edge '" + e.value + "' flows backwards (stage " + std::to_string(e.producer) + " -> " + std::to_string(c) + ")");
      if (x.has("differentiable")) e.differentiable = x.at("differentiable").as_bool("'differentiable'");
      if (x.has("kind")) e.kind = x.at("kind").as_enum("edge kind", {"activation", "param"});
      m.edges.push_back(std::move(e));
    }
  }
  if (root.has("ties")) {
    JsonNode ts = root.at("ties");
    ts.expect_array("'ties'");
    for (size_t i = 0; i < ts.size(); ++i) {
      JsonNode x = ts.at(i);
      TieGroup t;
      t.name = x.at("name").as_string("'name'");
      t.policy = x.at("policy").as_enum("tie policy", {"replicate", "transmit"});
      t.owner = static_cast<int>(x.at("owner").as_int("'owner'"));
      check_stage_refs(x.at("owner"), {t.owner}, ns);
      if (x.has("detected_by")) t.detected_by = x.at("detected_by").as_string("'detected_by'");
      JsonNode mem = x.at("members");
      mem.expect_array("'members'");
      for (size_t k = 0; k < mem.size(); ++k) {
        JsonNode y = mem.at(k);
        TieMember mm;
        mm.param = y.at("param").as_string("'param'");
        mm.relation = y.at("relation").as_enum("tie relation", {"identity", "transpose"});
        mm.stages = read_ints(y.at("stages"), "'stages'");
        check_stage_refs(y.at("stages"), mm.stages, ns);
        t.members.push_back(mm);
      }
      m.ties.push_back(std::move(t));
    }
  }
  JsonNode mi = root.at("model_inputs");
  mi.expect_array("'model_inputs'");
  for (size_t i = 0; i < mi.size(); ++i) {
    JsonNode x = mi.at(i);
    ModelInput in;
    read_tensor(x, in);
    if (x.has("split")) in.split = x.at("split").as_enum("input split", {"batch", "replicate"});
    if (x.has("stages")) in.stages = read_ints(x.at("stages"), "'stages'");
    check_stage_refs(x, in.stages, ns);
    m.model_inputs.push_back(std::move(in));
  }
  JsonNode mo = root.at("model_outputs");
  mo.expect_array("'model_outputs'");
  for (size_t i = 0; i < mo.size(); ++i) {
    JsonNode x = mo.at(i);
    ModelOutput out;
    read_tensor(x, out);
    out.stage = static_cast<int>(x.at("stage").as_int("'stage'"));
    check_stage_refs(x.at("stage"), {out.stage}, ns);
    m.model_outputs.push_back(std::move(out));
  }
  if (root.has("defaults")) {
    JsonNode d = root.at("defaults");
    if (d.has("schedule")) m.default_schedule = d.at("schedule").as_string("'schedule'");
    if (d.has("chunks")) m.default_chunks = static_cast<int>(d.at("chunks").as_int("'chunks'"));
  }
  if (root.has("cost") && root.at("cost").has("total_flops"))
    m.total_flops = root.at("cost").at("total_flops").as_int("'total_flops'");
  if (root.has("cost") && root.at("cost").has("model")) {
    JsonNode c = root.at("cost").at("model");
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
      for (size_t k = 0; k < edges.size(); ++k) {
        JsonNode e = edges.at(k);
        Manifest::CostModel::EdgeBytes b;
        b.from = static_cast<int>(e.at("from").as_int("'from'"));
        b.to = static_cast<int>(e.at("to").as_int("'to'"));
        if (b.from < 0 || b.to <= b.from || b.to >= static_cast<int>(m.stages.size()))
          throw e.error("not an edge from an earlier stage to a later one of the " + std::to_string(m.stages.size()) +
                        " stages");
        b.bytes = e.at("bytes_per_sample").as_number("'bytes_per_sample'");
        b.grad_bytes = e.at("grad_bytes_per_sample").as_number("'grad_bytes_per_sample'");
        if (!(b.bytes >= 0) || !(b.grad_bytes >= 0)) throw e.error("bytes must be 0 or more");
        cm.message_bytes.push_back(b);
      }
    }
    if (c.has("step_overhead_ms")) cm.step_overhead_ms = c.at("step_overhead_ms").as_number("'step_overhead_ms'");
    if (c.has("predicted_step_ms")) cm.predicted_step_ms = c.at("predicted_step_ms").as_number("'predicted_step_ms'");
    if (c.has("predicted_schedule")) cm.predicted_schedule = c.at("predicted_schedule").as_string("'predicted_schedule'");
    if (c.has("predicted_cores")) cm.predicted_cores = c.at("predicted_cores").as_number("'predicted_cores'");
    m.cost_model = cm;
  }
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
