// calibrate_message_cost: the rank time per message that makes the simulator
// reproduce a measured step, found without ranks.
#include "runtime/schedule/calibration.h"

#include <gtest/gtest.h>

#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"

namespace ppc::runtime::schedule {
namespace {

RunMeasurements gpipe_run(double step_ms, double overhead_ms) {
  RunMeasurements r;
  r.stage_ms = {StageCost{1, 1, 1, 1}, StageCost{1, 1, 1, 1}};
  r.link_latency_ms = 0.5;
  r.median_step_ms = step_ms;
  r.median_overhead_ms = overhead_ms;
  return r;
}

TEST(Calibration, FindsTheRankTimeThatExplainsTheStep) {
  // GPipe on 2 ranks, 1 micro-batch, F = B = 1, 0.5 ms in flight: the
  // pipeline takes 4 + 2 x 0.5 = 5 ms with free messages. Each of the four
  // compute actions sends or receives one message, so 0.25 ms of rank time
  // per message at each end makes it 4 x 1.25 + 2 x 0.5 = 6 ms. Measured: a
  // step of 7 ms, 1 of it outside the pipeline.
  const Schedule plan = add_communication(gpipe(2, 1), 2);
  const Calibration c = calibrate_message_cost(plan, 2, StageGraph::chain(2), gpipe_run(7, 1));
  EXPECT_DOUBLE_EQ(c.pipeline_step_ms, 6);
  EXPECT_DOUBLE_EQ(c.simulated_step_ms, 5);
  EXPECT_NEAR(c.k, 0.5, 1e-9);
  EXPECT_NEAR(c.message.rank_ms, 0.25, 1e-9);
  EXPECT_DOUBLE_EQ(c.message.latency_ms, 0.5);
  EXPECT_EQ(c.message.bytes_per_second, 0);  // no bandwidth measured: bytes take no time
  EXPECT_EQ(c.message.rank_bytes_per_second, 0);
}

TEST(Calibration, NoRankTimeWhenComputeAndFlightExplainTheStep) {
  const Schedule plan = add_communication(gpipe(2, 1), 2);
  const Calibration c = calibrate_message_cost(plan, 2, StageGraph::chain(2), gpipe_run(5.5, 1));
  EXPECT_DOUBLE_EQ(c.pipeline_step_ms, 4.5);
  EXPECT_DOUBLE_EQ(c.simulated_step_ms, 5);
  EXPECT_EQ(c.k, 0);
  EXPECT_EQ(c.message.rank_ms, 0);
  EXPECT_EQ(c.message.rank_bytes_per_second, 0);
}

TEST(Calibration, RecoversTheFactorOfARunWithBytesAndSharedCores) {
  // 1F1B on 2 ranks sharing 1.5 cores, 4 micro-batches, messages of 4000
  // bytes each way at 2 MB/s (2000 bytes per ms): a run whose messages cost
  // k = 3 (1.5 ms of rank time each, and their bytes at 2000 / 3 per ms),
  // then calibrated from its step alone.
  const Schedule plan = add_communication(one_f_one_b(2, 4), 2);
  const StageGraph graph = StageGraph::from_edges(2, {{0, 1, 4000, 4000}});
  RunMeasurements r;
  r.stage_ms = {StageCost{2, 3, 1, 1}, StageCost{1, 2, 1, 1}};
  r.cores = 1.5;
  r.link_latency_ms = 0.5;
  r.link_bytes_per_second = 2e6;
  SimOptions truth;
  truth.costs = r.stage_ms;
  truth.cores = r.cores;
  truth.comm = 0.5;
  truth.bytes_per_ms = 2000;
  truth.message_cpu = 1.5;
  truth.message_cpu_bytes_per_ms = 2000.0 / 3;
  r.median_overhead_ms = 2;
  r.median_step_ms = simulate(plan, 2, graph, truth).makespan + r.median_overhead_ms;
  const Calibration c = calibrate_message_cost(plan, 2, graph, r);
  EXPECT_NEAR(c.k, 3, 1e-6);
  EXPECT_NEAR(c.message.rank_ms, 1.5, 1e-6);
  EXPECT_NEAR(c.message.rank_bytes_per_second, 2e6 / 3, 1);
  EXPECT_EQ(c.message.bytes_per_second, 2e6);
  EXPECT_LT(c.simulated_step_ms, c.pipeline_step_ms);
}

}  // namespace
}  // namespace ppc::runtime::schedule
