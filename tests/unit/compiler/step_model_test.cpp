// compiler/analysis/step_model: the simulated training step of a split
// (predict_step_ms) and the search for the fastest split (auto_partition_by_step).
#include <algorithm>
#include <random>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/cost_model.h"
#include "compiler/analysis/step_model.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;

TEST(StepModel, PredictsOneFOneBFromStageCostsAndLatency) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.flops_per_second = 3e6;  // 1 ms per node and sample
  o.link_bytes_per_second = 0;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  StepOptions so;
  so.chunks = 4;
  so.micro_batch_size = 1;
  // [a b | c d]: 2 ms per stage, F 2/3 and B 4/3. 1F1B on 2 ranks without
  // latency: (M + N - 1) x (F + B) = 5 x 2.
  std::string used;
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {2}, so, &used), 10.0);
  EXPECT_EQ(used, "1f1b");
  // [a | b c d] is bound by its 3-ms stage: stage 0's first F (1/3), 4 x 3,
  // stage 0's last B (2/3).
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {1}, so), 1.0 / 3 + 12 + 2.0 / 3);
  // Latency on the pipeline's critical path: fill and drain pay it.
  so.message.latency_ms = 0.5;
  EXPECT_GT(predict_step_ms(m, {2}, so), 10.0 + 2 * 0.5 - 1e-9);
  // The tensors crossing a cut travel as one message (pprun packs them):
  // [a b | c d] sends h1 and h0 (read by d), which costs what h1 alone does,
  // and less than a message of twice the latency.
  Graph one = parse_graph(std::string(kCostChain).replace(std::string(kCostChain).find("h2 h0 ->"), 8, "h2 h2 ->"));
  CostModel m1 = build_cost_model(one, consts(one), o, 2);
  StepOptions twice = so;
  twice.message.latency_ms = 1.0;
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {2}, so), predict_step_ms(m1, {2}, so));
  EXPECT_LT(predict_step_ms(m, {2}, so), predict_step_ms(m1, {2}, twice));
  // The step's time outside the pipeline (batch loading, optimizer) adds to
  // every split alike.
  StepOptions loaded = so;
  loaded.overhead_ms = 2.5;
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {2}, loaded), predict_step_ms(m, {2}, so) + 2.5);
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {1}, loaded), predict_step_ms(m, {1}, so) + 2.5);
  // Data parallel: each stage's gradients summed across 4 replicas after its
  // last backward, as a ring (6 messages of a quarter of the bytes) at the
  // messages' 1000 bytes per ms. [a b | c d]: stage 0's last B ends the
  // pipeline, so its 3000 bytes add 6 x 0.75 ms to the step; stage 1's
  // 6000 bytes (6 x 1.5 ms) start at its last B, at least a B (4/3 ms)
  // before the pipeline ends, and outlast it.
  CostModel mp = m;
  mp.param_bytes.assign(mp.items.size(), 0.0);
  StepOptions dp;
  dp.chunks = 4;
  dp.micro_batch_size = 1;
  dp.message.bytes_per_second = 1e6;
  const double pipeline = predict_step_ms(mp, {2}, dp);
  dp.replicas = 4;
  EXPECT_DOUBLE_EQ(predict_step_ms(mp, {2}, dp), pipeline);  // no parameters: nothing to sum
  mp.param_bytes[0] = 3000;
  EXPECT_NEAR(predict_step_ms(mp, {2}, dp), pipeline + 4.5, 1e-9);
  mp.param_bytes[0] = 0;
  mp.param_bytes[3] = 6000;
  const double late = predict_step_ms(mp, {2}, dp);
  EXPECT_GT(late, pipeline);
  EXPECT_LE(late, pipeline - 4.0 / 3 + 9.0 + 1e-9);
  dp.replicas = 1;
  EXPECT_DOUBLE_EQ(predict_step_ms(mp, {2}, dp), pipeline);
  // A schedule needing two stages per rank is simulated as 1F1B.
  so.schedule = "zb-v";
  predict_step_ms(m, {2}, so, &used);
  EXPECT_EQ(used, "1f1b");
}

TEST(StepModel, AMessagePaysItsBytesAtTheProfiledRate) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.flops_per_second = 3e6;
  o.link_bytes_per_second = 0;
  CostModel m = build_cost_model(g, consts(g), o, 3);
  // [a b | c | d]: h1 goes 0 -> 1, h0 (read by b and d) 0 -> 2, h2 1 -> 2;
  // 400 bytes per sample each, float: their gradients as many.
  std::vector<runtime::schedule::StageEdge> edges = stage_edges(m, {2, 3});
  ASSERT_EQ(edges.size(), 3u);
  auto bytes_of = [&](int from, int to) {
    for (const auto& e : edges)
      if (e.producer == from && e.consumer == to) return std::pair{e.bytes, e.grad_bytes};
    return std::pair{-1.0, -1.0};
  };
  EXPECT_EQ(bytes_of(0, 1), std::pair(400.0, 400.0));
  EXPECT_EQ(bytes_of(0, 2), std::pair(400.0, 400.0));
  EXPECT_EQ(bytes_of(1, 2), std::pair(400.0, 400.0));
  // With one stage pair, every message carries the same bytes: at 1.6 MB/s
  // and 2 samples per micro-batch, [a b | c d]'s 800 bytes per sample take
  // 1 ms more per message, as a message latency 1 ms longer does.
  CostModel m2 = build_cost_model(g, consts(g), o, 2);
  StepOptions so;
  so.chunks = 4;
  so.micro_batch_size = 2;
  so.message.latency_ms = 0.25;
  StepOptions slower = so;
  slower.message.latency_ms = 1.25;
  so.message.bytes_per_second = 1.6e6;
  EXPECT_NEAR(predict_step_ms(m2, {2}, so), predict_step_ms(m2, {2}, slower), 1e-9);
  // [a | b c d] sends only h0: 0.5 ms more per message.
  EXPECT_NEAR(predict_step_ms(m2, {1}, so),
              predict_step_ms(m2, {1},
                              [&] {
                                StepOptions s = slower;
                                s.message.latency_ms = 0.75;
                                return s;
                              }()),
              1e-9);
  // The time a message takes its two ranks lengthens every F and B that sends
  // or receives one: GPipe with one micro-batch runs F0 F1 B1 B0 in a row.
  StepOptions one = so;
  one.schedule = "gpipe";
  one.chunks = 1;
  StepOptions busy = one;
  busy.message.rank_ms = 0.5;
  EXPECT_NEAR(predict_step_ms(m2, {2}, busy), predict_step_ms(m2, {2}, one) + 4 * 0.5, 1e-9);
}

TEST(StepModel, APricedMessageIsChargedOnceNotAlsoToItsStage) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.flops_per_second = 3e6;       // 1 ms per node and sample
  o.link_bytes_per_second = 8e5;  // 400 bytes there and back: 1 ms, charged to the receiving stage
  CostModel charged = build_cost_model(g, consts(g), o, 2);
  o.link_bytes_per_second = 0;
  CostModel bare = build_cost_model(g, consts(g), o, 2);
  // The objective charges [a b | c d]'s stage 1 for h1 and the skip h0.
  EXPECT_EQ(evaluate(charged, {2}).stage_costs, (std::vector<double>{2, 4}));
  EXPECT_EQ(evaluate(charged, {2}).stage_compute, (std::vector<double>{2, 2}));
  // Unpriced messages: the stages run their whole cost, [2 | 4], bound by
  // stage 1: stage 0's first F, 4 x 4, stage 0's last B.
  StepOptions so;
  so.chunks = 4;
  so.micro_batch_size = 1;
  EXPECT_DOUBLE_EQ(predict_step_ms(charged, {2}, so), 2.0 / 3 + 16 + 4.0 / 3);
  // Priced (latency, bytes in flight, rank time), the simulator charges each
  // message, and the stages run their compute alone: whatever the model's
  // link cost, the same step.
  so.message.latency_ms = 0.1;
  so.message.bytes_per_second = 8e6;
  so.message.rank_ms = 0.05;
  EXPECT_NEAR(predict_step_ms(charged, {2}, so), predict_step_ms(bare, {2}, so), 1e-9);
  EXPECT_LT(predict_step_ms(charged, {2}, so), 12.0);
  // The objective's optimum is [a b c | d] (3 | 1 + 2); messages this cheap
  // make the compute-balanced [a b | c d] faster, and the search finds the
  // fastest split (brute force through the simulator).
  o.link_bytes_per_second = 8e5;
  EXPECT_EQ(positions(auto_partition(g, consts(g), 2, o).cuts), (Ints{3}));
  double fastest = 1e300;
  for (int c = 1; c < 4; ++c) fastest = std::min(fastest, predict_step_ms(charged, {c}, so));
  AutoPartition by_step = auto_partition_by_step(g, consts(g), 2, o, so);
  EXPECT_EQ(by_step.starts, (Ints{2}));
  EXPECT_DOUBLE_EQ(by_step.predicted_step_ms, fastest);
}

TEST(StepModel, RanksSharingCoresShareOutTheirWork) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.flops_per_second = 3e6;  // 1 ms per node and sample
  o.link_bytes_per_second = 0;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  StepOptions so;
  so.chunks = 4;
  so.micro_batch_size = 1;
  // [a b | c d], 2 ms per stage and micro-batch: 1F1B's (4 + 1) x 2 with a
  // core per rank, the same with two.
  const double own = predict_step_ms(m, {2}, so);
  EXPECT_NEAR(own, 10, 1e-9);
  so.cores = 2;
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {2}, so), own);
  // On one core every millisecond of work runs in turn, and 1F1B on two
  // stages never leaves both ranks waiting: 4 micro-batches x 4 ms.
  so.cores = 1;
  EXPECT_NEAR(predict_step_ms(m, {2}, so), 16, 1e-9);
  // Three stages on two cores, a message's latency and rank time priced: the
  // search finds the fastest split under sharing (brute force over every
  // pair of cuts through the simulator).
  so.cores = 2;
  so.message.latency_ms = 0.2;
  so.message.rank_ms = 0.3;
  CostModel m3 = build_cost_model(g, consts(g), o, 3);
  double fastest = 1e300;
  for (int a = 1; a < 4; ++a)
    for (int b = a + 1; b < 4; ++b) fastest = std::min(fastest, predict_step_ms(m3, {a, b}, so));
  AutoPartition by_step = auto_partition_by_step(g, consts(g), 3, o, so);
  EXPECT_DOUBLE_EQ(by_step.predicted_step_ms, fastest);
  // Sharing never beats a core per rank, nor the total work over the cores.
  so.cores = 0;
  EXPECT_LE(predict_step_ms(m3, by_step.starts, so), fastest + 1e-9);
  // Per micro-batch: 4 ms of compute, and F and B each pay the ends of at
  // least 1 + 2 + 1 peers on a 3-stage chain.
  EXPECT_GE(fastest + 1e-9, 4 * (4.0 + 8 * 0.3) / 2);
}

// A chain of n Relu nodes with random compute and activations of 4 to 4000
// floats per sample.
Graph random_width_chain(std::mt19937& rng, int n) {
  std::string text = "input x:float32[batch,64]\n";
  std::string prev = "x";
  for (int i = 0; i < n; ++i) {
    const int width = std::vector<int>{4, 40, 400, 4000}[rng() % 4];
    const int flops = 500 + static_cast<int>(rng() % 1500);
    const std::string out = i + 1 == n ? "y" : "h" + std::to_string(i);
    text += "node n" + std::to_string(i) + " Relu flops=" + std::to_string(flops) + " : " + prev + " -> " + out +
            ":float32[batch," + std::to_string(width) + "]\n";
    prev = out;
  }
  return parse_graph(text + "output y\n");
}

// 3 stages on 2 cores; each end of a message spends rank time on its bytes
// at 1/4 of the link's rate.
StepOptions shared_bytes_step() {
  StepOptions so;
  so.chunks = 4;
  so.micro_batch_size = 1;
  so.cores = 2;
  so.message.latency_ms = 0.05;
  so.message.bytes_per_second = 4e6;
  so.message.rank_ms = 0.2;
  so.message.rank_bytes_per_second = 1e6;
  return so;
}

// Per chain of 12 random 12-node ones (the same each call): the step the
// search predicts over the fastest split's (brute force over every pair of
// cuts through the simulator).
std::vector<double> search_over_fastest(const StepOptions& so) {
  std::mt19937 rng(7);
  CostModelOptions o;
  o.flops_per_second = 3e6;
  o.link_bytes_per_second = 4e6;
  std::vector<double> out;
  for (int trial = 0; trial < 12; ++trial) {
    const int n = 12;
    Graph g = random_width_chain(rng, n);
    CostModel m = build_cost_model(g, consts(g), o, 3);
    double fastest = 1e300;
    for (int a = 1; a < n; ++a)
      for (int b = a + 1; b < n; ++b) fastest = std::min(fastest, predict_step_ms(m, {a, b}, so));
    out.push_back(auto_partition_by_step(g, consts(g), 3, o, so).predicted_step_ms / fastest);
  }
  return out;
}

TEST(StepModel, FewSplitsAreAllSimulated) {
  // 12-node chains, 3 stages: 55 splits, every one through the simulator;
  // the search returns the fastest.
  StepOptions so = shared_bytes_step();
  so.min_gain = 0;
  const std::vector<double> ratio = search_over_fastest(so);
  for (size_t k = 0; k < ratio.size(); ++k) EXPECT_DOUBLE_EQ(ratio[k], 1.0) << "chain " << k;
}

TEST(StepModel, WhereBytesCostTheEndsTheSearchWeighsThemToo) {
  // The same chains without simulating every split: the candidates charge
  // a message's bytes at both ends too, and the search lands within 5% of
  // the fastest split on each (at worst 3.2%, on chain 10). Charging the
  // bytes in flight only, it was 25% off on chain 5 (a smaller message at a
  // less balanced cut).
  StepOptions so = shared_bytes_step();
  so.enumerate_splits = 0;
  const std::vector<double> ratio = search_over_fastest(so);
  for (size_t k = 0; k < ratio.size(); ++k) EXPECT_LE(ratio[k], 1.05) << "chain " << k;
}

TEST(StepModel, LatencyBoundPipelinesPickTheFastestCandidate) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.flops_per_second = 3e6;
  o.link_bytes_per_second = 1e12;  // bytes free, messages not
  StepOptions so;
  so.chunks = 4;
  so.micro_batch_size = 1;
  // Without latency: the min-bottleneck split, predicted.
  AutoPartition plain = auto_partition_by_step(g, consts(g), 2, o, so);
  EXPECT_EQ(plain.starts, (Ints{2}));
  EXPECT_NEAR(plain.predicted_step_ms, 10.0, 1e-4);
  // A message's latency of 3 stage-milliseconds: every 2-stage split, brute
  // force through the simulator; the search must find the fastest.
  so.message.latency_ms = 3.0;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  double fastest = 1e300;
  for (int c = 1; c < 4; ++c) fastest = std::min(fastest, predict_step_ms(m, {c}, so));
  AutoPartition by_step = auto_partition_by_step(g, consts(g), 2, o, so);
  EXPECT_DOUBLE_EQ(by_step.predicted_step_ms, fastest);
  EXPECT_LT(by_step.predicted_step_ms, predict_step_ms(m, plain.starts, so));  // here it moved the cut
  // The reported costs are the uncharged model's: [a | b c d] is 1 and 3 ms of compute, plus h0's 400
  // bytes there and back at 1e12 bytes/s, and none of the messages' 3-ms latency.
  EXPECT_EQ(by_step.starts, (Ints{1}));
  ASSERT_EQ(by_step.eval.stage_costs.size(), 2u);
  EXPECT_DOUBLE_EQ(by_step.eval.stage_costs[0], 1.0);
  EXPECT_NEAR(by_step.eval.stage_costs[1], 3.0 + 800 / 1e12 * 1e3, 1e-12);
  // A gain below min_gain does not move it off the min-bottleneck split.
  const double gain = 1 - fastest / predict_step_ms(m, plain.starts, so);
  ASSERT_GT(gain, 0.01);
  so.min_gain = gain * 1.01;
  AutoPartition balanced = auto_partition_by_step(g, consts(g), 2, o, so);
  EXPECT_EQ(balanced.starts, plain.starts);
  EXPECT_DOUBLE_EQ(balanced.predicted_step_ms, predict_step_ms(m, plain.starts, so));
}

}  // namespace
}  // namespace ppc::analysis
