// What `ppc split` prints: the per-stage summary after a split, the tie
// notes, and the JSON of `--emit balance`.
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>

#include "compiler/driver/passes.h"

namespace ppc::driver {

namespace {

std::string human_bytes(int64_t b) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  if (b >= (1 << 20))
    os << static_cast<double>(b) / (1 << 20) << " MiB";
  else if (b >= 1024)
    os << static_cast<double>(b) / 1024 << " KiB";
  else
    os << b << " B";
  return os.str();
}

std::string human_flops(double f) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  if (f >= 1e9)
    os << f / 1e9 << " GFLOP";
  else if (f >= 1e6)
    os << f / 1e6 << " MFLOP";
  else if (f >= 1e3)
    os << f / 1e3 << " kFLOP";
  else
    os << f << " FLOP";
  return os.str();
}

std::string fixed(double x, int digits) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(digits);
  os << x;
  return os.str();
}

// Bytes a stage sends per sample: its outputs to other stages, batch dim
// excluded. `known` turns false when a shape or dtype is not known.
int64_t bytes_sent_per_sample(const manifest::Stage& s, bool& known) {
  int64_t act_out = 0;
  known = true;
  for (const auto& o : s.outputs) {
    if (o.to_stages.empty()) continue;
    int64_t n = static_cast<int64_t>(o.to_stages.size());
    auto dt = ir::dtype_from_name(o.dtype);
    if (!o.shape || !dt) {
      known = false;
      continue;
    }
    for (size_t d = 0; d < o.shape->size(); ++d) {
      if (o.batch_dim && static_cast<int>(d) == *o.batch_dim) continue;
      if ((*o.shape)[d].value)
        n *= *(*o.shape)[d].value;
      else
        known = false;
    }
    act_out += n * ir::dtype_size(*dt);
  }
  return act_out;
}

void print_stage_line(const manifest::Stage& s, const manifest::Manifest::CostModel& cm, double total_cost,
                      std::ostream& out) {
  bool act_known = true;
  const int64_t act_out = bytes_sent_per_sample(s, act_known);
  double c = s.model_cost.value_or(0);
  out << "  stage " << s.index << "  " << s.artifact << "  nodes " << s.node_count << "  cost "
      << fixed(c, cm.unit == "ms" ? 4 : 0) << " " << cm.unit << " ("
      << (total_cost > 0 ? static_cast<int>(100.0 * c / total_cost + 0.5) : 0) << "%)  "
      << human_flops(static_cast<double>(s.flops)) << "  params " << s.params.size() << " ("
      << human_bytes(s.param_bytes) << ")  memory " << human_bytes(static_cast<int64_t>(s.model_memory.value_or(0)))
      << "  in " << s.inputs.size() << "  out " << s.outputs.size();
  if (!act_known && act_out == 0)
    out << " (bytes sent unknown: shapes unknown)";
  else if (act_out > 0 || !act_known)
    out << " (" << (act_known ? "" : ">= ") << human_bytes(act_out) << "/sample sent)";
  out << "\n";
}

void print_predicted_step(const manifest::Manifest::CostModel& cm, std::optional<int> dp, std::ostream& out) {
  out << "  predicted step " << fixed(*cm.predicted_step_ms, 2) << " ms (" << *cm.predicted_schedule
      << ", one stage per rank, the profile's micro-batches; message latency " << fixed(cm.message_ms.value_or(0), 3)
      << " ms" << (cm.message_cpu_ms ? " + " + fixed(*cm.message_cpu_ms, 3) + " ms at each end" : std::string())
      << (cm.message_cpu_bytes_per_second
              ? " (and its bytes at " + fixed(*cm.message_cpu_bytes_per_second / 1e9, 2) + " GB/s there)"
              : std::string())
      << (cm.message_bytes_per_second ? " + bytes at " + fixed(*cm.message_bytes_per_second / 1e9, 2) + " GB/s"
                                      : std::string())
      << ", per-step overhead " << fixed(cm.step_overhead_ms.value_or(0), 2) << " ms"
      << (cm.predicted_cores ? "; the ranks share " + fixed(*cm.predicted_cores, 2) + " cores" : std::string())
      << (dp && *dp > 1 ? "; " + std::to_string(*dp) +
                              " data-parallel replicas, each stage's gradient all-reduce after "
                              "its last backward"
                        : std::string())
      << ")\n";
}

}  // namespace

void print_summary(const manifest::Manifest& m, const std::string& out_dir, std::ostream& out) {
  out << "split " << m.source.file << " into " << m.stages.size() << " stages -> " << out_dir << "/\n";
  const auto& cm = *m.cost_model;
  out << "  cost model: " << cm.balance << " ("
      << (cm.unit == "ms" ? "ms per sample, compute + communication received" : cm.unit) << "), "
      << (cm.partition == "auto" ? "optimal split" : "spec's split points") << "\n";
  double total_cost = 0;
  for (const auto& s : m.stages) total_cost += s.model_cost.value_or(0);
  for (const auto& s : m.stages) print_stage_line(s, cm, total_cost, out);
  out << "  imbalance (max/mean cost) " << fixed(cm.imbalance, 3) << ", bottleneck " << fixed(cm.bottleneck, 4) << " "
      << cm.unit << " (lower bound " << fixed(cm.lower_bound, 4) << "), " << m.edges.size() << " cross-stage edges, "
      << m.ties.size() << " tie groups\n";
  if (cm.predicted_step_ms) print_predicted_step(cm, m.default_dp, out);
}

std::vector<std::string> tie_notes(const manifest::Manifest& m) {
  std::vector<std::string> notes;
  for (const auto& t : m.ties) {
    std::string line =
        "tie '" + t.name + "' (" + t.policy + ", owner stage " + std::to_string(t.owner) + ", " + t.detected_by + "):";
    for (size_t i = 0; i < t.members.size(); ++i) {
      line += (i ? ";" : "") + std::string(" ") + t.members[i].param;
      if (t.members[i].relation != "identity") line += " (" + t.members[i].relation + ")";
      line += " in stage";
      for (size_t k = 0; k < t.members[i].stages.size(); ++k)
        line += (k ? "," : " ") + std::to_string(t.members[i].stages[k]);
    }
    notes.push_back(line);
  }

  return notes;
}

std::string balance_report(const ir::Graph& g, const analysis::AutoPartition& ap, int stages) {
  nlohmann::ordered_json j;
  j["balance"] = ap.model.balance;
  j["unit"] = ap.model.unit;
  j["stages"] = stages;
  j["nodes"] = ap.model.items.size();
  j["lower_bound"] = analysis::lower_bound(ap.model, stages);
  j["strategies"] = nlohmann::ordered_json::array();
  auto add = [&](const std::string& name, const std::vector<int>& starts) {
    nlohmann::ordered_json s;
    s["name"] = name;
    if (static_cast<int>(starts.size()) != stages - 1) {
      s["error"] = "no such split with the allowed cuts";
      j["strategies"].push_back(s);
      return;
    }
    analysis::Evaluation e = analysis::evaluate(ap.model, starts);
    s["cuts"] = nlohmann::ordered_json::array();
    for (int b : starts) s["cuts"].push_back(g.nodes[ap.model.items[b]].name);
    s["stage_costs"] = e.stage_costs;
    s["stage_compute"] = e.stage_compute;
    s["stage_memory"] = e.stage_memory;
    s["bottleneck"] = e.bottleneck;
    s["imbalance"] = e.imbalance;
    j["strategies"].push_back(s);
  };
  add("auto", ap.starts);
  add("equal_params", analysis::equal_params_starts(ap.model, stages));
  add("uniform_layers", analysis::uniform_layers_starts(ap.model, stages));
  return j.dump(2) + "\n";
}

}  // namespace ppc::driver
