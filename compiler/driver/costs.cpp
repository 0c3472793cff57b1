// The cost pass of `ppc split`: each stage's cost, compute and memory under
// the cost model, and the manifest's cost_model section (what the split was
// balanced on, and with measured costs the predicted step and message costs).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "compiler/driver/passes.h"

namespace ppc::driver {

namespace {

// Six significant digits: manifests stay byte-identical across compilers.
double sig6(double x) {
  if (x == 0 || !std::isfinite(x)) return 0;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return std::strtod(buf, nullptr);
}

}  // namespace

void record_costs(manifest::Manifest& m, const analysis::AutoPartition& ap, bool is_auto,
                  const analysis::MeasuredCosts* measured) {
  const double forward_fraction = measured ? measured->forward_fraction : 1.0 / 3.0;
  const auto& e = ap.eval;
  for (size_t k = 0; k < m.stages.size() && k < e.stage_costs.size(); ++k) {
    m.stages[k].model_cost = sig6(e.stage_costs[k]);
    m.stages[k].model_compute = sig6(e.stage_compute[k]);
    m.stages[k].model_memory = sig6(e.stage_memory[k]);
  }
  manifest::Manifest::CostModel cm;
  cm.balance = ap.model.balance;
  cm.unit = ap.model.unit;
  cm.partition = is_auto ? "auto" : "split_points";
  cm.bottleneck = sig6(e.bottleneck);
  cm.imbalance = sig6(e.imbalance);
  cm.lower_bound = sig6(analysis::lower_bound(ap.model, static_cast<int>(e.stage_costs.size())));
  cm.forward_fraction = sig6(forward_fraction);
  if (measured && ap.model.unit == "ms") {
    const MessageCost msg = measured->message();
    cm.message_ms = sig6(msg.latency_ms);
    if (msg.rank_ms > 0) cm.message_cpu_ms = sig6(msg.rank_ms);
    if (msg.rank_bytes_per_second > 0) cm.message_cpu_bytes_per_second = sig6(msg.rank_bytes_per_second);
    if (msg.bytes_per_second > 0 && !ap.starts.empty()) {
      cm.message_bytes_per_second = sig6(msg.bytes_per_second);
      std::set<std::pair<int, int>> in_manifest;
      for (const auto& st : m.stages)
        for (const auto& in : st.inputs)
          if (in.from_stage >= 0) in_manifest.insert({in.from_stage, st.index});
      for (const auto& e : analysis::stage_edges(ap.model, ap.starts))
        if (in_manifest.count({e.producer, e.consumer}))
          cm.message_bytes.push_back({e.producer, e.consumer, sig6(e.bytes), sig6(e.grad_bytes)});
    }
    if (measured->overhead_ms() > 0) cm.step_overhead_ms = sig6(measured->overhead_ms());
  }
  if (ap.predicted_step_ms > 0) {
    cm.predicted_step_ms = sig6(ap.predicted_step_ms);
    cm.predicted_schedule = ap.predicted_schedule;
    const double cores = measured ? measured->profile.shared_cores() : 0.0;
    if (cores > 0 && cores < static_cast<double>(m.stages.size())) cm.predicted_cores = sig6(cores);
  }
  m.cost_model = cm;
}

}  // namespace ppc::driver
