#include "compiler/emitters/manifest_builder.h"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/analysis/constants.h"
#include "compiler/ir/text.h"
#include "schemas/error.h"

namespace ppc {
namespace {

using Dims = std::vector<std::optional<int>>;

class FakeSource : public SourceModel {
 public:
  explicit FakeSource(ir::Graph g) : g_(std::move(g)) {}
  const ir::Graph& graph() const override { return g_; }
  ir::Graph& mutable_graph() override { return g_; }
  const char* format() const override { return "onnx"; }
  const char* artifact_extension() const override { return ".onnx"; }
  int64_t opset() const override { return 17; }

 private:
  ir::Graph g_;
};

const char* kInputs = R"(
input x:float32[batch,4]
input y:float32[4,seq,8]
input z:float32[3,4]
input s:float32[]
input u:float32?
node n Relu : x -> o:float32[batch,4]
output o
)";

spec::SplitSpec spec_from(const JsonDocument& doc) { return spec::parse_split_spec(doc); }

std::string batch_dims_error(const ir::Graph& g, const std::string& inputs_json) {
  JsonDocument doc = JsonDocument::parse(
      "{\"version\": 1, \"auto\": {\"stages\": 1},\n \"inputs\": " + inputs_json + "}", "spec.json");
  try {
    model_input_batch_dims(g, spec_from(doc), &doc);
  } catch (const Error& e) { return e.what(); }
  ADD_FAILURE() << "expected an error for " << inputs_json;
  return "";
}

TEST(ModelInputBatchDims, Inferred) {
  ir::Graph g = ir::parse_graph(kInputs);
  // x: first symbolic dim 0; y: first symbolic dim 1; z: no symbol -> 0;
  // a scalar input is not split; an unranked one is taken as batch-first (0).
  EXPECT_EQ(model_input_batch_dims(g, spec::SplitSpec{}, nullptr), (Dims{0, 1, 0, std::nullopt, 0}));
}

TEST(ModelInputBatchDims, SpecOverridesAndReplicate) {
  ir::Graph g = ir::parse_graph(kInputs);
  JsonDocument doc = JsonDocument::parse(
      R"({"version": 1, "auto": {"stages": 1},
          "inputs": {"z": {"batch_dim": 1}, "x": {"replicate": true}, "y": {}, "u": {"batch_dim": 5}}})",
      "spec.json");
  // y has an empty entry: inferred as before. u is unranked: any dim is accepted.
  EXPECT_EQ(model_input_batch_dims(g, spec_from(doc), &doc), (Dims{std::nullopt, 1, 1, std::nullopt, 5}));
}

TEST(ModelInputBatchDims, UnknownInputName) {
  ir::Graph g = ir::parse_graph(kInputs);
  EXPECT_EQ(batch_dims_error(g, R"({"xx": {"batch_dim": 0}})"),
            "spec.json:2:13: unknown model input 'xx' (did you mean 'x'?)");
  spec::SplitSpec s;
  s.inputs.push_back(spec::InputSpec{"qqqqqq", 0, false, "/inputs/qqqqqq"});
  try {
    model_input_batch_dims(g, s, nullptr);
    FAIL();
  } catch (const Error& e) { EXPECT_EQ(std::string(e.what()), "unknown model input 'qqqqqq'"); }
}

TEST(ModelInputBatchDims, BatchDimOutOfRange) {
  ir::Graph g = ir::parse_graph(kInputs);
  EXPECT_EQ(batch_dims_error(g, R"({"z": {"batch_dim": 2}})"),
            "spec.json:2:32: batch_dim 2 is out of range for input 'z' of shape [3,4]");
  EXPECT_EQ(batch_dims_error(g, R"({"s": {"batch_dim": 0}})"),
            "spec.json:2:32: batch_dim 0 is out of range for input 's' of shape []");
}

const char* kModel = R"(
input x:float32[batch,4]
input m:float32[batch,4]
param w:float32[4,4]
node n0 MatMul @layer1.0.conv1 flops=10 : x w -> h0:float32[batch,4]
node n1 ArgMax @layer1.0.pool flops=1 : h0 -> idx:int64[batch]
node n2 Gather @head flops=2.6 : h0 idx -> h1:float32[batch,4]
node n3 Mul @head.proj : h1 m -> h2:float32[4,batch]
node n4 MatMul @head.out : h2 w -> y:float32[batch,4]
output y
)";

manifest::Manifest build(const std::string& spec_text, spec::TiePolicy policy) {
  FakeSource src(ir::parse_graph(kModel));
  const ir::Graph& g = src.graph();
  auto c = analysis::constant_like_nodes(g);
  analysis::TieOptions opts;
  opts.default_policy = policy;
  analysis::Partition p = analysis::partition(g, c, {analysis::Cut{2, "cut", ""}}, opts);
  EXPECT_EQ(analysis::verify_partition(g, c, p), "");
  JsonDocument doc = JsonDocument::parse(spec_text, "spec.json");
  spec::SplitSpec s = spec::parse_split_spec(doc);
  return build_manifest(src, p, s, model_input_batch_dims(g, s, &doc));
}

TEST(BuildManifest, EdgesStagesAndTies) {
  manifest::Manifest m =
      build(R"({"version": 1, "auto": {"stages": 2}, "defaults": {"schedule": "gpipe", "chunks": 4}})",
            spec::TiePolicy::Transmit);
  EXPECT_EQ(m.source.format, "onnx");
  EXPECT_EQ(m.source.opset, 17);
  EXPECT_EQ(m.default_schedule, std::optional<std::string>("gpipe"));
  EXPECT_EQ(m.default_chunks, std::optional<int>(4));

  ASSERT_EQ(m.model_inputs.size(), 2u);
  EXPECT_EQ(m.model_inputs[0].batch_dim, std::optional<int>(0));
  EXPECT_EQ(m.model_inputs[0].split, "batch");
  EXPECT_EQ(m.model_inputs[0].stages, (std::vector<int>{0}));
  EXPECT_EQ(m.model_inputs[1].stages, (std::vector<int>{1}));
  ASSERT_EQ(m.model_outputs.size(), 1u);
  EXPECT_EQ(m.model_outputs[0].stage, 1);
  EXPECT_EQ(m.model_outputs[0].batch_dim, std::optional<int>(0));

  ASSERT_EQ(m.edges.size(), 3u);
  EXPECT_EQ(m.edges[0].value, "h0");
  EXPECT_TRUE(m.edges[0].differentiable);
  EXPECT_EQ(m.edges[0].kind, "activation");
  EXPECT_EQ(m.edges[0].batch_dim, std::optional<int>(0));
  EXPECT_EQ(m.edges[1].value, "idx");
  EXPECT_EQ(m.edges[1].dtype, "int64");
  EXPECT_FALSE(m.edges[1].differentiable);  // integers carry no gradient
  EXPECT_EQ(m.edges[1].consumers, (std::vector<int>{1}));
  EXPECT_EQ(m.edges[2].value, "w");
  EXPECT_EQ(m.edges[2].kind, "param");
  EXPECT_FALSE(m.edges[2].batch_dim.has_value());  // a param has no batch dim
  EXPECT_TRUE(m.edges[2].differentiable);

  ASSERT_EQ(m.stages.size(), 2u);
  const auto& s0 = m.stages[0];
  const auto& s1 = m.stages[1];
  EXPECT_EQ(s0.modules, (std::vector<std::string>{"layer1.0"}));  // container element keeps its index
  EXPECT_EQ(s1.modules, (std::vector<std::string>{"head"}));
  EXPECT_EQ(s0.first_node, "n0");
  EXPECT_EQ(s0.last_node, "n1");
  EXPECT_EQ(s1.first_node, "n2");
  EXPECT_EQ(s1.last_node, "n4");
  EXPECT_EQ(s0.node_count, 2);
  EXPECT_EQ(s1.node_count, 3);
  EXPECT_EQ(s0.flops, 11);
  EXPECT_EQ(s1.flops, 3);        // 2.6 rounds to 3
  EXPECT_EQ(m.total_flops, 14);  // 13.6 rounds to 14
  ASSERT_EQ(s0.params.size(), 1u);
  EXPECT_EQ(s0.params[0].name, "w");
  EXPECT_EQ(s0.params[0].shape, (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(s0.params[0].bytes, 64);
  EXPECT_TRUE(s0.params[0].trainable);
  EXPECT_TRUE(s1.params.empty());

  ASSERT_EQ(s1.inputs.size(), 4u);
  EXPECT_EQ(s1.inputs[0].name, "m");
  EXPECT_EQ(s1.inputs[0].source, "model_input");
  EXPECT_EQ(s1.inputs[0].from_stage, -1);
  EXPECT_EQ(s1.inputs[1].name, "w");
  EXPECT_EQ(s1.inputs[1].source, "tie");
  EXPECT_EQ(s1.inputs[1].from_stage, 0);
  EXPECT_FALSE(s1.inputs[1].batch_dim.has_value());
  EXPECT_EQ(s1.inputs[2].name, "h0");
  EXPECT_EQ(s1.inputs[2].source, "edge");
  EXPECT_EQ(s1.inputs[3].name, "idx");

  ASSERT_EQ(s0.outputs.size(), 3u);
  EXPECT_EQ(s0.outputs[0].name, "h0");
  EXPECT_EQ(s0.outputs[0].to_stages, (std::vector<int>{1}));
  EXPECT_FALSE(s0.outputs[0].model_output);
  EXPECT_EQ(s0.outputs[2].name, "w");
  ASSERT_EQ(s1.outputs.size(), 1u);
  EXPECT_TRUE(s1.outputs[0].model_output);
  EXPECT_TRUE(s1.outputs[0].to_stages.empty());

  ASSERT_EQ(m.ties.size(), 1u);
  EXPECT_EQ(m.ties[0].policy, "transmit");
  EXPECT_EQ(m.ties[0].owner, 0);
  EXPECT_EQ(m.ties[0].detected_by, "shared");
  ASSERT_EQ(m.ties[0].members.size(), 1u);
  EXPECT_EQ(m.ties[0].members[0].param, "w");
  EXPECT_EQ(m.ties[0].members[0].stages, (std::vector<int>{0, 1}));

  // Artifact names are the driver's to fill in; once they are, the manifest
  // is valid for the reader.
  EXPECT_EQ(s0.artifact, "");
  for (auto& st : m.stages) st.artifact = "stage" + std::to_string(st.index) + ".onnx";
  std::string text = manifest::to_json_text(m);
  EXPECT_EQ(manifest::to_json_text(manifest::parse_manifest(text, "manifest.json")), text);
}

TEST(BuildManifest, BatchDimFollowsTheBatchSymbol) {
  // With every input replicated there is no batch symbol, so no value has a
  // batch dim.
  manifest::Manifest split = build(R"({"version": 1, "auto": {"stages": 2}})", spec::TiePolicy::Replicate);
  manifest::Manifest repl =
      build(R"({"version": 1, "auto": {"stages": 2}, "inputs": {"x": {"replicate": true}, "m": {"replicate": true}}})",
            spec::TiePolicy::Replicate);
  EXPECT_EQ(split.edges[0].batch_dim, std::optional<int>(0));
  EXPECT_FALSE(repl.edges[0].batch_dim.has_value());
  EXPECT_EQ(repl.model_inputs[0].split, "replicate");
  EXPECT_FALSE(repl.model_inputs[0].batch_dim.has_value());
  EXPECT_FALSE(repl.model_outputs[0].batch_dim.has_value());
  // Replicated tie: both stages store w; no param edge.
  EXPECT_EQ(split.edges.size(), 2u);
  EXPECT_EQ(split.stages[1].params.size(), 1u);
  EXPECT_EQ(split.ties[0].policy, "replicate");
}

TEST(BuildManifest, EdgeOfUnknownDtypeCarriesGradients) {
  // A traced TorchScript graph leaves many values untyped. Such an edge may be
  // floating point: it must stay differentiable, or the runtime never sends a
  // gradient back along it and every parameter upstream stays frozen
  // (torchvision's shufflenet_v2, traced and split, trained only its last stage).
  FakeSource src(ir::parse_graph(R"(
input x:float32[batch,4]
param w:float32[4,4]
node n0 MatMul @a : x w -> h:undefined
node n1 Shape @a : h -> s:int64[2]
node n2 Relu @b : h -> r:undefined
node n3 Reshape @b : r s -> y:float32[batch,4]
output y
)"));
  const ir::Graph& g = src.graph();
  auto c = analysis::constant_like_nodes(g);
  analysis::Partition p = analysis::partition(g, c, {analysis::Cut{2, "cut", ""}}, analysis::TieOptions{});
  ASSERT_EQ(analysis::verify_partition(g, c, p), "");
  JsonDocument doc = JsonDocument::parse(R"({"version": 1, "auto": {"stages": 2}})", "spec.json");
  spec::SplitSpec s = spec::parse_split_spec(doc);
  manifest::Manifest m = build_manifest(src, p, s, model_input_batch_dims(g, s, &doc));
  ASSERT_EQ(m.edges.size(), 2u);
  EXPECT_EQ(m.edges[0].value, "h");
  EXPECT_EQ(m.edges[0].dtype, "undefined");
  EXPECT_TRUE(m.edges[0].differentiable);
  EXPECT_EQ(m.edges[1].value, "s");
  EXPECT_FALSE(m.edges[1].differentiable);  // known to be integer
}

}  // namespace
}  // namespace ppc
