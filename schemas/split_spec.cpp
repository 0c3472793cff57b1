#include "schemas/split_spec.h"

#include <cmath>

#include "schemas/error.h"
#include "schemas/json_reader.h"
#include "schemas/schedule_names.h"

namespace ppc::spec {

const char* tie_policy_name(TiePolicy p) { return p == TiePolicy::Transmit ? "transmit" : "replicate"; }

namespace {

TiePolicy parse_policy(const JsonNode& n) {
  return n.as_enum("tie policy", {"replicate", "transmit"}) == "transmit" ? TiePolicy::Transmit : TiePolicy::Replicate;
}

SplitPoint parse_split_point(const JsonNode& n) {
  n.expect_object("split point", {"module", "node", "value", "at"});
  SplitPoint sp;
  sp.pointer = n.pointer();
  int kinds = int(n.has("module")) + int(n.has("node")) + int(n.has("value"));
  if (kinds != 1) throw n.error("a split point needs exactly one of 'module', 'node' or 'value'");
  if (n.has("module")) {
    sp.kind = SplitPoint::Kind::Module;
    sp.name = n.at("module").as_string("'module'");
  } else if (n.has("node")) {
    sp.kind = SplitPoint::Kind::Node;
    sp.name = n.at("node").as_string("'node'");
  } else {
    sp.kind = SplitPoint::Kind::Value;
    sp.name = n.at("value").as_string("'value'");
  }
  if (n.has("at")) {
    if (sp.kind == SplitPoint::Kind::Value)
      throw n.at("at").error("'at' does not apply to a value split point (it always cuts after the producer)");
    sp.at_end = n.at("at").as_enum("'at'", {"begin", "end"}) == "end";
  }
  if (sp.name.empty() && sp.kind != SplitPoint::Kind::Module) throw n.error("empty name in split point");
  return sp;
}

// The top-level keys and the version: this ppc reads version 1 only.
void check_header(const JsonNode& root) {
  root.expect_object("split spec", {"$schema", "version", "split_points", "auto", "ties", "inputs", "defaults"});
  if (!root.has("version")) throw root.error("missing required key 'version' (use \"version\": 1)");
  int64_t version = root.at("version").as_int("'version'");
  if (version != 1)
    throw root.at("version").error("unsupported split spec version " + std::to_string(version) +
                                   " (this ppc reads version 1)");
}

std::vector<SplitPoint> parse_split_points(const JsonNode& sps) {
  sps.expect_array("'split_points'");
  if (sps.size() == 0) throw sps.error("'split_points' is empty (one split point makes two stages)");
  std::vector<SplitPoint> out;
  for (size_t i = 0; i < sps.size(); ++i) out.push_back(parse_split_point(sps.at(i)));
  return out;
}

// An optional number under 'auto' that must be positive (or, with zero_ok, 0).
std::optional<double> optional_positive(const JsonNode& a, const char* key, bool zero_ok) {
  if (!a.has(key)) return std::nullopt;
  double v = a.at(key).as_number(std::string("'auto.") + key + "'");
  if (!(v > 0 || (zero_ok && v == 0)) || !std::isfinite(v))
    throw a.at(key).error(std::string("'auto.") + key + "' must be " + (zero_ok ? "0 or more" : "positive"));
  return v;
}

// 'auto.micro_batch_size' and 'auto.optimizer_states': the memory model's inputs.
void parse_auto_memory(const JsonNode& a, AutoSplit& as) {
  if (a.has("micro_batch_size")) {
    int64_t m = a.at("micro_batch_size").as_int("'auto.micro_batch_size'");
    if (m < 1 || m > 1000000)
      throw a.at("micro_batch_size").error("'auto.micro_batch_size' must be between 1 and 1000000");
    as.micro_batch_size = static_cast<int>(m);
  }
  if (a.has("optimizer_states")) {
    int64_t m = a.at("optimizer_states").as_int("'auto.optimizer_states'");
    if (m < 0 || m > 8) throw a.at("optimizer_states").error("'auto.optimizer_states' must be between 0 and 8");
    as.optimizer_states = static_cast<int>(m);
  }
}

AutoSplit parse_auto(const JsonNode& a) {
  a.expect_object("'auto'", {"stages", "balance", "cut_at", "module_depth", "flops_per_second", "link_bytes_per_second",
                             "memory_cap_mib", "micro_batch_size", "optimizer_states"});
  AutoSplit as;
  as.pointer = a.pointer();
  int64_t n = a.at("stages").as_int("'auto.stages'");
  if (n < 1) throw a.at("stages").error("'auto.stages' must be at least 1");
  if (n > 100000) throw a.at("stages").error("'auto.stages' is unreasonably large");
  as.stages = static_cast<int>(n);
  if (a.has("balance")) as.balance = a.at("balance").as_enum("balance", {"time", "flops", "params", "uniform"});
  if (a.has("cut_at")) as.cut_at = a.at("cut_at").as_enum("cut_at", {"node", "module"});
  if (a.has("module_depth")) {
    int64_t d = a.at("module_depth").as_int("'auto.module_depth'");
    if (d < 1 || d > 64) throw a.at("module_depth").error("'auto.module_depth' must be between 1 and 64");
    if (as.cut_at != "module") throw a.at("module_depth").error("'auto.module_depth' needs \"cut_at\": \"module\"");
    as.module_depth = static_cast<int>(d);
  }
  as.flops_per_second = optional_positive(a, "flops_per_second", false);
  as.link_bytes_per_second = optional_positive(a, "link_bytes_per_second", true);
  as.memory_cap_mib = optional_positive(a, "memory_cap_mib", false);
  parse_auto_memory(a, as);
  return as;
}

// A group is a list of members, or an object with 'members' and a 'policy'.
TieGroupSpec parse_tie_group(const JsonNode& g) {
  TieGroupSpec tg;
  tg.pointer = g.pointer();
  JsonNode members = g;
  if (g.json().is_object()) {
    g.expect_object("tie group", {"members", "policy"});
    members = g.at("members");
    if (g.has("policy")) tg.policy = parse_policy(g.at("policy"));
  }
  members.expect_array("tie group members");
  if (members.size() < 1) throw members.error("a tie group needs at least one member");
  for (size_t k = 0; k < members.size(); ++k) {
    std::string m = members.at(k).as_string("tie group member");
    for (const auto& prev : tg.members)
      if (prev == m) throw members.at(k).error("'" + m + "' is listed twice in this tie group");
    tg.members.push_back(m);
  }
  return tg;
}

void parse_ties(const JsonNode& t, TieSpec& ties) {
  t.expect_object("'ties'", {"detect_folded", "policy", "groups"});
  if (t.has("detect_folded")) ties.detect_folded = t.at("detect_folded").as_bool("'detect_folded'");
  if (t.has("policy")) ties.policy = parse_policy(t.at("policy"));
  if (t.has("groups")) {
    JsonNode gs = t.at("groups");
    gs.expect_array("'ties.groups'");
    for (size_t i = 0; i < gs.size(); ++i) ties.groups.push_back(parse_tie_group(gs.at(i)));
  }
}

std::vector<DimSpec> parse_input_shape(const JsonNode& sh) {
  sh.expect_array("'shape'");
  std::vector<DimSpec> dims;
  for (size_t k = 0; k < sh.size(); ++k) {
    JsonNode d = sh.at(k);
    DimSpec ds;
    if (d.json().is_string()) {
      ds.symbol = d.as_string("dim");
      if (ds.symbol.empty()) throw d.error("a symbolic dim needs a name (e.g. \"batch\")");
    } else {
      int64_t v = d.as_int("a dim (an integer or a symbolic name)");
      if (v < 0) throw d.error("a dim must be non-negative");
      ds.value = v;
    }
    dims.push_back(ds);
  }
  return dims;
}

InputSpec parse_input(const JsonNode& e, const std::string& name) {
  e.expect_object("input entry", {"batch_dim", "replicate", "dtype", "shape"});
  InputSpec is;
  is.name = name;
  is.pointer = e.pointer();
  if (e.has("batch_dim")) {
    int64_t b = e.at("batch_dim").as_int("'batch_dim'");
    if (b < 0 || b > 64) throw e.at("batch_dim").error("'batch_dim' must be between 0 and 64");
    is.batch_dim = static_cast<int>(b);
  }
  if (e.has("replicate")) is.replicate = e.at("replicate").as_bool("'replicate'");
  if (e.has("dtype"))
    is.dtype = e.at("dtype").as_enum(
        "dtype", {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"});
  if (e.has("shape")) is.shape = parse_input_shape(e.at("shape"));
  if (is.replicate && is.batch_dim)
    throw e.error("an input is either split along 'batch_dim' or 'replicate'd, not both");
  return is;
}

// {"x": {"batch_dim": 0}, "mask": {"replicate": true}}: keys are model
// input names, checked against the model later by the driver.
std::vector<InputSpec> parse_inputs(const JsonNode& ins) {
  if (!ins.json().is_object()) throw ins.error("'inputs' must be an object keyed by model input name");
  std::vector<InputSpec> out;
  for (auto it = ins.json().begin(); it != ins.json().end(); ++it)
    out.push_back(parse_input(ins.at(it.key()), it.key()));
  return out;
}

void parse_defaults(const JsonNode& d, Defaults& defaults) {
  d.expect_object("'defaults'", {"schedule", "chunks", "dp"});
  if (d.has("schedule")) defaults.schedule = d.at("schedule").as_enum("schedule", schedule_names());
  if (d.has("chunks")) {
    int64_t c = d.at("chunks").as_int("'chunks'");
    if (c < 1 || c > 1000000) throw d.at("chunks").error("'chunks' must be between 1 and 1000000");
    defaults.chunks = static_cast<int>(c);
  }
  if (d.has("dp")) {
    int64_t n = d.at("dp").as_int("'dp'");
    if (n < 1 || n > 1000000) throw d.at("dp").error("'dp' must be between 1 and 1000000");
    defaults.dp = static_cast<int>(n);
  }
}

}  // namespace

SplitSpec parse_split_spec(const JsonDocument& doc) {
  SplitSpec s;
  s.file = doc.file();
  JsonNode root = root_node(doc);
  check_header(root);
  s.version = 1;

  if (root.has("split_points") && root.has("auto"))
    throw root.at("auto").error("give either 'split_points' or 'auto', not both");
  if (!root.has("split_points") && !root.has("auto")) throw root.error("the spec needs 'split_points' or 'auto'");
  if (root.has("split_points")) s.split_points = parse_split_points(root.at("split_points"));
  if (root.has("auto")) s.auto_split = parse_auto(root.at("auto"));
  if (root.has("ties")) parse_ties(root.at("ties"), s.ties);
  if (root.has("inputs")) s.inputs = parse_inputs(root.at("inputs"));
  if (root.has("defaults")) parse_defaults(root.at("defaults"), s.defaults);
  return s;
}

SplitSpec load_split_spec(const std::string& path, const std::string& display_name) {
  try {
    return parse_split_spec(JsonDocument::load(path, display_name));
  } catch (const JsonSyntaxError& e) { throw Error(e.what()); }
}

}  // namespace ppc::spec
