// compiler/analysis/cost_model: compute, communication and memory per node
// under each balance; measured times; cuts at module depth; the baselines.
#include <string>

#include <gtest/gtest.h>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/cost_model.h"
#include "schemas/error.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;
using profile::StageTimes;

TEST(CostModel, ComputeUnderEachBalance) {
  Graph g = parse_graph(R"(
input x:float32[4]
param w:float32[4,4]
param b:float32[4]
node c0 Neg flops=1000 : w -> nw:float32[4,4]
node a MatMul flops=32 : x w -> h:float32[4]
node b2 Add flops=4 : h b -> h2:float32[4]
node c MatMul flops=32 : h2 w -> h3:float32[4]
node d Add flops=-5 : h3 nw -> y:float32[4]
output y
)");
  auto c = consts(g);
  // The placeable nodes a, b2, c, d (the constant c0 is cloned where needed).
  auto compute = [&](const std::string& balance) {
    CostModelOptions o;
    o.balance = balance;
    o.flops_per_second = 3e3;  // forward + backward of 1 FLOP = 1 ms
    o.link_bytes_per_second = 0;
    return build_cost_model(g, c, o, 2).problem.compute;
  };
  EXPECT_EQ(compute("flops"), (std::vector<double>{32, 4, 32, 0}));  // negative clamps to 0
  EXPECT_EQ(compute("uniform"), (std::vector<double>{1, 1, 1, 1}));
  // Params: bytes to the first node that reads them (w: 64 bytes, b: 16);
  // the constant c0 reads w first but is not placed and does not claim it.
  EXPECT_EQ(compute("params"), (std::vector<double>{64, 16, 0, 0}));
}

TEST(CostModel, ComputeCommunicationAndMemory) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.flops_per_second = 3e6;       // 1000 FLOPs forward + backward = 1 ms
  o.link_bytes_per_second = 8e5;  // 400 bytes there and its gradient back = 1 ms
  o.optimizer_states = 1;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(m.unit, "ms");
  EXPECT_EQ(m.problem.compute, (std::vector<double>{1, 1, 1, 1}));
  ASSERT_EQ(m.problem.transfers.size(), 3u);  // h0 (to b and d), h1, h2
  EXPECT_EQ(m.problem.transfers[0].consumers, (Ints{1, 3}));
  EXPECT_DOUBLE_EQ(m.problem.transfers[0].cost, 1.0);
  // Cut before c: stage 1 receives h1 and the skip h0 (once each).
  Evaluation e = evaluate(m, {2});
  EXPECT_EQ(e.stage_costs, (std::vector<double>{2, 4}));
  EXPECT_DOUBLE_EQ(e.imbalance, 4.0 / 3.0);
  // Cut before b with 3 stages ([a] [b] [c d]): h0 goes to stage 1 and to stage 2: once per consumer stage.
  CostModel m3 = build_cost_model(g, consts(g), o, 3);
  EXPECT_EQ(evaluate(m3, {1, 2}).stage_costs, (std::vector<double>{1, 2, 4}));
  // Memory: w (40000 bytes) x (param + grad + 1 state), plus 1F1B's 2 in-flight
  // micro-batches of a's and b's activations (400 bytes each per sample).
  EXPECT_DOUBLE_EQ(e.stage_memory[0], 40000 * 3 + 2 * 800);
  // The optimum under this model: compute 1+1 | 1+1 plus 2 received = 4
  // either way; [a b c | d] is 3 | 1 + 2 (h2, h0) = 3.
  AutoPartition ap = auto_partition(g, consts(g), 2, o);
  EXPECT_EQ(positions(ap.cuts), (Ints{3}));
  EXPECT_DOUBLE_EQ(ap.eval.bottleneck, 3.0);
  // Free communication: the even split wins.
  o.link_bytes_per_second = 0;
  EXPECT_EQ(positions(auto_partition(g, consts(g), 2, o).cuts), (Ints{2}));
}

TEST(CostModel, CutAtModuleAndBaselines) {
  Graph g = parse_graph(kCostChain);
  CostModelOptions o;
  o.cut_at = "module";
  o.module_depth = 2;  // units blocks.0 = {a, b}, blocks.1 = {c, d}
  o.link_bytes_per_second = 0;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(m.problem.allowed, (std::vector<bool>{false, false, true, false, false}));
  EXPECT_EQ(positions(auto_partition(g, consts(g), 2, o).cuts), (Ints{2}));
  try {
    auto_partition(g, consts(g), 3, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "'auto.stages' is 3 but cuts at module depth 2 allow only 2 stages");
  }
  EXPECT_EQ(uniform_layers_starts(m, 2), (Ints{2}));
  // Equal params: w (read by a) and v (read by c) are 40000 bytes each.
  o.cut_at = "node";
  CostModel n = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(n.param_bytes, (std::vector<double>{40000, 0, 40000, 0}));
  EXPECT_EQ(equal_params_starts(n, 2), (Ints{1}));  // the first stage is full after a
  EXPECT_DOUBLE_EQ(lower_bound(n, 2), 2.0 * 1000 * 3 / 5e10 * 1e3);
}

TEST(CostModel, MeasuredTimesAndMemoryCap) {
  Graph g = parse_graph(kCostChain);
  MeasuredCosts mc;
  mc.profile.file = "prof.json";
  mc.profile.micro_batch_size = 4;
  // F + B ms per micro-batch of 4 (all of it given as B here).
  auto stage = [](const char* first, const char* last, double b) {
    StageTimes t;
    t.b = b;
    t.first_node = first;
    t.last_node = last;
    return t;
  };
  mc.profile.stages = {stage("a", "b", 8.0), stage("c", "d", 40.0)};
  CostModelOptions o;
  o.balance = "time";
  o.link_bytes_per_second = 0;
  o.measured = &mc;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(m.problem.compute, (std::vector<double>{1, 1, 5, 5}));           // by FLOP share, per sample
  EXPECT_EQ(positions(auto_partition(g, consts(g), 2, o).cuts), (Ints{3}));  // 7 | 5
  // Measured node forward times spread a stage's time instead of FLOPs: d
  // (an Add with the FLOPs of a MatMul here) measured 3x c's time.
  mc.profile.stages[1].nodes = {{"c", 0.5, 0.0}, {"d", 1.5, 0.0}, {"a", 100.0, 0.0}};  // a is not in stage 1: ignored
  m = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(m.problem.compute, (std::vector<double>{1, 1, 2.5, 7.5}));
  // With the stage's forward (10 of its 40 ms) and node backward times, each
  // part is spread by its own times: c is 1/4 of the forward, 3/4 of the
  // backward.
  mc.profile.stages[1].f = 10.0;
  mc.profile.stages[1].b = 30.0;
  mc.profile.stages[1].nodes = {{"c", 0.5, 3.0}, {"d", 1.5, 1.0}};
  m = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(m.problem.compute, (std::vector<double>{1, 1, (2.5 + 22.5) / 4, (7.5 + 7.5) / 4}));
  mc.profile.stages[1] = stage("c", "d", 40.0);
  // All of a stage's nodes at 0 (folded, fused away): FLOPs again.
  mc.profile.stages[1].nodes = {{"c", 0.0, 0.0}, {"d", 0.0, 0.0}};
  EXPECT_EQ(build_cost_model(g, consts(g), o, 2).problem.compute, (std::vector<double>{1, 1, 5, 5}));
  mc.profile.stages = {stage("a", "a", 1.0), stage("c", "d", 1.0)};
  try {
    build_cost_model(g, consts(g), o, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "prof.json: stage 1: covers nodes 2..3 of this model, expected to start at node 1 "
              "(profile a split of this same model)");
  }
  // Memory cap: each MatMul's weight costs 40000 x 4 bytes (Adam); a cap
  // that fits one weight per stage forces them apart.
  CostModelOptions c;
  c.link_bytes_per_second = 0;
  c.memory_cap_bytes = 200000;
  AutoPartition ap = auto_partition(g, consts(g), 2, c);
  ASSERT_EQ(ap.eval.stage_memory.size(), 2u);
  for (double mem : ap.eval.stage_memory) EXPECT_LE(mem, 200000);
  // [a b | c d]: a weight each, plus 1F1B's 2 and 1 micro-batches of 800 bytes of activations.
  EXPECT_EQ(ap.starts, (Ints{2}));
  EXPECT_EQ(ap.eval.stage_memory, (std::vector<double>{40000 * 4 + 2 * 800, 40000 * 4 + 1 * 800}));
  c.memory_cap_bytes = 1000;
  try {
    auto_partition(g, consts(g), 2, c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no split into 2 stages fits 'auto.memory_cap_mib'"), std::string::npos)
        << e.what();
  }
}

TEST(CostModel, TypedCutsAvoidValuesOfUnknownShape) {
  Graph g = parse_graph(R"(
input x:float32[4]
node a Relu flops=10 : x -> h0:float32?
node b Relu flops=10 : h0 -> h1:float32[4]
node c Relu flops=10 : h1 -> h2:float32[4]
node d Relu flops=10 : h2 -> y:float32[4]
output y
)");
  CostModelOptions o;
  o.typed_cuts_only = true;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  EXPECT_EQ(m.problem.allowed, (std::vector<bool>{true, false, true, true, true}));
}

}  // namespace
}  // namespace ppc::analysis
