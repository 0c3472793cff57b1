// What a message costs in a running pipeline, calibrated from a measured run:
// a pure function of the run's measured numbers and its schedule, shared by
// pprun (--profile writes its result) and testable without ranks.
#pragma once

#include <vector>

#include "runtime/schedule/action.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/stage_graph.h"

namespace ppc::runtime::schedule {

/// A measured run, as the calibration reads it. Times in ms.
struct RunMeasurements {
  /// Per stage, per micro-batch: the stages' work (CPU time where the ranks
  /// time-shared the cores, see `cores`).
  std::vector<StageCost> stage_ms;
  /// The cores the ranks shared (SimOptions::cores); 0: a core per rank.
  double cores = 0;
  /// The idle link: one small message's one-way time, and the bandwidth of
  /// a large one (bytes per second; 0: unknown, bytes take no time).
  double link_latency_ms = 0;
  double link_bytes_per_second = 0;
  /// Median step of the measured steps, and the median of their time
  /// outside the pipeline (loading the batch, the optimizer step).
  double median_step_ms = 0;
  double median_overhead_ms = 0;
};

struct Calibration {
  MessageCost message;
  /// What the simulator is fitted to: the median step less the time
  /// outside the pipeline.
  double pipeline_step_ms = 0;
  /// The simulator's step with messages costing only their time in flight.
  double simulated_step_ms = 0;
  /// The factor found: rank time per message = k x its idle one-way time.
  double k = 0;
};

/// In flight a message costs the idle link's latency and its bytes at the
/// link's bandwidth. The rest (waking the receiver, the header, copying the
/// bytes in and out of the transport, communication threads competing with
/// compute for cores) is rank time at both ends: k times the idle one-way
/// time per message, plus its bytes at bandwidth / k, with the k at which the
/// simulator, fed the run's stage work on `cores`, reproduces its median step
/// less the time outside the pipeline. k = 0 where compute and the messages
/// in flight alone explain it. `plan` is the run's lowered schedule, `graph`
/// its stage edges with their measured message bytes.
Calibration calibrate_message_cost(const Schedule& plan, int num_stages, const StageGraph& graph,
                                   const RunMeasurements& run);

}  // namespace ppc::runtime::schedule
