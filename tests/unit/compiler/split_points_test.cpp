// compiler/analysis/split_points: module spans, and the spec's split points
// (module, node, value) resolved to cut positions, with their errors.
#include <string>

#include <gtest/gtest.h>

#include "compiler/analysis/split_points.h"
#include "schemas/error.h"
#include "schemas/json_text.h"
#include "schemas/split_spec.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;

// ------------------------------------------------------------------ helpers

spec::SplitPoint module_point(const std::string& name, bool at_end) {
  return spec::SplitPoint{spec::SplitPoint::Kind::Module, name, at_end, ""};
}
spec::SplitPoint node_point(const std::string& name, bool at_end) {
  return spec::SplitPoint{spec::SplitPoint::Kind::Node, name, at_end, ""};
}
spec::SplitPoint value_point(const std::string& name) {
  return spec::SplitPoint{spec::SplitPoint::Kind::Value, name, true, ""};
}

spec::SplitSpec spec_of(std::vector<spec::SplitPoint> points) {
  spec::SplitSpec s;
  s.split_points = std::move(points);
  return s;
}

// Resolves expecting a ppc::Error; returns its message.
std::string resolve_error(const Graph& g, const spec::SplitSpec& s, const JsonDocument* doc = nullptr) {
  try {
    resolve_split_points(g, consts(g), s, doc);
  } catch (const Error& e) { return e.what(); }
  ADD_FAILURE() << "expected resolve_split_points to fail";
  return "";
}

// ------------------------------------------------------------ module spans

const char* kNet = R"(
graph net
input x:float32[batch,4]
input m:float32[batch,4]
param w0:float32[4,4]
param w1:float32[4,4]
param w2:float32[4,4]
node c0 Constant const : -> k:int64[1]
node l0 MatMul @layer0.lin flops=100 : x w0 -> h0:float32[batch,4]
node r0 Relu @layer0.act flops=10 : h0 -> a0:float32[batch,4]
node l1 MatMul @layer1.0.conv1 flops=100 : a0 w1 -> h1:float32[batch,4]
node r1 Relu @layer1.0.act : h1 -> a1:float32[batch,4]
node l2 MatMul @layer1.1.conv1 : a1 w2 -> h2:float32[batch,4]
node add Add @layer2 : h2 a0 -> s:float32[batch,4]
node mul Mul @layer2 : s m -> y:float32[batch,4]
output y
)";
// Node ids: c0=0 l0=1 r0=2 l1=3 r1=4 l2=5 add=6 mul=7.

TEST(ModuleSpans, PrefixesCount) {
  Graph g = parse_graph(kNet);
  auto spans = module_spans(g, consts(g));
  auto span = [&](const std::string& m) {
    auto it = spans.find(m);
    if (it == spans.end()) return Ints{};
    return Ints{it->second.first, it->second.last};
  };
  EXPECT_EQ(span("layer0"), (Ints{1, 2}));
  EXPECT_EQ(span("layer0.lin"), (Ints{1, 1}));
  EXPECT_EQ(span("layer0.act"), (Ints{2, 2}));
  EXPECT_EQ(span("layer1"), (Ints{3, 5}));  // from layer1.0.conv1 and layer1.1.conv1
  EXPECT_EQ(span("layer1.0"), (Ints{3, 4}));
  EXPECT_EQ(span("layer1.0.conv1"), (Ints{3, 3}));
  EXPECT_EQ(span("layer1.0.act"), (Ints{4, 4}));
  EXPECT_EQ(span("layer1.1"), (Ints{5, 5}));
  EXPECT_EQ(span("layer1.1.conv1"), (Ints{5, 5}));
  EXPECT_EQ(span("layer2"), (Ints{6, 7}));
  EXPECT_EQ(spans.size(), 10u);  // the root scope ("") is not a module
  EXPECT_EQ(spans.count(""), 0u);
  EXPECT_EQ(spans.count("layer"), 0u);  // prefixes are whole dotted components
  EXPECT_EQ(spans.count("layer1.0.c"), 0u);
}

TEST(ModuleSpans, ConstantNodesAreNotPlaceable) {
  Graph g = parse_graph(R"(
input x:float32[4]
param w:float32[4]
node t0 Neg @enc.proj : w -> nw:float32[4]
node a Add @enc.proj : x nw -> y:float32[4]
node b Neg @enc.out : y -> z:float32[4]
node t1 Neg @consts : w -> cw:float32[4]
output z
)");
  auto spans = module_spans(g, consts(g));
  ASSERT_EQ(spans.count("enc"), 1u);
  EXPECT_EQ(spans["enc"].first, g.find_node("a"));  // t0 is constant-like
  EXPECT_EQ(spans["enc"].last, g.find_node("b"));
  EXPECT_EQ(spans["enc.proj"].first, g.find_node("a"));
  EXPECT_EQ(spans["enc.proj"].last, g.find_node("a"));
  EXPECT_EQ(spans.count("consts"), 0u);

  // A split at a module that holds only constants says so.
  std::string msg = resolve_error(g, spec_of({module_point("consts", true)}));
  EXPECT_NE(msg.find("module 'consts' holds only constants"), std::string::npos) << msg;
}

// ---------------------------------------------------------- split points

TEST(SplitPoints, ModuleBeginAndEnd) {
  Graph g = parse_graph(kNet);
  auto c = consts(g);
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({module_point("layer1", true)}), nullptr)), (Ints{6}));
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({module_point("layer1", false)}), nullptr)), (Ints{3}));
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({module_point("layer1.0", true)}), nullptr)), (Ints{5}));
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({module_point("layer1.1.conv1", false)}), nullptr)),
            (Ints{5}));
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({module_point("layer0", true), module_point("layer1", true)}),
                                           nullptr)),
            (Ints{3, 6}));
  auto cuts = resolve_split_points(g, c, spec_of({module_point("layer0", true)}), nullptr);
  ASSERT_EQ(cuts.size(), 1u);
  EXPECT_EQ(cuts[0].label, "module 'layer0' at end");
}

TEST(SplitPoints, NodeAndValue) {
  Graph g = parse_graph(kNet);
  auto c = consts(g);
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({node_point("r0", true)}), nullptr)), (Ints{3}));
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({node_point("r0", false)}), nullptr)), (Ints{2}));
  // A value cut goes right after its producer (r1 = 4).
  EXPECT_EQ(positions(resolve_split_points(g, c, spec_of({value_point("a1")}), nullptr)), (Ints{5}));
  auto cuts = resolve_split_points(
      g, c, spec_of({node_point("l0", true), value_point("h1"), module_point("layer2", false)}), nullptr);
  EXPECT_EQ(positions(cuts), (Ints{2, 4, 6}));
  EXPECT_EQ(cuts[0].label, "node 'l0' at end");
  EXPECT_EQ(cuts[1].label, "value 'h1'");
  EXPECT_EQ(cuts[2].label, "module 'layer2' at begin");
}

TEST(SplitPoints, UnknownModuleSuggests) {
  Graph g = parse_graph(R"(
input x:float32[4]
node a Relu @embed : x -> h0:float32[4]
node b Relu @layer0.lin : h0 -> h1:float32[4]
node c Relu @head : h1 -> y:float32[4]
output y
)");
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer9", true)})),
            "unknown module 'layer9' (did you mean 'layer0'?)");
  EXPECT_EQ(resolve_error(g, spec_of({module_point("zzzzzzzz", true)})), "unknown module 'zzzzzzzz'");
  EXPECT_EQ(resolve_error(g, spec_of({module_point("", true)})), "unknown module ''");
}

TEST(SplitPoints, UnknownNodeAndValue) {
  Graph g = parse_graph(kNet);
  EXPECT_EQ(resolve_error(g, spec_of({node_point("mull", true)})), "unknown node 'mull' (did you mean 'mul'?)");
  EXPECT_EQ(resolve_error(g, spec_of({value_point("ss")})), "unknown value 'ss' (did you mean 's'?)");
  EXPECT_EQ(resolve_error(g, spec_of({node_point("qqqqqqqq", false)})), "unknown node 'qqqqqqqq'");
}

TEST(SplitPoints, ValueMustBeComputed) {
  Graph g = parse_graph(kNet);
  EXPECT_EQ(resolve_error(g, spec_of({value_point("x")})),
            "value 'x' is a model input, not produced by a node; cut at a value some node computes");
  EXPECT_EQ(resolve_error(g, spec_of({value_point("w1")})),
            "value 'w1' is a model parameter, not produced by a node; cut at a value some node computes");
}

TEST(SplitPoints, OutOfOrder) {
  Graph g = parse_graph(kNet);
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer1", true), node_point("r0", true)})),
            "split point node 'r0' at end comes before the previous one (split point module 'layer1' at end); "
            "list split points in graph order");
}

TEST(SplitPoints, EmptyStages) {
  Graph g = parse_graph(kNet);
  // Two cuts at the same place (r0 end == layer1 begin == position 3).
  EXPECT_EQ(resolve_error(g, spec_of({node_point("r0", true), module_point("layer1", false)})),
            "split point module 'layer1' at begin leaves stage 1 empty (nothing between it and split point "
            "node 'r0' at end)");
  // At the very start: only the constant c0 precedes layer0, and constants are not placed.
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer0", false)})),
            "split point module 'layer0' at begin leaves stage 0 empty (nothing between it and the start of the "
            "graph)");
  EXPECT_EQ(resolve_error(g, spec_of({node_point("c0", false)})),
            "split point node 'c0' at begin leaves stage 0 empty (nothing between it and the start of the graph)");
  // At the very end.
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer2", true)})),
            "split point module 'layer2' at end leaves the last stage empty (it is at the end of the graph)");
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer0", true), value_point("y")})),
            "split point value 'y' leaves the last stage empty (it is at the end of the graph)");
  // The middle stage of three empty.
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer0", true), module_point("layer0", true)})),
            "split point module 'layer0' at end leaves stage 1 empty (nothing between it and split point module "
            "'layer0' at end)");
}

TEST(SplitPoints, ErrorsAreLocatedInTheSpec) {
  Graph g = parse_graph(kNet);
  JsonDocument doc = JsonDocument::parse(
      "{\n"
      "  \"version\": 1,\n"
      "  \"split_points\": [\n"
      "    {\"module\": \"layer0\"},\n"
      "    {\"module\": \"layer7\", \"at\": \"begin\"}\n"
      "  ]\n"
      "}\n",
      "spec.json");
  spec::SplitSpec s = spec::parse_split_spec(doc);
  std::string msg = resolve_error(g, s, &doc);
  EXPECT_EQ(msg.rfind("spec.json:5:5: unknown module 'layer7'", 0), 0u) << msg;

  JsonDocument doc2 = JsonDocument::parse(
      "{\"version\": 1,\n"
      " \"split_points\": [{\"module\": \"layer1\"},\n"
      "                  {\"node\": \"r0\"}]}\n",
      "spec.json");
  EXPECT_EQ(resolve_error(g, spec::parse_split_spec(doc2), &doc2),
            "spec.json:3:19: split point node 'r0' at end comes before the previous one (split point module "
            "'layer1' at end); list split points in graph order");
}

TEST(SplitPoints, ModuleOnlyInsideControlFlowNamesTheBlock) {
  // `if x.sum() > 0: x = self.inner(x)`: the If node is atomic; module
  // `inner` (and `inner.lin`) occurs only inside its block.
  Graph g = parse_graph(R"(
input x:float32[4]
node pre/aten::linear aten::linear @pre : x -> h0:float32[4]
node aten::sum aten::sum : h0 -> s:float32[]
node prim::If prim::If subgraph : s h0 -> h1:float32[4]
node post/aten::linear aten::linear @post : h1 -> y:float32[4]
output y
)");
  g.nested_modules = {{"inner.lin", g.find_node("prim::If")}, {"innerx", g.find_node("prim::If")}};
  ASSERT_EQ(g.verify(), "");
  const std::string tail = "; a cut cannot fall inside a block: cut at the module holding that node instead";
  EXPECT_EQ(resolve_error(g, spec_of({module_point("inner", true)})),
            "module 'inner' is inside control-flow node 'prim::If' (prim::If)" + tail);
  EXPECT_EQ(resolve_error(g, spec_of({module_point("inner.lin", false)})),
            "module 'inner.lin' is inside control-flow node 'prim::If' (prim::If)" + tail);
  // Neither a prefix of a name segment nor an unrelated name counts as nested.
  EXPECT_EQ(resolve_error(g, spec_of({module_point("inn", true)})).rfind("unknown module 'inn'", 0), 0u);
  EXPECT_EQ(resolve_error(g, spec_of({module_point("inner.li", true)})).rfind("unknown module 'inner.li'", 0), 0u);
  // Modules at the top level resolve as usual.
  EXPECT_EQ(positions(resolve_split_points(g, consts(g), spec_of({module_point("pre", true)}), nullptr)), (Ints{1}));

  // Located in the spec like every split-point error.
  JsonDocument doc =
      JsonDocument::parse("{\"version\": 1,\n \"split_points\": [{\"module\": \"inner\"}]}\n", "spec.json");
  EXPECT_EQ(resolve_error(g, spec::parse_split_spec(doc), &doc),
            "spec.json:2:19: module 'inner' is inside control-flow node 'prim::If' (prim::If)" + tail);
}

}  // namespace
}  // namespace ppc::analysis
