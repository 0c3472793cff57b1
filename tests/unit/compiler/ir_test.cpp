#include "compiler/ir/graph.h"
#include "compiler/ir/text.h"

#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ppc::ir {
namespace {

std::vector<std::string> node_names(const Graph& g) {
  std::vector<std::string> out;
  for (const auto& n : g.nodes) out.push_back(n.name);
  return out;
}

// Expects parse_graph(text) to throw; returns the message.
std::string parse_error(const std::string& text) {
  try {
    parse_graph(text);
  } catch (const std::runtime_error& e) { return e.what(); }
  ADD_FAILURE() << "expected a parse error for:\n" << text;
  return "";
}

// ------------------------------------------------------------- dtypes, shapes

TEST(DType, NamesRoundTrip) {
  const std::vector<std::pair<DType, std::string>> all = {
      {DType::Undefined, "undefined"}, {DType::Float32, "float32"},   {DType::Float64, "float64"},
      {DType::Float16, "float16"},     {DType::BFloat16, "bfloat16"}, {DType::Int64, "int64"},
      {DType::Int32, "int32"},         {DType::Int16, "int16"},       {DType::Int8, "int8"},
      {DType::UInt8, "uint8"},         {DType::Bool, "bool"},         {DType::String, "string"},
      {DType::Other, "other"},
  };
  for (const auto& [t, name] : all) {
    EXPECT_EQ(dtype_name(t), name);
    auto back = dtype_from_name(name);
    ASSERT_TRUE(back.has_value()) << name;
    EXPECT_EQ(*back, t) << name;
  }
  EXPECT_FALSE(dtype_from_name("float").has_value());
  EXPECT_FALSE(dtype_from_name("Float32").has_value());
  EXPECT_FALSE(dtype_from_name("").has_value());
}

TEST(DType, SizesAndFloatness) {
  EXPECT_EQ(dtype_size(DType::Float32), 4);
  EXPECT_EQ(dtype_size(DType::Float64), 8);
  EXPECT_EQ(dtype_size(DType::Float16), 2);
  EXPECT_EQ(dtype_size(DType::BFloat16), 2);
  EXPECT_EQ(dtype_size(DType::Int64), 8);
  EXPECT_EQ(dtype_size(DType::Int32), 4);
  EXPECT_EQ(dtype_size(DType::Int16), 2);
  EXPECT_EQ(dtype_size(DType::Int8), 1);
  EXPECT_EQ(dtype_size(DType::UInt8), 1);
  EXPECT_EQ(dtype_size(DType::Bool), 1);
  EXPECT_EQ(dtype_size(DType::String), 0);
  EXPECT_EQ(dtype_size(DType::Other), 0);
  EXPECT_EQ(dtype_size(DType::Undefined), 0);

  EXPECT_TRUE(dtype_is_float(DType::Float32));
  EXPECT_TRUE(dtype_is_float(DType::Float64));
  EXPECT_TRUE(dtype_is_float(DType::Float16));
  EXPECT_TRUE(dtype_is_float(DType::BFloat16));
  EXPECT_FALSE(dtype_is_float(DType::Int64));
  EXPECT_FALSE(dtype_is_float(DType::Bool));
  EXPECT_FALSE(dtype_is_float(DType::UInt8));
  EXPECT_FALSE(dtype_is_float(DType::Other));
  EXPECT_FALSE(dtype_is_float(DType::Undefined));
}

TEST(Shape, Str) {
  EXPECT_EQ(Shape::unranked().str(), "?");
  EXPECT_EQ(Shape::of({}).str(), "[]");
  EXPECT_EQ(Shape::of({Dim::symbolic("batch"), Dim::known(512)}).str(), "[batch,512]");
  EXPECT_EQ(Shape::of({Dim::unknown(), Dim::known(3)}).str(), "[?,3]");
  EXPECT_EQ(Shape::of({Dim::known(0)}).str(), "[0]");
  EXPECT_EQ(Shape::of({Dim::known(2), Dim::known(3), Dim::known(4)}).str(), "[2,3,4]");
}

TEST(Shape, Numel) {
  EXPECT_DOUBLE_EQ(Shape::of({}).numel(), 1.0);  // a scalar has one element
  EXPECT_DOUBLE_EQ(Shape::of({Dim::known(2), Dim::known(3), Dim::known(4)}).numel(), 24.0);
  EXPECT_DOUBLE_EQ(Shape::of({Dim::known(2), Dim::known(0)}).numel(), 0.0);
  // Non-known dims count as the symbolic value, 1 by default.
  Shape s = Shape::of({Dim::symbolic("batch"), Dim::known(8), Dim::unknown()});
  EXPECT_DOUBLE_EQ(s.numel(), 8.0);
  EXPECT_DOUBLE_EQ(s.numel(4.0), 4.0 * 8.0 * 4.0);
  EXPECT_DOUBLE_EQ(Shape::unranked().numel(), 1.0);
  EXPECT_DOUBLE_EQ(Shape::unranked().numel(7.0), 7.0);
}

TEST(Shape, DimPredicatesAndEquality) {
  EXPECT_TRUE(Dim::known(0).is_known());
  EXPECT_FALSE(Dim::known(0).is_symbolic());
  EXPECT_TRUE(Dim::symbolic("b").is_symbolic());
  EXPECT_FALSE(Dim::symbolic("b").is_known());
  EXPECT_FALSE(Dim::unknown().is_known());
  EXPECT_FALSE(Dim::unknown().is_symbolic());
  EXPECT_EQ(Shape::of({Dim::known(3)}), Shape::of({Dim::known(3)}));
  EXPECT_FALSE(Shape::of({Dim::known(3)}) == Shape::of({Dim::known(4)}));
  EXPECT_FALSE(Shape::of({Dim::symbolic("a")}) == Shape::of({Dim::symbolic("b")}));
  EXPECT_FALSE(Shape::of({}) == Shape::unranked());
}

// ------------------------------------------------------------------ builder

TEST(Graph, BuilderLinksProducersAndConsumers) {
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({Dim::symbolic("b"), Dim::known(4)}));
  ValueId w = g.add_param("w", DType::Float32, Shape::of({Dim::known(4), Dim::known(4)}), 64);
  ValueId h = g.add_value("h", DType::Float32);
  ValueId y = g.add_value("y", DType::Float32);
  NodeId n0 = g.add_node(Node{"n0", "MatMul", "l0", {x, w}, {h}});
  NodeId n1 = g.add_node(Node{"n1", "Add", "", {h, h}, {y}});
  g.mark_output(y);

  EXPECT_EQ(g.values[x].graph_input, 0);
  EXPECT_EQ(g.values[w].param, 0);
  EXPECT_EQ(g.params[0].name, "w");
  EXPECT_EQ(g.params[0].bytes, 64);
  EXPECT_EQ(g.params[0].data_source, "w");
  EXPECT_TRUE(g.params[0].is_float);
  EXPECT_EQ(g.values[h].producer, n0);
  EXPECT_EQ(g.values[h].consumers, (std::vector<NodeId>{n1, n1}));  // one entry per use
  EXPECT_EQ(g.values[x].consumers, (std::vector<NodeId>{n0}));
  EXPECT_TRUE(g.values[y].is_graph_output);
  EXPECT_EQ(g.outputs, (std::vector<ValueId>{y}));
  EXPECT_EQ(g.find_value("h"), h);
  EXPECT_EQ(g.find_value("nope"), kNone);
  EXPECT_EQ(g.find_node("n1"), n1);
  EXPECT_EQ(g.find_node("nope"), kNone);
  EXPECT_EQ(g.verify(), "");

  ValueId k = g.add_param("k", DType::Int64, Shape::of({Dim::known(1)}), 8);
  EXPECT_FALSE(g.params[g.values[k].param].is_float);
}

TEST(Graph, BuilderRejectsMisuse) {
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({}));
  ValueId y = g.add_value("y");
  EXPECT_THROW(g.add_value("x"), std::logic_error);
  EXPECT_THROW(g.add_value(""), std::logic_error);
  g.add_node(Node{"n0", "Neg", "", {x}, {y}});
  EXPECT_THROW(g.add_node(Node{"n0", "Neg", "", {x}, {g.add_value("z")}}), std::logic_error);  // duplicate name
  EXPECT_THROW(g.add_node(Node{"n1", "Neg", "", {x}, {y}}), std::logic_error);                 // y defined twice
  EXPECT_THROW(g.add_node(Node{"n2", "Neg", "", {x}, {x}}), std::logic_error);                 // x is an input
  EXPECT_THROW(g.add_node(Node{"n3", "Neg", "", {99}, {}}), std::logic_error);                 // bad input id
  EXPECT_THROW(g.add_node(Node{"", "Neg", "", {x}, {}}), std::logic_error);
}

// --------------------------------------------------------------------- text

const char* kMlp = R"(graph mlp
input x:float32[batch,4]
input ids:int64[batch]
param w0:float32[4,8]
param b0:float32[8]
param w1:float32[8,2]
node c0 Constant const : -> k:int64[1]
node n0 MatMul @layer0.lin flops=64 : x w0 -> h0:float32[batch,8]
node n1 Add @layer0.lin : h0 b0 -> h1:float32[batch,8]
node n2 Dropout @layer0.drop rand : h1 -> h2:float32[batch,8] mask:bool[batch,8]
node n3 If @layer1 subgraph : ids -> s:float32[]
node n4 MatMul @layer1.lin flops=32.5 : h2 w1 -> y:float32[batch,2]
node n5 Reshape : y k -> z:float32[?,?]
node n6 Clip : z _ s -> out:float32?
output out
output mask
)";

TEST(Text, ParsesEverything) {
  Graph g = parse_graph(kMlp);
  EXPECT_EQ(g.name, "mlp");
  ASSERT_EQ(g.inputs.size(), 2u);
  EXPECT_EQ(g.values[g.inputs[0]].name, "x");
  EXPECT_EQ(g.values[g.inputs[0]].shape, Shape::of({Dim::symbolic("batch"), Dim::known(4)}));
  EXPECT_EQ(g.values[g.inputs[1]].dtype, DType::Int64);
  ASSERT_EQ(g.params.size(), 3u);
  EXPECT_EQ(g.params[0].bytes, 4 * 8 * 4);
  EXPECT_EQ(g.params[1].bytes, 8 * 4);
  EXPECT_EQ(g.params[2].bytes, 8 * 2 * 4);
  ASSERT_EQ(g.nodes.size(), 8u);

  const Node& c0 = g.nodes[g.find_node("c0")];
  EXPECT_EQ(c0.flags, unsigned(kNodeConstantSource));
  EXPECT_TRUE(c0.inputs.empty());
  EXPECT_EQ(c0.module, "");
  const Node& n0 = g.nodes[g.find_node("n0")];
  EXPECT_EQ(n0.op, "MatMul");
  EXPECT_EQ(n0.module, "layer0.lin");
  EXPECT_DOUBLE_EQ(n0.flops, 64.0);
  EXPECT_EQ(n0.flags, unsigned(kNodeNone));
  const Node& n2 = g.nodes[g.find_node("n2")];
  EXPECT_EQ(n2.flags, unsigned(kNodeNondeterministic));
  EXPECT_EQ(n2.outputs.size(), 2u);
  EXPECT_EQ(g.nodes[g.find_node("n3")].flags, unsigned(kNodeHasSubgraph));
  EXPECT_DOUBLE_EQ(g.nodes[g.find_node("n4")].flops, 32.5);
  const Node& n6 = g.nodes[g.find_node("n6")];
  ASSERT_EQ(n6.inputs.size(), 3u);
  EXPECT_EQ(n6.inputs[1], kNone);
  EXPECT_EQ(g.values[g.find_value("s")].shape, Shape::of({}));
  EXPECT_EQ(g.values[g.find_value("z")].shape, Shape::of({Dim::unknown(), Dim::unknown()}));
  EXPECT_FALSE(g.values[g.find_value("out")].shape.rank_known);
  EXPECT_EQ(g.values[g.find_value("mask")].dtype, DType::Bool);
  ASSERT_EQ(g.outputs.size(), 2u);
  EXPECT_EQ(g.values[g.outputs[0]].name, "out");
  EXPECT_EQ(g.values[g.outputs[1]].name, "mask");
  EXPECT_EQ(g.verify(), "");
}

TEST(Text, RoundTrip) {
  Graph g = parse_graph(kMlp);
  std::string printed = print_graph(g);
  Graph g2 = parse_graph(printed);
  EXPECT_EQ(print_graph(g2), printed);
  // kMlp is written in canonical form, so printing reproduces it exactly.
  EXPECT_EQ(printed, kMlp);
}

TEST(Text, PrintFormat) {
  Graph g;
  g.name = "t";
  ValueId x = g.add_input("x", DType::Float32, Shape::of({Dim::symbolic("b"), Dim::known(4)}));
  ValueId w = g.add_param("w", DType::Float16, Shape::of({Dim::known(4)}), 8);
  ValueId y = g.add_value("y", DType::Float32, Shape::unranked());
  Node n{"mul", "Mul", "blocks.0", {x, kNone, w}, {y}};
  n.flags = kNodeConstantSource | kNodeNondeterministic | kNodeHasSubgraph;
  n.flops = 2.5;
  g.add_node(n);
  g.mark_output(y);
  EXPECT_EQ(print_graph(g),
            "graph t\n"
            "input x:float32[b,4]\n"
            "param w:float16[4]\n"
            "node mul Mul @blocks.0 const rand subgraph flops=2.5 : x _ w -> y:float32?\n"
            "output y\n");
  Graph unnamed;
  EXPECT_EQ(print_graph(unnamed), "graph g\n");
}

TEST(Text, UnrankedValuesRoundTrip) {
  // print_graph writes an unranked shape as "?" right after the dtype.
  const std::string text =
      "graph u\n"
      "input x:float32?\n"
      "node n Relu : x -> y:int64?\n"
      "output y\n";
  Graph g = parse_graph(text);
  EXPECT_FALSE(g.values[g.find_value("x")].shape.rank_known);
  EXPECT_EQ(g.values[g.find_value("y")].dtype, DType::Int64);
  EXPECT_EQ(print_graph(g), text);
  EXPECT_EQ(print_graph(parse_graph(print_graph(g))), text);
}

TEST(Text, LargeAndFractionalFlopsRoundTrip) {
  const std::string body =
      "input x:float32[2]\n"
      "node a Relu flops=123456789012 : x -> y:float32[2]\n"
      "node b Relu flops=0.125 : y -> z:float32[2]\n"
      "output z\n";
  Graph g = parse_graph(body);
  EXPECT_DOUBLE_EQ(g.nodes[0].flops, 123456789012.0);
  EXPECT_DOUBLE_EQ(g.nodes[1].flops, 0.125);
  std::string p = print_graph(g);
  EXPECT_NE(p.find("flops=123456789012 "), std::string::npos) << p;
  EXPECT_NE(p.find("flops=0.125 "), std::string::npos) << p;
  // Printed exactly (an unnamed graph is "g"), and read back to the same numbers.
  EXPECT_EQ(p, "graph g\n" + body);
  Graph back = parse_graph(p);
  EXPECT_DOUBLE_EQ(back.nodes[0].flops, 123456789012.0);
  EXPECT_DOUBLE_EQ(back.nodes[1].flops, 0.125);
  EXPECT_EQ(print_graph(back), "graph g\n" + body);
}

// A fractional count printed at 6 digits read back as another (integral)
// number, and printed differently the second time (found by fuzz_ir_text).
TEST(Text, FractionalFlopsPrintAtFullPrecision) {
  Graph g = parse_graph("input x:float32[2]\nnode a Relu flops=108888888888888.88 : x -> y:float32[2]\noutput y\n");
  const std::string once = print_graph(g);
  EXPECT_NE(once.find("flops=108888888888888.88 "), std::string::npos) << once;
  EXPECT_EQ(parse_graph(once).nodes[0].flops, g.nodes[0].flops);
  EXPECT_EQ(print_graph(parse_graph(once)), once);
  Graph big = parse_graph("input x:float32[2]\nnode a Relu flops=1e300 : x -> y:float32[2]\noutput y\n");
  EXPECT_EQ(print_graph(parse_graph(print_graph(big))), print_graph(big));
}

TEST(Text, CommentsAndBlankLines) {
  Graph g = parse_graph(
      "# a comment\n"
      "\n"
      "graph c   # trailing comment\n"
      "   input x:float32[1]\n"
      "node n Relu : x -> y:float32[1]  # why not\n"
      "output y\n");
  EXPECT_EQ(g.name, "c");
  EXPECT_EQ(g.nodes.size(), 1u);
}

TEST(Text, Errors) {
  EXPECT_EQ(parse_error("input x:float32[1]\nnode n Relu : q -> y:float32[1]\n"), "line 2: unknown value 'q'");
  EXPECT_EQ(parse_error("input x:float33[1]\n"), "line 1: unknown dtype 'float33'");
  EXPECT_EQ(parse_error("input x\n"), "line 1: expected name:type in 'x'");
  EXPECT_EQ(parse_error("input x:float32[1]\ninput x:float32[1]\n"), "line 2: duplicate value 'x'");
  EXPECT_EQ(parse_error("input x:float32[1]\nnode n Relu : x -> x:float32[1]\n"), "line 2: value 'x' defined twice");
  EXPECT_EQ(parse_error("input x:float32[1]\nnode n Relu x -> y:float32[1]\n"),
            "line 2: unexpected 'x' in node header");
  EXPECT_EQ(parse_error("input x:float32[1]\nnode n Relu : x\n"), "line 2: missing '->' in node");
  EXPECT_EQ(parse_error("input x:float32[1]\nnode n Relu @m\n"), "line 2: missing ':' in node");
  EXPECT_EQ(parse_error("blah\n"), "line 1: unknown keyword 'blah'");
  EXPECT_EQ(parse_error("output y\n"), "line 1: unknown value 'y'");
  EXPECT_EQ(parse_error("input x:float32[1,,2]\n"), "line 1: empty dim in '[1,,2]'");
  EXPECT_EQ(parse_error("input x:float32[1\n"), "line 1: bad shape '[1'");
  // Found by fuzz_ir_text: bytes past int64's range were cast from double (undefined).
  EXPECT_EQ(parse_error("param w:float32[100,4173871000621915223]\n"), "line 1: param 'w' holds more than 9e18 bytes");
  EXPECT_EQ(parse_error("input x:float32[1]\n"
                        "node n Relu : x -> y:float32[1]\n"
                        "node n Relu : x -> z:float32[1]\n"),
            "line 3: duplicate node 'n'");
}

// ---------------------------------------------------------- topological sort

// Builds a graph whose node vector is deliberately out of order.
Graph out_of_order() {
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({Dim::known(1)}));
  ValueId a = g.add_value("a", DType::Float32);
  ValueId b = g.add_value("b", DType::Float32);
  ValueId c = g.add_value("c", DType::Float32);
  ValueId d = g.add_value("d", DType::Float32);
  g.add_node(Node{"use_c", "Relu", "", {c}, {d}});   // needs c
  g.add_node(Node{"make_b", "Relu", "", {a}, {b}});  // needs a
  g.add_node(Node{"make_c", "Add", "", {a, b}, {c}});
  g.add_node(Node{"make_a", "Relu", "", {x}, {a}});
  g.mark_output(d);
  return g;
}

TEST(TopoSort, FixesOutOfOrderInput) {
  Graph g = out_of_order();
  EXPECT_NE(g.verify(), "");  // use_c reads c before it is produced
  g.sort_topologically();
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"make_a", "make_b", "make_c", "use_c"}));
  EXPECT_EQ(g.verify(), "");
  // Ids and references are renumbered consistently.
  for (size_t i = 0; i < g.nodes.size(); ++i) EXPECT_EQ(g.find_node(g.nodes[i].name), static_cast<NodeId>(i));
  EXPECT_EQ(g.values[g.find_value("a")].producer, g.find_node("make_a"));
  EXPECT_EQ(g.values[g.find_value("a")].consumers, (std::vector<NodeId>{g.find_node("make_b"), g.find_node("make_c")}));
  EXPECT_EQ(g.values[g.find_value("c")].consumers, (std::vector<NodeId>{g.find_node("use_c")}));
}

TEST(TopoSort, RenumbersNestedModules) {
  Graph g = out_of_order();
  g.nodes[g.find_node("make_a")].flags |= kNodeHasSubgraph;
  g.nested_modules["inner"] = g.find_node("make_a");
  ASSERT_EQ(g.nested_modules.at("inner"), 3);
  g.sort_topologically();
  EXPECT_EQ(g.nested_modules.at("inner"), 0);  // make_a moved to the front
  EXPECT_EQ(g.verify(), "");
}

TEST(TopoSort, StableForIndependentNodes) {
  // Three independent chains, interleaved: already topological, so unchanged.
  Graph g = parse_graph(
      "input x:float32[1]\n"
      "node z1 Relu : x -> a1:float32[1]\n"
      "node a1n Relu : x -> b1:float32[1]\n"
      "node m1 Relu : x -> c1:float32[1]\n"
      "node z2 Relu : a1 -> a2:float32[1]\n"
      "node a2n Relu : b1 -> b2:float32[1]\n"
      "node m2 Relu : c1 -> c2:float32[1]\n"
      "output a2\noutput b2\noutput c2\n");
  const std::vector<std::string> expected = {"z1", "a1n", "m1", "z2", "a2n", "m2"};
  EXPECT_EQ(node_names(g), expected);  // not alphabetical, not chain by chain
  g.sort_topologically();
  EXPECT_EQ(node_names(g), expected);
}

TEST(TopoSort, PrefersEarlierPositionAmongReadyNodes) {
  // p (position 0) depends on q (position 2); r (position 1) is independent.
  // Stable Kahn: r and q are ready first; r comes before q in the input, and
  // p becomes ready only after q.
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({}));
  ValueId vq = g.add_value("vq");
  ValueId vp = g.add_value("vp");
  ValueId vr = g.add_value("vr");
  g.add_node(Node{"p", "Relu", "", {vq}, {vp}});
  g.add_node(Node{"r", "Relu", "", {x}, {vr}});
  g.add_node(Node{"q", "Relu", "", {x}, {vq}});
  g.sort_topologically();
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"r", "q", "p"}));
  EXPECT_EQ(g.verify(), "");
}

TEST(TopoSort, CycleIsAnError) {
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({}));
  ValueId a = g.add_value("a");
  ValueId b = g.add_value("b");
  g.add_node(Node{"ok", "Relu", "", {x}, {g.add_value("o")}});
  g.add_node(Node{"ping", "Add", "", {x, b}, {a}});
  g.add_node(Node{"pong", "Relu", "", {a}, {b}});
  try {
    g.sort_topologically();
    FAIL() << "expected a cycle error";
  } catch (const std::runtime_error& e) { EXPECT_EQ(std::string(e.what()), "graph has a cycle through node 'ping'"); }
}

TEST(TopoSort, CycleErrorNamesANodeOnTheCycle) {
  // 'after' comes first and depends on the cycle, but is not on it.
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({}));
  ValueId a = g.add_value("a");
  ValueId b = g.add_value("b");
  ValueId c = g.add_value("c");
  g.add_node(Node{"after", "Relu", "", {a}, {c}});
  g.add_node(Node{"ping", "Add", "", {x, b}, {a}});
  g.add_node(Node{"pong", "Relu", "", {a}, {b}});
  try {
    g.sort_topologically();
    FAIL() << "expected a cycle error";
  } catch (const std::runtime_error& e) { EXPECT_EQ(std::string(e.what()), "graph has a cycle through node 'ping'"); }
}

TEST(TopoSort, SelfLoopIsACycle) {
  Graph g;
  ValueId a = g.add_value("a");
  g.add_node(Node{"self", "Relu", "", {a}, {a}});
  EXPECT_THROW(g.sort_topologically(), std::runtime_error);
}

TEST(TopoSort, ParseSortsOutOfOrderText) {
  // parse_graph requires declaration before use, so text is always in a
  // valid order; parsing keeps that order.
  Graph g = parse_graph(
      "input x:float32[1]\n"
      "node b Relu : x -> vb:float32[1]\n"
      "node a Relu : x -> va:float32[1]\n"
      "node c Add : va vb -> vc:float32[1]\n"
      "output vc\n");
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"b", "a", "c"}));
}

// ------------------------------------------------------------------- verify

TEST(Verify, AcceptsGoodGraph) { EXPECT_EQ(parse_graph(kMlp).verify(), ""); }

TEST(Verify, UseBeforeProduce) {
  Graph g = out_of_order();
  EXPECT_EQ(g.verify(), "node 'use_c' uses 'c' before it is produced");
}

TEST(Verify, UndefinedValue) {
  Graph g;
  ValueId x = g.add_input("x", DType::Float32, Shape::of({}));
  ValueId ghost = g.add_value("ghost");
  g.add_node(Node{"n", "Add", "", {x, ghost}, {g.add_value("y")}});
  EXPECT_EQ(g.verify(), "value 'ghost' used by 'n' is never defined");
}

TEST(Verify, UndefinedModelOutput) {
  Graph g;
  g.add_input("x", DType::Float32, Shape::of({}));
  g.mark_output(g.add_value("nothing"));
  EXPECT_EQ(g.verify(), "model output 'nothing' is never defined");
}

TEST(Verify, InputIdOutOfRange) {
  Graph g = parse_graph("input x:float32[1]\nnode n Relu : x -> y:float32[1]\n");
  g.nodes[0].inputs[0] = 42;
  EXPECT_EQ(g.verify(), "node 'n' has an input id out of range");
}

TEST(Verify, OutputIdOutOfRange) {
  Graph g = parse_graph("input x:float32[1]\nnode n Relu : x -> y:float32[1]\n");
  g.nodes[0].outputs.push_back(-7);
  EXPECT_EQ(g.verify(), "node 'n' has an output id out of range");
}

TEST(Verify, InconsistentProducer) {
  Graph g = parse_graph(
      "input x:float32[1]\n"
      "node a Relu : x -> y:float32[1]\n"
      "node b Relu : x -> z:float32[1]\n");
  g.values[g.find_value("z")].producer = 0;  // but node 1 lists it as an output
  EXPECT_EQ(g.verify(), "value 'z' has an inconsistent producer");
}

TEST(Verify, InconsistentConsumers) {
  Graph g = parse_graph(
      "input x:float32[1]\n"
      "node a Relu : x -> y:float32[1]\n"
      "node b Relu : y -> z:float32[1]\n");
  g.values[g.find_value("y")].consumers.clear();  // node b reads y
  EXPECT_EQ(g.verify(), "value 'y' has inconsistent consumers");
  Graph g2 = parse_graph(
      "input x:float32[1]\n"
      "node a Relu : x -> y:float32[1]\n");
  g2.values[g2.find_value("x")].consumers.push_back(0);  // a reads x only once
  EXPECT_EQ(g2.verify(), "value 'x' has inconsistent consumers");
}

TEST(Verify, DuplicateNames) {
  Graph g = parse_graph(
      "input x:float32[1]\n"
      "node a Relu : x -> y:float32[1]\n"
      "node b Relu : y -> z:float32[1]\n");
  g.nodes[1].name = "a";
  EXPECT_EQ(g.verify(), "node name 'a' is used twice");
  Graph g2 = parse_graph(
      "input x:float32[1]\n"
      "node a Relu : x -> y:float32[1]\n");
  g2.values[g2.find_value("y")].name = "x";
  EXPECT_EQ(g2.verify(), "value name 'x' is used twice");
}

TEST(Verify, NestedModuleHolder) {
  Graph g = parse_graph(
      "input x:float32[1]\n"
      "node a Relu : x -> y:float32[1]\n"
      "node b If subgraph : y -> z:float32[1]\n");
  g.nested_modules["inner"] = 1;
  EXPECT_EQ(g.verify(), "");
  g.nested_modules["inner"] = 5;
  EXPECT_EQ(g.verify(), "nested module 'inner' names a node id out of range");
  g.nested_modules["inner"] = 0;
  EXPECT_EQ(g.verify(), "nested module 'inner' is held by node 'a', which has no subgraph");
}

}  // namespace
}  // namespace ppc::ir
