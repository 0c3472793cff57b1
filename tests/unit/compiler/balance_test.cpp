// compiler/analysis/balance: min_max_partition against a brute force, and
// auto_partition's cuts over placeable nodes.
#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/cost_model.h"
#include "schemas/error.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;

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
        if (flavour == 0)
          x = small(rng);  // integers with ties and zeros
        else if (flavour == 1)
          x = real(rng);  // reals
        else
          x = (small(rng) < 3 ? 0.0 : small(rng) * 1e6);  // many zeros, large values
      }
      for (int parts = 1; parts <= n; ++parts) {
        Ints starts = min_max_partition(costs, parts);
        double got = check_pieces(costs, parts, starts);
        double want = brute_force(costs, parts);
        ASSERT_NEAR(got, want, 1e-9 * std::max(1.0, want)) << "n=" << n << " parts=" << parts << " round=" << round;
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

// The cuts of the exact partition balancing `balance` alone (communication free).
std::vector<Cut> auto_cuts(const Graph& g, const std::vector<bool>& const_like, int stages,
                           const std::string& balance) {
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

}  // namespace
}  // namespace ppc::analysis
