// compiler/analysis/constants: which nodes are constant-like (computed from
// parameters and constants alone) and the constant closure of a set of values.
#include <gtest/gtest.h>

#include "compiler/analysis/constants.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;

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
  EXPECT_TRUE(is_const("c0"));  // a constant source
  EXPECT_TRUE(is_const("t0"));  // params only
  EXPECT_TRUE(is_const("t1"));  // chain: param-derived and a constant
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
  EXPECT_EQ(names_of_nodes(g, constant_closure(g, c, {g.find_value("wkb")})), (Strings{"c0", "t0", "t1"}));
  EXPECT_EQ(names_of_nodes(g, constant_closure(g, c, {g.find_value("nb"), g.find_value("k")})),
            (Strings{"c0", "unrelated"}));
  // Non-constant producers, params and model inputs contribute nothing.
  EXPECT_TRUE(constant_closure(g, c, {g.find_value("y"), g.find_value("x"), g.find_value("w")}).empty());
}

}  // namespace
}  // namespace ppc::analysis
