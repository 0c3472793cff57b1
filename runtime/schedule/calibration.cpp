#include "runtime/schedule/calibration.h"

namespace ppc::runtime::schedule {

Calibration calibrate_message_cost(const Schedule& plan, int num_stages, const StageGraph& graph,
                                   const RunMeasurements& run) {
  const double measured = run.median_step_ms - run.median_overhead_ms;
  const double bytes_per_ms = run.link_bytes_per_second > 0 ? run.link_bytes_per_second / 1000.0 : 0.0;
  const double in_flight = run.link_latency_ms > 0 ? run.link_latency_ms : 0.0;
  // Messages costing k x their idle one-way time at each end's rank, and
  // their bytes at the link's bandwidth / k.
  auto makespan = [&](double k) {
    SimOptions so;
    so.costs = run.stage_ms;
    so.comm = in_flight;
    so.bytes_per_ms = bytes_per_ms;
    so.message_cpu = k * in_flight;
    so.message_cpu_bytes_per_ms = k > 0 ? bytes_per_ms / k : 0.0;
    so.cores = run.cores;
    return simulate(plan, num_stages, graph, so).makespan;
  };
  Calibration c;
  c.pipeline_step_ms = measured;
  c.simulated_step_ms = makespan(0);
  // Bisection on k: the makespan grows with the rank time of messages.
  double lo = 0, hi = 0;
  if (c.simulated_step_ms < measured) {
    hi = 1;
    while (makespan(hi) < measured && hi < 1e9) lo = hi, hi *= 2;
    for (int it = 0; it < 50; ++it) {
      double mid = (lo + hi) / 2;
      (makespan(mid) < measured ? lo : hi) = mid;
    }
  }
  c.k = hi;
  c.message.latency_ms = in_flight;
  // The link's rate itself, not bytes_per_ms * 1000: that round trip can
  // differ in the last bit, and the two are meant to be one number.
  c.message.bytes_per_second = run.link_bytes_per_second;
  c.message.rank_ms = hi * in_flight;
  c.message.rank_bytes_per_second = hi > 0 ? run.link_bytes_per_second / hi : 0.0;
  return c;
}

}  // namespace ppc::runtime::schedule
