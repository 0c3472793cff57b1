#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/constants.h"
#include "compiler/analysis/partition.h"
#include "compiler/analysis/split_points.h"
#include "compiler/analysis/step_model.h"
#include "compiler/analysis/ties.h"
#include "compiler/ir/text.h"
#include "schemas/error.h"
#include "schemas/json_text.h"
#include "schemas/split_spec.h"

namespace ppc::analysis {
namespace {

using ir::Graph;
using ir::parse_graph;
using Ints = std::vector<int>;
using profile::StageTimes;
using Strings = std::vector<std::string>;

// ------------------------------------------------------------------ helpers

std::vector<bool> consts(const Graph& g) { return constant_like_nodes(g); }

Strings names_of_nodes(const Graph& g, const std::vector<ir::NodeId>& ids) {
  Strings out;
  for (ir::NodeId n : ids) out.push_back(g.nodes[n].name);
  return out;
}

Strings names_of_values(const Graph& g, const std::vector<ir::ValueId>& ids) {
  Strings out;
  for (ir::ValueId v : ids) out.push_back(g.values[v].name);
  return out;
}

Strings names_of_params(const Graph& g, const Ints& ids) {
  Strings out;
  for (int p : ids) out.push_back(g.params[p].name);
  return out;
}

// "x:model_input", "h0:edge@0", "w:tie@0"
Strings inputs_of(const Graph& g, const StagePlan& sp) {
  Strings out;
  for (const auto& in : sp.inputs) {
    std::string s = g.values[in.value].name + ":";
    switch (in.source) {
      case InputSource::ModelInput: s += "model_input"; break;
      case InputSource::Edge: s += "edge"; break;
      case InputSource::Tie: s += "tie"; break;
    }
    if (in.source != InputSource::ModelInput || in.from_stage != -1) s += "@" + std::to_string(in.from_stage);
    out.push_back(s);
  }
  return out;
}

// "h0 0->1,2" ("param" appended for transmitted tie references)
Strings edges_of(const Graph& g, const Partition& p) {
  Strings out;
  for (const auto& e : p.edges) {
    std::string s = g.values[e.value].name + " " + std::to_string(e.producer) + "->";
    for (size_t i = 0; i < e.consumers.size(); ++i) s += (i ? "," : "") + std::to_string(e.consumers[i]);
    if (e.is_param) s += " param";
    out.push_back(s);
  }
  return out;
}

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

Ints positions(const std::vector<Cut>& cuts) {
  Ints out;
  for (const auto& c : cuts) out.push_back(c.position);
  return out;
}

// Resolves expecting a ppc::Error; returns its message.
std::string resolve_error(const Graph& g, const spec::SplitSpec& s, const JsonDocument* doc = nullptr) {
  try {
    resolve_split_points(g, consts(g), s, doc);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected resolve_split_points to fail";
  return "";
}

Cut cut_at(int position) { return Cut{position, "cut at " + std::to_string(position), ""}; }

// ----------------------------------------------------------- constant nodes

TEST(ConstantLike, Classification) {
  Graph g = parse_graph(R"(
input x:float32[batch,4]
param w:float32[4,4]
param b:float32[4]
node c0 Constant const : -> k:float32[1]
node t0 Transpose : w -> wt:float32[4,4]
node t1 Mul : wt k -> wk:float32[4,4]
node t2 Add : wk b -> wkb:float32[4,4]
node u0 MatMul : x wkb -> h:float32[batch,4]
node u1 Relu : h -> h2:float32[batch,4]
node u2 Add : x b -> xb:float32[batch,4]
node r0 RandomNormal rand : -> rn:float32[4]
node r1 RandomNormalLike rand : w -> rn2:float32[4,4]
node r2 Add : rn2 b -> rr:float32[4,4]
node r3 Add : rn b -> rr3:float32[4]
node c1 Constant const rand : -> kr:float32[1]
node s0 If subgraph : w -> sg:float32[4]
node s1 Add : sg b -> sgb:float32[4]
node e0 Range : _ _ -> er:int64[4]
node e1 Shape : -> es:int64[2]
node p0 Add : b b -> bb:float32[4]
output h2
)");
  auto c = consts(g);
  auto is_const = [&](const std::string& n) { return bool(c[g.find_node(n)]); };
  ASSERT_EQ(c.size(), g.nodes.size());
  EXPECT_TRUE(is_const("c0"));   // a constant source
  EXPECT_TRUE(is_const("t0"));   // params only
  EXPECT_TRUE(is_const("t1"));   // chain: param-derived and a constant
  EXPECT_TRUE(is_const("t2"));
  EXPECT_TRUE(is_const("p0"));   // the same param twice
  EXPECT_FALSE(is_const("u0"));  // touches a model input (through x)
  EXPECT_FALSE(is_const("u1"));  // downstream of a model input
  EXPECT_FALSE(is_const("u2"));  // a model input and a param
  EXPECT_FALSE(is_const("r0"));  // random, no inputs
  EXPECT_FALSE(is_const("r1"));  // random, even from params only
  EXPECT_FALSE(is_const("r2"));  // downstream of random
  EXPECT_FALSE(is_const("r3"));
  EXPECT_FALSE(is_const("c1"));  // a random constant source is random
  EXPECT_FALSE(is_const("s0"));  // has a subgraph
  EXPECT_FALSE(is_const("s1"));  // downstream of a subgraph node
  EXPECT_FALSE(is_const("e0"));  // only omitted inputs, not a declared constant
  EXPECT_FALSE(is_const("e1"));  // no inputs at all, not a declared constant
}

TEST(ConstantLike, NodeWithoutOutputsIsNotConstant) {
  Graph g = parse_graph(
      "param w:float32[2]\n"
      "node sink Print : w ->\n");
  EXPECT_FALSE(consts(g)[0]);
}

TEST(ConstantLike, Closure) {
  Graph g = parse_graph(R"(
input x:float32[4]
param w:float32[4]
param b:float32[4]
node c0 Constant const : -> k:float32[4]
node unrelated Neg : b -> nb:float32[4]
node t0 Mul : w k -> wk:float32[4]
node t1 Add : wk b -> wkb:float32[4]
node u0 Add : x wkb -> y:float32[4]
node u1 Add : y nb -> z:float32[4]
output z
)");
  auto c = consts(g);
  EXPECT_EQ(names_of_nodes(g, constant_closure(g, c, {g.find_value("wkb")})),
            (Strings{"c0", "t0", "t1"}));
  EXPECT_EQ(names_of_nodes(g, constant_closure(g, c, {g.find_value("nb"), g.find_value("k")})),
            (Strings{"c0", "unrelated"}));
  // Non-constant producers, params and model inputs contribute nothing.
  EXPECT_TRUE(constant_closure(g, c, {g.find_value("y"), g.find_value("x"), g.find_value("w")}).empty());
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
  auto cuts = resolve_split_points(g, c, spec_of({node_point("l0", true), value_point("h1"), module_point("layer2", false)}),
                                   nullptr);
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
  EXPECT_EQ(resolve_error(g, spec_of({module_point("layer9", true)})), "unknown module 'layer9' (did you mean 'layer0'?)");
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
  JsonDocument doc = JsonDocument::parse("{\"version\": 1,\n \"split_points\": [{\"module\": \"inner\"}]}\n", "spec.json");
  EXPECT_EQ(resolve_error(g, spec::parse_split_spec(doc), &doc),
            "spec.json:2:19: module 'inner' is inside control-flow node 'prim::If' (prim::If)" + tail);
}

// ------------------------------------------------------------------ balance

// Brute force: the best max piece sum over all ways to cut `costs` into
// exactly `parts` non-empty contiguous pieces.
double brute_force(const std::vector<double>& costs, int parts) {
  const int n = static_cast<int>(costs.size());
  double best = std::numeric_limits<double>::infinity();
  // Bit i-1 set = a cut before element i (1 <= i < n).
  for (unsigned mask = 0; mask < (1u << (n - 1)); ++mask) {
    if (__builtin_popcount(mask) != parts - 1) continue;
    double worst = 0.0, acc = 0.0;
    for (int i = 0; i < n; ++i) {
      if (i > 0 && (mask >> (i - 1) & 1u)) {
        worst = std::max(worst, acc);
        acc = 0.0;
      }
      acc += costs[i];
    }
    worst = std::max(worst, acc);
    best = std::min(best, worst);
  }
  return best;
}

// Checks starts describe exactly `parts` non-empty pieces; returns their max sum.
double check_pieces(const std::vector<double>& costs, int parts, const Ints& starts) {
  EXPECT_EQ(static_cast<int>(starts.size()), parts - 1);
  int prev = 0;
  double worst = 0.0;
  for (size_t k = 0; k <= starts.size(); ++k) {
    int end = k < starts.size() ? starts[k] : static_cast<int>(costs.size());
    EXPECT_GT(end, prev) << "empty piece " << k;
    double acc = 0.0;
    for (int i = prev; i < end; ++i) acc += costs[i];
    worst = std::max(worst, acc);
    prev = end;
  }
  return worst;
}

TEST(MinMaxPartition, SmallExamples) {
  EXPECT_EQ(min_max_partition({5}, 1), Ints{});
  EXPECT_EQ(min_max_partition({1, 2, 3}, 1), Ints{});
  EXPECT_EQ(min_max_partition({1, 1, 1, 1}, 2), (Ints{2}));
  EXPECT_EQ(min_max_partition({1, 2, 3}, 3), (Ints{1, 2}));
  EXPECT_EQ(min_max_partition({9, 1, 1, 1}, 2), (Ints{1}));
  EXPECT_EQ(min_max_partition({1, 1, 1, 9}, 2), (Ints{3}));
  // All zero: still exactly `parts` non-empty pieces.
  std::vector<double> zeros(5, 0.0);
  Ints s = min_max_partition(zeros, 3);
  EXPECT_DOUBLE_EQ(check_pieces(zeros, 3, s), 0.0);
}

TEST(MinMaxPartition, EqualsBruteForceOnRandomArrays) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> small(0, 9);
  std::uniform_real_distribution<double> real(0.0, 1000.0);
  int cases = 0;
  for (int round = 0; round < 300; ++round) {
    for (int n = 1; n <= 10; ++n) {
      std::vector<double> costs(n);
      const int flavour = round % 3;
      for (auto& x : costs) {
        if (flavour == 0) x = small(rng);                       // integers with ties and zeros
        else if (flavour == 1) x = real(rng);                   // reals
        else x = (small(rng) < 3 ? 0.0 : small(rng) * 1e6);      // many zeros, large values
      }
      for (int parts = 1; parts <= n; ++parts) {
        Ints starts = min_max_partition(costs, parts);
        double got = check_pieces(costs, parts, starts);
        double want = brute_force(costs, parts);
        ASSERT_NEAR(got, want, 1e-9 * std::max(1.0, want))
            << "n=" << n << " parts=" << parts << " round=" << round;
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 300 * 55);
}

TEST(MinMaxPartition, TinyCostsAreStillBalanced) {
  // Costs far below 1 must be balanced as well as large ones.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> small(1, 9);
  for (double scale : {1e-3, 1e-9, 1e-15}) {
    for (int round = 0; round < 50; ++round) {
      const int n = 2 + round % 9;
      std::vector<double> costs(n);
      for (auto& x : costs) x = small(rng) * scale;
      for (int parts = 1; parts <= n; ++parts) {
        double got = check_pieces(costs, parts, min_max_partition(costs, parts));
        double want = brute_force(costs, parts);
        ASSERT_NEAR(got, want, 1e-9 * want) << "scale=" << scale << " n=" << n << " parts=" << parts;
      }
    }
  }
}

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

// The cuts of the exact partition balancing `balance` alone (communication free).
std::vector<Cut> auto_cuts(const Graph& g, const std::vector<bool>& const_like, int stages, const std::string& balance) {
  CostModelOptions o;
  o.balance = balance;
  o.link_bytes_per_second = 0;
  return auto_partition(g, const_like, stages, o).cuts;
}

TEST(AutoCuts, BalancesPlaceableNodes) {
  Graph g = parse_graph(R"(
input x:float32[4]
node c0 Constant const : -> k:float32[4]
node a Add flops=10 : x k -> h0:float32[4]
node b Relu flops=10 : h0 -> h1:float32[4]
node c Relu flops=10 : h1 -> h2:float32[4]
node d Relu flops=10 : h2 -> y:float32[4]
output y
)");
  auto c = consts(g);
  auto cuts = auto_cuts(g, c, 2, "flops");
  EXPECT_EQ(positions(cuts), (Ints{3}));  // before c: 20 | 20
  EXPECT_EQ(cuts[0].label, "auto cut before node 'c'");
  EXPECT_EQ(cuts[0].pointer, "");
  EXPECT_EQ(positions(auto_cuts(g, c, 4, "uniform")), (Ints{2, 3, 4}));
  EXPECT_TRUE(auto_cuts(g, c, 1, "flops").empty());
  try {
    auto_cuts(g, c, 5, "flops");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "'auto.stages' is 5 but the graph has only 4 nodes to place (constants aside)");
  }
}

TEST(AutoCuts, SkewedCosts) {
  Graph g = parse_graph(R"(
input x:float32[4]
node a Relu flops=90 : x -> h0:float32[4]
node b Relu flops=5 : h0 -> h1:float32[4]
node c Relu flops=5 : h1 -> h2:float32[4]
node d Relu flops=50 : h2 -> h3:float32[4]
node e Relu flops=50 : h3 -> y:float32[4]
output y
)");
  // The only 3-way split with max 90 is [90] [5 5 50] [50]; every other
  // split has a piece of 95 or more.
  auto cuts = auto_cuts(g, consts(g), 3, "flops");
  EXPECT_EQ(positions(cuts), (Ints{1, 4}));
}

// --------------------------------------------------------------- cost model

// a -> b -> c -> d with a skip a -> d; 400-byte activations per sample.
const char* kCostChain = R"(
input x:float32[batch,100]
param w:float32[100,100]
param v:float32[100,100]
node a MatMul @blocks.0.fc flops=1000 : x w -> h0:float32[batch,100]
node b Relu @blocks.0.act flops=1000 : h0 -> h1:float32[batch,100]
node c MatMul @blocks.1.fc flops=1000 : h1 v -> h2:float32[batch,100]
node d Add @blocks.1.add flops=1000 : h2 h0 -> y:float32[batch,100]
output y
)";

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
  EXPECT_EQ(m.problem.compute, (std::vector<double>{1, 1, 5, 5}));  // by FLOP share, per sample
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
    EXPECT_EQ(std::string(e.what()), "prof.json: stage 1: covers nodes 2..3 of this model, expected to start at node 1 "
                                     "(profile a split of this same model)");
  }
  // Memory cap: each MatMul's weight costs 40000 x 4 bytes (Adam); a cap
  // that fits one weight per stage forces them apart.
  CostModelOptions c;
  c.link_bytes_per_second = 0;
  c.memory_cap_bytes = 200000;
  AutoPartition ap = auto_partition(g, consts(g), 2, c);
  for (double mem : ap.eval.stage_memory) EXPECT_LE(mem, 200000);
  c.memory_cap_bytes = 1000;
  try {
    auto_partition(g, consts(g), 2, c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no split into 2 stages fits 'auto.memory_cap_mib'"), std::string::npos) << e.what();
  }
}

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
  so.message_ms = 0.5;
  EXPECT_GT(predict_step_ms(m, {2}, so), 10.0 + 2 * 0.5 - 1e-9);
  // The tensors crossing a cut travel as one message (pprun packs them):
  // [a b | c d] sends h1 and h0 (read by d), which costs what h1 alone does,
  // and less than a message of twice the latency.
  Graph one = parse_graph(std::string(kCostChain).replace(std::string(kCostChain).find("h2 h0 ->"), 8, "h2 h2 ->"));
  CostModel m1 = build_cost_model(one, consts(one), o, 2);
  StepOptions twice = so;
  twice.message_ms = 1.0;
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {2}, so), predict_step_ms(m1, {2}, so));
  EXPECT_LT(predict_step_ms(m, {2}, so), predict_step_ms(m1, {2}, twice));
  // The step's time outside the pipeline (batch loading, optimizer) adds to
  // every split alike.
  StepOptions loaded = so;
  loaded.overhead_ms = 2.5;
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {2}, loaded), predict_step_ms(m, {2}, so) + 2.5);
  EXPECT_DOUBLE_EQ(predict_step_ms(m, {1}, loaded), predict_step_ms(m, {1}, so) + 2.5);
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
  so.message_ms = 0.25;
  StepOptions slower = so;
  slower.message_ms = 1.25;
  so.message_bytes_per_second = 1.6e6;
  EXPECT_NEAR(predict_step_ms(m2, {2}, so), predict_step_ms(m2, {2}, slower), 1e-9);
  // [a | b c d] sends only h0: 0.5 ms more per message.
  EXPECT_NEAR(predict_step_ms(m2, {1}, so), predict_step_ms(m2, {1}, [&] {
                StepOptions s = slower;
                s.message_ms = 0.75;
                return s;
              }()), 1e-9);
  // The time a message takes its two ranks lengthens every F and B that sends
  // or receives one: GPipe with one micro-batch runs F0 F1 B1 B0 in a row.
  StepOptions one = so;
  one.schedule = "gpipe";
  one.chunks = 1;
  StepOptions busy = one;
  busy.message_cpu_ms = 0.5;
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
  so.message_ms = 0.1;
  so.message_bytes_per_second = 8e6;
  so.message_cpu_ms = 0.05;
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
  so.message_ms = 0.2;
  so.message_cpu_ms = 0.3;
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

namespace {

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
  so.message_ms = 0.05;
  so.message_bytes_per_second = 4e6;
  so.message_cpu_ms = 0.2;
  so.message_cpu_bytes_per_second = 1e6;
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

}  // namespace

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
  so.message_ms = 3.0;
  CostModel m = build_cost_model(g, consts(g), o, 2);
  double fastest = 1e300;
  for (int c = 1; c < 4; ++c) fastest = std::min(fastest, predict_step_ms(m, {c}, so));
  AutoPartition by_step = auto_partition_by_step(g, consts(g), 2, o, so);
  EXPECT_DOUBLE_EQ(by_step.predicted_step_ms, fastest);
  EXPECT_LT(by_step.predicted_step_ms, predict_step_ms(m, plain.starts, so));  // here it moved the cut
  // The reported costs are the uncharged model's.
  EXPECT_EQ(by_step.eval.stage_costs, evaluate(m, by_step.starts).stage_costs);
  // A gain below min_gain does not move it off the min-bottleneck split.
  const double gain = 1 - fastest / predict_step_ms(m, plain.starts, so);
  ASSERT_GT(gain, 0.01);
  so.min_gain = gain * 1.01;
  AutoPartition balanced = auto_partition_by_step(g, consts(g), 2, o, so);
  EXPECT_EQ(balanced.starts, plain.starts);
  EXPECT_DOUBLE_EQ(balanced.predicted_step_ms, predict_step_ms(m, plain.starts, so));
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

const char* kTied = R"(
graph tied
input x:float32[batch,4]
param w:float32[4,4]
param v:float32[4,4]
node n0 MatMul @a : x w -> h0:float32[batch,4]
node n1 MatMul @b : h0 v -> h1:float32[batch,4]
node n2 MatMul @c : h1 w -> y:float32[batch,4]
output y
)";

TEST(Ties, SharedParamReplicated) {
  Graph g = parse_graph(kTied);
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(1), cut_at(2)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  const TieGroup& t = p.ties[0];
  EXPECT_EQ(t.name, "tie0");
  EXPECT_EQ(t.detected_by, "shared");
  EXPECT_EQ(t.policy, spec::TiePolicy::Replicate);
  EXPECT_EQ(t.owner, 0);
  ASSERT_EQ(t.members.size(), 1u);
  EXPECT_EQ(g.params[t.members[0].param].name, "w");
  EXPECT_EQ(t.members[0].relation, "identity");
  EXPECT_EQ(t.members[0].stages, (Ints{0, 2}));
  // Replicated: both holders store it; nothing is sent.
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"w"}));
  EXPECT_EQ(names_of_params(g, p.stages[1].params), (Strings{"v"}));
  EXPECT_EQ(names_of_params(g, p.stages[2].params), (Strings{"w"}));
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2"}));
  EXPECT_TRUE(p.notes.empty());
}

TEST(Ties, NoTieWhenOneStageHoldsAParam) {
  Graph g = parse_graph(kTied);
  // One stage: w is read twice, but by one stage only.
  Partition whole = partition(g, consts(g), {}, TieOptions{});
  EXPECT_TRUE(whole.ties.empty());
  EXPECT_EQ(names_of_params(g, whole.stages[0].params), (Strings{"w", "v"}));
  // Cut before n2: n0 (stage 0) and n2 (stage 1) both read w.
  Partition q = partition(g, consts(g), {cut_at(2)}, TieOptions{});
  ASSERT_EQ(q.ties.size(), 1u);
  EXPECT_EQ(q.ties[0].members[0].stages, (Ints{0, 1}));
  // Cut before n1: w is read by stages 0 and 1 again (n2 is in stage 1).
  Partition r = partition(g, consts(g), {cut_at(1)}, TieOptions{});
  ASSERT_EQ(r.ties.size(), 1u);
  EXPECT_EQ(r.ties[0].members[0].stages, (Ints{0, 1}));
}

TEST(Ties, TransmitPolicyFromSpecGroup) {
  Graph g = parse_graph(kTied);
  auto c = consts(g);
  TieOptions opts;
  opts.groups.push_back(spec::TieGroupSpec{{"w"}, spec::TiePolicy::Transmit, ""});
  Partition p = partition(g, c, {cut_at(1), cut_at(2)}, opts);
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  EXPECT_EQ(p.ties[0].policy, spec::TiePolicy::Transmit);
  EXPECT_EQ(p.ties[0].detected_by, "spec");
  EXPECT_EQ(p.ties[0].owner, 0);
  // The owner stores it; stage 2 receives it from the owner.
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"w"}));
  EXPECT_EQ(names_of_params(g, p.stages[2].params), Strings{});
  EXPECT_EQ(p.stages[2].param_bytes, 0);
  EXPECT_EQ(inputs_of(g, p.stages[2]), (Strings{"w:tie@0", "h1:edge@1"}));
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2", "w 0->2 param"}));
  EXPECT_EQ(names_of_values(g, p.stages[0].outputs), (Strings{"h0", "w"}));
  EXPECT_TRUE(p.stages[2].derived.empty());  // the reference itself, nothing to rebuild
}

TEST(Ties, TransmitAsDefaultPolicy) {
  Graph g = parse_graph(kTied);
  auto c = consts(g);
  TieOptions opts;
  opts.default_policy = spec::TiePolicy::Transmit;
  Partition p = partition(g, c, {cut_at(1), cut_at(2)}, opts);
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  EXPECT_EQ(p.ties[0].detected_by, "shared");
  EXPECT_EQ(p.ties[0].policy, spec::TiePolicy::Transmit);
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2", "w 0->2 param"}));
  // A spec group's own policy beats the default.
  opts.groups.push_back(spec::TieGroupSpec{{"w"}, spec::TiePolicy::Replicate, ""});
  Partition q = partition(g, c, {cut_at(1), cut_at(2)}, opts);
  ASSERT_EQ(q.ties.size(), 1u);
  EXPECT_EQ(q.ties[0].policy, spec::TiePolicy::Replicate);
  EXPECT_EQ(edges_of(g, q), (Strings{"h0 0->1", "h1 1->2"}));
}

const char* kFolded = R"(
graph folded
input x:float32[batch,4]
param a:float32[4,8]
param b:float32[8,4]
node n0 MatMul @embed : x a -> h:float32[batch,8]
node n1 MatMul @head : h b -> y:float32[batch,4]
output y
)";

Graph folded_graph(bool uniform = false) {
  Graph g = parse_graph(kFolded);
  g.params[0].content_hash = "hash-a";
  g.params[0].transpose_hash = "hash-aT";
  g.params[1].content_hash = "hash-aT";  // b == a^T
  g.params[1].transpose_hash = "hash-a";
  g.params[0].is_uniform = uniform;
  g.params[1].is_uniform = uniform;
  return g;
}

TEST(Ties, FoldedCandidates) {
  Graph g = folded_graph();
  auto cands = folded_tie_candidates(g);
  ASSERT_EQ(cands.size(), 1u);  // one pair, found once even though both directions match
  EXPECT_EQ(cands[0].a, 0);
  EXPECT_EQ(cands[0].b, 1);
  EXPECT_EQ(cands[0].relation, "transpose");
}

TEST(Ties, FoldedCopyIsOnlyANoteWhenTheSpecOptsOut) {
  Graph g = folded_graph();
  auto c = consts(g);
  TieOptions opts;
  opts.detect_folded = false;
  Partition p = partition(g, c, {cut_at(1)}, opts);
  EXPECT_TRUE(p.ties.empty());
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0],
            "not tied: 'b' is the transpose of 'a' (a constant-folded copy?), but ties.detect_folded is false: "
            "the two train apart");
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"a"}));
  EXPECT_EQ(names_of_params(g, p.stages[1].params), (Strings{"b"}));
}

TEST(Ties, FoldedCopyBecomesAGroupByDefault) {
  // The safe default: a trainable initializer that is the transpose of
  // another is the same PyTorch parameter, folded; training the two apart
  // would train another model than the user's.
  Graph g = folded_graph();
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(1)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  const TieGroup& t = p.ties[0];
  EXPECT_EQ(t.detected_by, "content");
  EXPECT_EQ(t.owner, 0);
  ASSERT_EQ(t.members.size(), 2u);
  EXPECT_EQ(g.params[t.members[0].param].name, "a");
  EXPECT_EQ(t.members[0].relation, "identity");
  EXPECT_EQ(t.members[0].stages, (Ints{0}));
  EXPECT_EQ(g.params[t.members[1].param].name, "b");
  EXPECT_EQ(t.members[1].relation, "transpose");
  EXPECT_EQ(t.members[1].stages, (Ints{1}));
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0],
            "tie by content: 'b' is the transpose of 'a' (a constant-folded copy); tied (\"ties\": "
            "{\"detect_folded\": false} trains them apart)");
  // Replicate (the default): each stage keeps its own stored tensor.
  EXPECT_EQ(names_of_params(g, p.stages[1].params), (Strings{"b"}));
  EXPECT_EQ(edges_of(g, p), (Strings{"h 0->1"}));
}

TEST(Ties, FoldedTransmitRebuildsTheTranspose) {
  Graph g = folded_graph();
  auto c = consts(g);
  TieOptions opts;
  opts.detect_folded = true;
  opts.default_policy = spec::TiePolicy::Transmit;
  Partition p = partition(g, c, {cut_at(1)}, opts);
  EXPECT_EQ(verify_partition(g, c, p), "");
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"a"}));
  EXPECT_TRUE(p.stages[1].params.empty());
  EXPECT_EQ(inputs_of(g, p.stages[1]), (Strings{"a:tie@0", "h:edge@0"}));
  ASSERT_EQ(p.stages[1].derived.size(), 1u);
  EXPECT_EQ(g.params[p.stages[1].derived[0].param].name, "b");
  EXPECT_EQ(g.params[p.stages[1].derived[0].reference].name, "a");
  EXPECT_EQ(p.stages[1].derived[0].relation, "transpose");
  EXPECT_EQ(edges_of(g, p), (Strings{"h 0->1", "a 0->1 param"}));
}

TEST(Ties, UniformParamsAreNeverCandidates) {
  Graph g = folded_graph(/*uniform=*/true);
  EXPECT_TRUE(folded_tie_candidates(g).empty());
  TieOptions opts;
  opts.detect_folded = true;
  Partition p = partition(g, consts(g), {cut_at(1)}, opts);
  EXPECT_TRUE(p.ties.empty());
  EXPECT_TRUE(p.notes.empty());

  // One uniform side is enough to rule the pair out.
  Graph h = folded_graph();
  h.params[1].is_uniform = true;
  EXPECT_TRUE(folded_tie_candidates(h).empty());
}

TEST(Ties, NonFloatOrHashlessParamsAreNeverCandidates) {
  Graph g = folded_graph();
  g.params[1].is_float = false;
  EXPECT_TRUE(folded_tie_candidates(g).empty());
  Graph h = folded_graph();
  h.params[1].content_hash.clear();  // b has no fingerprints at all
  h.params[1].transpose_hash.clear();
  EXPECT_TRUE(folded_tie_candidates(h).empty());
}

TEST(Ties, SpecGroupWithUnknownMember) {
  Graph g = parse_graph(kTied);
  TieOptions opts;
  opts.groups.push_back(spec::TieGroupSpec{{"w", "vv"}, std::nullopt, ""});
  try {
    partition(g, consts(g), {cut_at(1)}, opts);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "tie group member 'vv' is not a parameter of the model (did you mean 'v'?)");
  }
  // A value that exists but is not a param.
  TieOptions opts2;
  opts2.groups.push_back(spec::TieGroupSpec{{"h0"}, std::nullopt, ""});
  EXPECT_THROW(partition(g, consts(g), {cut_at(1)}, opts2), Error);
}

TEST(Ties, SpecGroupErrorIsLocated) {
  Graph g = parse_graph(kTied);
  JsonDocument doc = JsonDocument::parse(
      "{\"version\": 1, \"split_points\": [{\"node\": \"n0\"}],\n"
      " \"ties\": {\"groups\": [\n"
      "   [\"w\", \"wx\"]]}}\n",
      "spec.json");
  spec::SplitSpec s = spec::parse_split_spec(doc);
  TieOptions opts;
  opts.groups = s.ties.groups;
  opts.doc = &doc;
  try {
    partition(g, consts(g), {cut_at(1)}, opts);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "spec.json:3:4: tie group member 'wx' is not a parameter of the model (did you mean 'w'?)");
  }
}

TEST(Ties, SpecGroupJoinsUnrelatedShapesOnlyWhenCompatible) {
  Graph g = parse_graph(R"(
input x:float32[4]
param p:float32[4,4]
param q:float32[4,4]
param r:float32[4,8]
node a MatMul : x p -> h:float32[4]
node b MatMul : h q -> y:float32[4]
node c MatMul : y r -> z:float32[8]
output z
)");
  TieOptions ok;
  ok.groups.push_back(spec::TieGroupSpec{{"p", "q"}, std::nullopt, ""});
  Partition part = partition(g, consts(g), {cut_at(1)}, ok);
  ASSERT_EQ(part.ties.size(), 1u);
  EXPECT_EQ(part.ties[0].detected_by, "spec");
  ASSERT_EQ(part.ties[0].members.size(), 2u);
  EXPECT_EQ(g.params[part.ties[0].members[0].param].name, "p");
  EXPECT_EQ(part.ties[0].members[0].stages, (Ints{0}));
  EXPECT_EQ(g.params[part.ties[0].members[1].param].name, "q");
  EXPECT_EQ(part.ties[0].members[1].relation, "identity");
  EXPECT_EQ(part.ties[0].members[1].stages, (Ints{1}));

  TieOptions bad;
  bad.groups.push_back(spec::TieGroupSpec{{"p", "r"}, std::nullopt, ""});
  try {
    partition(g, consts(g), {cut_at(1)}, bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "tie group member 'r' [4,8] is neither equal to 'p' [4,4] nor its transpose");
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
