// compiler/analysis/partition: stage plans of a cut graph (nodes, cloned
// constants, inputs, edges, params), and verify_partition.
#include <string>

#include <gtest/gtest.h>

#include "compiler/analysis/partition.h"
#include "schemas/error.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;

// ---------------------------------------------------------------- partition

const char* kSkip = R"(
graph skip
input x:float32[batch,4]
input m:float32[batch,4]
param w0:float32[4,4]
param s:float32[4]
node c0 Constant const : -> k:float32[1]
node sc Mul : s k -> sk:float32[4]
node n0 MatMul @a flops=10 : x w0 -> h0:float32[batch,4]
node n1 ArgMax @a flops=1 : h0 -> idx:int64[batch]
node n2 Add @b flops=2 : h0 sk -> h1:float32[batch,4]
node n3 Gather @b flops=3 : h1 idx -> h2:float32[batch,4]
node n4 Add @c flops=4 : h2 h0 -> h3:float32[batch,4]
node n5 Mul @c flops=5 : h3 m -> h4:float32[batch,4]
node n6 Mul @c flops=6 : h4 sk -> y:float32[batch,4]
output y
)";
// Node ids: c0=0 sc=1 n0=2 n1=3 n2=4 n3=5 n4=6 n5=7 n6=8. Stages: a | b | c.

TEST(Partition, SkipConnectionsConstantsAndModelInputs) {
  Graph g = parse_graph(kSkip);
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(4), cut_at(6)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.num_stages, 3);
  EXPECT_EQ(p.stage_of_node, (Ints{-1, -1, 0, 0, 1, 1, 2, 2, 2}));

  // The skip connection h0 is one edge straight to stages 1 and 2; the int64
  // idx is an edge like any other; the constant sk is never sent.
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1,2", "idx 0->1", "h2 1->2"}));

  const StagePlan& s0 = p.stages[0];
  const StagePlan& s1 = p.stages[1];
  const StagePlan& s2 = p.stages[2];
  EXPECT_EQ(names_of_nodes(g, s0.nodes), (Strings{"n0", "n1"}));
  EXPECT_TRUE(s0.cloned.empty());
  EXPECT_EQ(names_of_nodes(g, s1.nodes), (Strings{"c0", "sc", "n2", "n3"}));
  EXPECT_EQ(names_of_nodes(g, s1.cloned), (Strings{"c0", "sc"}));
  EXPECT_EQ(names_of_nodes(g, s2.nodes), (Strings{"c0", "sc", "n4", "n5", "n6"}));
  EXPECT_EQ(names_of_nodes(g, s2.cloned), (Strings{"c0", "sc"}));
  EXPECT_EQ(s0.placed_nodes, 2);
  EXPECT_EQ(s1.placed_nodes, 2);
  EXPECT_EQ(s2.placed_nodes, 3);
  EXPECT_DOUBLE_EQ(s0.flops, 11.0);
  EXPECT_DOUBLE_EQ(s1.flops, 5.0);
  EXPECT_DOUBLE_EQ(s2.flops, 15.0);

  EXPECT_EQ(inputs_of(g, s0), (Strings{"x:model_input"}));
  EXPECT_EQ(inputs_of(g, s1), (Strings{"h0:edge@0", "idx:edge@0"}));
  EXPECT_EQ(inputs_of(g, s2), (Strings{"m:model_input", "h0:edge@0", "h2:edge@1"}));
  EXPECT_EQ(names_of_values(g, s0.outputs), (Strings{"h0", "idx"}));
  EXPECT_EQ(names_of_values(g, s1.outputs), (Strings{"h2"}));
  EXPECT_EQ(names_of_values(g, s2.outputs), (Strings{"y"}));

  ASSERT_EQ(p.input_stages.size(), 2u);
  EXPECT_EQ(p.input_stages[0], (Ints{0}));  // x
  EXPECT_EQ(p.input_stages[1], (Ints{2}));  // m, read only by stage 2
  EXPECT_EQ(p.output_stage, (Ints{2}));

  // Params: each stage stores what it reads, cloned constants included.
  EXPECT_EQ(names_of_params(g, s0.params), (Strings{"w0"}));
  EXPECT_EQ(names_of_params(g, s1.params), (Strings{"s"}));
  EXPECT_EQ(names_of_params(g, s2.params), (Strings{"s"}));
  EXPECT_EQ(s0.param_bytes, 64);
  EXPECT_EQ(s1.param_bytes, 16);
  // s is read in stages 1 and 2 (through the cloned constant chain): one
  // parameter in two stages is a tie.
  ASSERT_EQ(p.ties.size(), 1u);
  EXPECT_EQ(p.ties[0].detected_by, "shared");
  EXPECT_EQ(p.ties[0].owner, 1);
  ASSERT_EQ(p.ties[0].members.size(), 1u);
  EXPECT_EQ(g.params[p.ties[0].members[0].param].name, "s");
  EXPECT_EQ(p.ties[0].members[0].stages, (Ints{1, 2}));
}

TEST(Partition, ModelInputReadByLaterStagesOnly) {
  Graph g = parse_graph(R"(
input x:float32[batch,4]
input bias:float32[4]
node a Relu : x -> h0:float32[batch,4]
node b Relu : h0 -> h1:float32[batch,4]
node c Add : h1 bias -> h2:float32[batch,4]
node d Add : h2 bias -> y:float32[batch,4]
output y
output h0
)");
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(1), cut_at(2), cut_at(3)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  EXPECT_EQ(p.input_stages[0], (Ints{0}));
  EXPECT_EQ(p.input_stages[1], (Ints{2, 3}));
  EXPECT_EQ(inputs_of(g, p.stages[2]), (Strings{"bias:model_input", "h1:edge@1"}));
  EXPECT_EQ(inputs_of(g, p.stages[3]), (Strings{"bias:model_input", "h2:edge@2"}));
  // Model inputs are never edges.
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2", "h2 2->3"}));
  // h0 is a model output written by stage 0 (and also sent on).
  EXPECT_EQ(p.output_stage, (Ints{3, 0}));
  EXPECT_EQ(names_of_values(g, p.stages[0].outputs), (Strings{"h0"}));
}

TEST(Partition, ConstantValuedModelOutputComesFromLastStage) {
  Graph g = parse_graph(R"(
input x:float32[4]
param w:float32[4]
node t Neg : w -> nw:float32[4]
node a Relu : x -> h:float32[4]
node b Relu : h -> y:float32[4]
output y
output nw
)");
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(2)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  EXPECT_EQ(p.output_stage, (Ints{1, 1}));
  EXPECT_EQ(names_of_nodes(g, p.stages[1].cloned), (Strings{"t"}));
  EXPECT_EQ(names_of_values(g, p.stages[1].outputs), (Strings{"y", "nw"}));
  EXPECT_TRUE(p.stages[0].cloned.empty());
}

TEST(Partition, PassThroughOutputIsAnError) {
  Graph g = parse_graph(
      "input x:float32[4]\n"
      "node a Relu : x -> y:float32[4]\n"
      "output y\noutput x\n");
  try {
    partition(g, consts(g), {}, TieOptions{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "model output 'x' is a model input passed straight through; ppc cannot place it in a stage");
  }
}

// --------------------------------------------------------- verify_partition

// A hand-built two-stage partition of: x -> a -> h -> b -> y.
struct HandPartition {
  Graph g = parse_graph(
      "input x:float32[4]\n"
      "param w:float32[4]\n"
      "node a Mul : x w -> h:float32[4]\n"
      "node b Relu : h -> y:float32[4]\n"
      "output y\n");
  Partition p;
  HandPartition() {
    const ir::ValueId x = g.find_value("x"), h = g.find_value("h"), y = g.find_value("y");
    p.num_stages = 2;
    p.stage_of_node = {0, 1};
    p.stages.resize(2);
    p.stages[0].nodes = {0};
    p.stages[0].placed_nodes = 1;
    p.stages[0].inputs = {StageInputRef{x, InputSource::ModelInput, -1}};
    p.stages[0].outputs = {h};
    p.stages[0].params = {0};
    p.stages[1].nodes = {1};
    p.stages[1].placed_nodes = 1;
    p.stages[1].inputs = {StageInputRef{h, InputSource::Edge, 0}};
    p.stages[1].outputs = {y};
    p.edges = {CrossEdge{h, 0, {1}, false}};
    p.input_stages = {{0}};
    p.output_stage = {1};
  }
};

TEST(VerifyPartition, AcceptsHandBuiltPartition) {
  HandPartition hp;
  EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "");
}

TEST(VerifyPartition, AgreesWithPartition) {
  HandPartition hp;
  Partition made = partition(hp.g, consts(hp.g), {cut_at(1)}, TieOptions{});
  EXPECT_EQ(verify_partition(hp.g, consts(hp.g), made), "");
  EXPECT_EQ(made.stage_of_node, hp.p.stage_of_node);
  EXPECT_EQ(made.stages[0].nodes, hp.p.stages[0].nodes);
  EXPECT_EQ(made.stages[1].nodes, hp.p.stages[1].nodes);
  EXPECT_EQ(made.stages[0].outputs, hp.p.stages[0].outputs);
  EXPECT_EQ(made.stages[1].outputs, hp.p.stages[1].outputs);
  EXPECT_EQ(made.stages[0].params, hp.p.stages[0].params);
  EXPECT_EQ(edges_of(hp.g, made), edges_of(hp.g, hp.p));
  EXPECT_EQ(inputs_of(hp.g, made.stages[1]), inputs_of(hp.g, hp.p.stages[1]));
}

TEST(VerifyPartition, DetectsBrokenPartitions) {
  {
    HandPartition hp;
    hp.p.stages[1].nodes.clear();  // b placed nowhere
    hp.p.stages[1].outputs.clear();
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "node 'b' is placed in 0 stages");
  }
  {
    HandPartition hp;
    hp.p.stages[0].nodes = {0, 1};  // b placed twice
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "node 'b' is placed in 2 stages");
  }
  {
    HandPartition hp;
    hp.p.stages[1].inputs.clear();  // stage 1 reads h without receiving it
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p),
              "stage 1 node 'b' reads 'h', which the stage does not define");
  }
  {
    HandPartition hp;
    hp.p.stages[0].params.clear();  // stage 0 reads w without storing it
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p),
              "stage 0 node 'a' reads 'w', which the stage does not define");
  }
  {
    HandPartition hp;
    hp.p.stages[1].inputs[0].from_stage = 1;  // from itself
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "stage 1 input 'h' comes from stage 1");
  }
  {
    HandPartition hp;
    hp.p.edges[0].consumers = {0};  // backwards
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "edge 'h' flows from stage 0 to 0");
  }
  {
    HandPartition hp;
    hp.p.stages[0].outputs.push_back(hp.g.find_value("y"));  // not defined in stage 0
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "stage 0 outputs 'y', which it does not define");
  }
  {
    HandPartition hp;
    hp.p.stages[1].cloned = {1};  // b is not constant-like
    EXPECT_EQ(verify_partition(hp.g, consts(hp.g), hp.p), "stage 1 clones non-constant node 'b'");
  }
}

}  // namespace
}  // namespace ppc::analysis
