// min_bottleneck_partition against an independent reference: stage cost and
// memory written straight from chain_partition.h's definitions (never the
// library's), and a brute force over every set of stages-1 allowed cuts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/analysis/chain_partition.h"

namespace ppc::analysis {
namespace {

using Ints = std::vector<int>;
using Rng = std::mt19937_64;

// ------------------------------------------------------------------ reference

/// Stage [i, j): compute of its items plus, once, every value it receives: a
/// transfer whose producer lies before i and which has a consumer in [i, j);
/// plus receive_cost once if it receives any.
double ref_stage_cost(const ChainProblem& p, int i, int j) {
  double s = 0.0;
  bool any = false;
  for (int x = i; x < j; ++x) s += p.compute[x];
  for (const ChainProblem::Transfer& t : p.transfers) {
    if (t.producer >= i) continue;
    bool received = false;
    for (int c : t.consumers) received = received || (c >= i && c < j);
    if (received) s += t.cost;
    any = any || received;
  }
  return any ? s + p.receive_cost : s;
}

/// Stage [i, j) at index k: every resident with a reader in [i, j), plus
/// inflight[k] (1 when empty) times the activations of [i, j) (0 when empty).
double ref_stage_memory(const ChainProblem& p, int k, int i, int j) {
  double s = 0.0;
  for (const ChainProblem::Resident& r : p.resident) {
    bool meets = false;
    for (int x : r.readers) meets = meets || (x >= i && x < j);
    if (meets) s += r.bytes;
  }
  double act = 0.0;
  if (!p.activation.empty())
    for (int x = i; x < j; ++x) act += p.activation[x];
  const double times = p.inflight.empty() ? 1.0 : p.inflight[k];
  return s + times * act;
}

bool cut_allowed(const ChainProblem& p, int b) { return p.allowed.empty() || p.allowed[b]; }

struct Brute {
  bool feasible = false;
  double best = std::numeric_limits<double>::infinity();
  Ints starts;  // one optimal partition (for messages)
};

/// Every subset of the cut positions 1..n-1 with stages-1 elements (bitmask
/// enumeration, Gosper's next-combination), skipping disallowed cuts and
/// partitions over the memory cap (when `use_cap` and the cap is > 0).
Brute brute_force(const ChainProblem& p, int stages, bool use_cap = true) {
  const int n = static_cast<int>(p.compute.size());
  std::vector<std::vector<double>> cost(n + 1, std::vector<double>(n + 1, 0.0));
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j <= n; ++j) cost[i][j] = ref_stage_cost(p, i, j);
  const bool capped = use_cap && p.memory_cap > 0;
  std::vector<std::vector<std::vector<char>>> fits;
  if (capped) {
    fits.assign(stages, std::vector<std::vector<char>>(n + 1, std::vector<char>(n + 1, 0)));
    for (int k = 0; k < stages; ++k)
      for (int i = 0; i < n; ++i)
        for (int j = i + 1; j <= n; ++j) fits[k][i][j] = ref_stage_memory(p, k, i, j) <= p.memory_cap;
  }
  Brute out;
  const int m = n - 1, r = stages - 1;
  const std::uint64_t end = std::uint64_t{1} << m;
  std::uint64_t mask = r == 0 ? 0 : (std::uint64_t{1} << r) - 1;
  Ints b;
  while (mask < end) {
    b.assign(1, 0);
    bool ok = true;
    for (int bit = 0; bit < m && ok; ++bit)
      if (mask >> bit & 1) {
        ok = cut_allowed(p, bit + 1);
        b.push_back(bit + 1);
      }
    b.push_back(n);
    if (ok && static_cast<int>(b.size()) == stages + 1) {
      double worst = 0.0;
      for (int k = 0; k < stages && ok; ++k) {
        if (capped && !fits[k][b[k]][b[k + 1]]) ok = false;
        worst = std::max(worst, cost[b[k]][b[k + 1]]);
      }
      if (ok && (!out.feasible || worst < out.best)) {
        out.feasible = true;
        out.best = worst;
        out.starts.assign(b.begin() + 1, b.end() - 1);
      }
    }
    if (r == 0) break;
    const std::uint64_t c = mask & (~mask + 1);
    const std::uint64_t rr = mask + c;
    mask = (((rr ^ mask) >> 2) / c) | rr;
  }
  return out;
}

// ------------------------------------------------------------------ helpers

bool near(double a, double b, double rel = 1e-9) {
  return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)) + 1e-300;
}

std::string join(const Ints& v) {
  std::ostringstream o;
  o << "{";
  for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
  o << "}";
  return o.str();
}

std::string describe(const ChainProblem& p, int stages) {
  std::ostringstream o;
  o.precision(17);
  o << "stages=" << stages << " n=" << p.compute.size() << "\ncompute={";
  for (size_t i = 0; i < p.compute.size(); ++i) o << (i ? "," : "") << p.compute[i];
  o << "}\nreceive_cost=" << p.receive_cost << "\ntransfers={";
  for (const auto& t : p.transfers) o << "{" << t.producer << "," << join(t.consumers) << "," << t.cost << "}";
  o << "}\nallowed={";
  for (size_t i = 0; i < p.allowed.size(); ++i) o << (i ? "," : "") << (p.allowed[i] ? 1 : 0);
  o << "}\nresident={";
  for (const auto& r : p.resident) o << "{" << join(r.readers) << "," << r.bytes << "}";
  o << "}\nactivation={";
  for (size_t i = 0; i < p.activation.size(); ++i) o << (i ? "," : "") << p.activation[i];
  o << "}\ninflight={";
  for (size_t i = 0; i < p.inflight.size(); ++i) o << (i ? "," : "") << p.inflight[i];
  o << "}\nmemory_cap=" << p.memory_cap;
  return o.str();
}

/// Everything a returned feasible partition must satisfy on its own; "" if it does.
std::string validate(const ChainProblem& p, int stages, const ChainPartition& got) {
  const int n = static_cast<int>(p.compute.size());
  std::ostringstream e;
  if (static_cast<int>(got.starts.size()) != stages - 1) {
    e << "starts " << join(got.starts) << " has size " << got.starts.size() << ", want " << stages - 1;
    return e.str();
  }
  Ints b{0};
  b.insert(b.end(), got.starts.begin(), got.starts.end());
  b.push_back(n);
  for (int k = 0; k < stages; ++k)
    if (b[k] >= b[k + 1]) {
      e << "starts " << join(got.starts) << " not strictly increasing inside (0," << n << ")";
      return e.str();
    }
  for (int s : got.starts)
    if (!cut_allowed(p, s)) {
      e << "starts " << join(got.starts) << " cut at disallowed position " << s;
      return e.str();
    }
  if (p.memory_cap > 0)
    for (int k = 0; k < stages; ++k) {
      const double m = ref_stage_memory(p, k, b[k], b[k + 1]);
      if (!(m <= p.memory_cap)) {
        e << "starts " << join(got.starts) << ": stage " << k << " [" << b[k] << "," << b[k + 1] << ") holds " << m
          << " > cap " << p.memory_cap;
        return e.str();
      }
    }
  double worst = 0.0;
  for (int k = 0; k < stages; ++k) worst = std::max(worst, ref_stage_cost(p, b[k], b[k + 1]));
  if (!near(worst, got.bottleneck)) {
    e.precision(17);
    e << "starts " << join(got.starts) << ": max stage cost " << worst << " but bottleneck says " << got.bottleneck;
    return e.str();
  }
  return "";
}

std::string check_against_brute(const ChainProblem& p, int stages, const ChainPartition& got, const Brute& bf) {
  std::ostringstream e;
  e.precision(17);
  if (got.feasible != bf.feasible) {
    e << "feasible=" << got.feasible << " but brute force says " << bf.feasible;
    if (bf.feasible) e << " (best " << bf.best << " at " << join(bf.starts) << ")";
    if (got.feasible) e << " (got " << join(got.starts) << " bottleneck " << got.bottleneck << ")";
    return e.str();
  }
  if (!bf.feasible) return "";
  std::string v = validate(p, stages, got);
  if (!v.empty()) return v;
  if (!near(got.bottleneck, bf.best)) {
    e << "bottleneck " << got.bottleneck << " at " << join(got.starts) << ", brute-force optimum " << bf.best << " at "
      << join(bf.starts);
    return e.str();
  }
  return "";
}

// ------------------------------------------------------------------ random problems

int uni(Rng& r, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(r); }
double real(Rng& r, double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(r); }
bool coin(Rng& r, double p) { return std::bernoulli_distribution(p)(r); }

std::vector<double> random_compute(Rng& rng, int n) {
  std::vector<double> c(n);
  const int mode = uni(rng, 0, 5);
  for (double& x : c) switch (mode) {
      case 0: x = uni(rng, 0, 10); break;                                           // small integers
      case 1: x = real(rng, 0, 1); break;                                           // reals
      case 2: x = coin(rng, 0.3) ? 0.0 : real(rng, 0, 5); break;                    // many zeros
      case 3: x = coin(rng, 0.15) ? 0.0 : std::pow(10.0, real(rng, 0, 12)); break;  // up to 1e12
      case 4: x = 0.0; break;                                                       // all zero
      default: x = coin(rng, 0.1) ? 1e9 * uni(rng, 1, 9) : uni(rng, 0, 20); break;  // mixed scales
    }
  return c;
}

double random_transfer_cost(Rng& rng, int mode, double scale) {
  switch (mode) {
    case 0: return 0.0;
    case 1: return scale * real(rng, 0, 1);
    case 2: return scale * real(rng, 50, 1000);  // dominating
    case 3: {
      const int k = uni(rng, 0, 2);
      return k == 0 ? 0.0 : k == 1 ? scale * real(rng, 0, 2) : scale * real(rng, 100, 1e4);
    }
    default: return uni(rng, 0, 5);
  }
}

/// Mean compute per item (1 when there is none): transfer costs scale with it.
double mean_compute(const ChainProblem& p) {
  double sum = 0.0;
  for (double x : p.compute) sum += x;
  return !p.compute.empty() && sum > 0 ? sum / static_cast<double>(p.compute.size()) : 1.0;
}

/// Transfers only between consecutive items (a few missing).
void random_chain_transfers(Rng& rng, ChainProblem& p) {
  const int n = static_cast<int>(p.compute.size());
  const double scale = mean_compute(p);
  const int mode = uni(rng, 0, 4);
  for (int i = 0; i + 1 < n; ++i)
    if (coin(rng, 0.9)) p.transfers.push_back({i, {i + 1}, random_transfer_cost(rng, mode, scale)});
  if (coin(rng, 0.5)) p.receive_cost = random_transfer_cost(rng, uni(rng, 1, 4), scale);
}

/// Each item reads 0-3 earlier items (the previous one, a nearby one, or any),
/// plus some explicit skips with several far consumers; a producer sometimes
/// has two values with different consumers.
void random_dag_transfers(Rng& rng, ChainProblem& p) {
  const int n = static_cast<int>(p.compute.size());
  const double scale = mean_compute(p);
  const int mode = uni(rng, 0, 4);
  std::vector<std::set<int>> readers(n);
  for (int c = 1; c < n; ++c) {
    const int k = uni(rng, 0, 3);
    for (int t = 0; t < k; ++t) {
      int prod;
      if (coin(rng, 0.4))
        prod = c - 1;
      else if (coin(rng, 0.5))
        prod = uni(rng, std::max(0, c - 3), c - 1);
      else
        prod = uni(rng, 0, c - 1);
      readers[prod].insert(c);
    }
  }
  if (n >= 4) {
    const int skips = uni(rng, 0, 2);
    for (int s = 0; s < skips; ++s) {
      const int prod = uni(rng, 0, n - 4);
      const int cnt = uni(rng, 1, 3);
      for (int t = 0; t < cnt; ++t) readers[prod].insert(uni(rng, prod + 2, n - 1));
    }
  }
  for (int prod = 0; prod < n; ++prod) {
    if (readers[prod].empty()) continue;
    Ints all(readers[prod].begin(), readers[prod].end());
    if (all.size() >= 2 && coin(rng, 0.2)) {
      Ints a, b;
      for (int c : all) (coin(rng, 0.5) ? a : b).push_back(c);
      if (!a.empty()) p.transfers.push_back({prod, a, random_transfer_cost(rng, mode, scale)});
      if (!b.empty()) p.transfers.push_back({prod, b, random_transfer_cost(rng, mode, scale)});
    } else {
      p.transfers.push_back({prod, all, random_transfer_cost(rng, mode, scale)});
    }
  }
  if (coin(rng, 0.5)) p.receive_cost = random_transfer_cost(rng, uni(rng, 1, 4), scale);
}

void random_allowed(Rng& rng, ChainProblem& p) {
  const int n = static_cast<int>(p.compute.size());
  const int pick = uni(rng, 0, 19);  // empty 20%, all 20%, 70% 30%, 35% 15%, few 15%
  const int mode = pick < 4 ? 0 : pick < 8 ? 1 : pick < 14 ? 2 : pick < 17 ? 3 : 4;
  if (mode == 0) return;  // empty: all allowed
  p.allowed.assign(n + 1, true);
  if (mode == 2 || mode == 3)
    for (int b = 1; b < n; ++b) p.allowed[b] = coin(rng, mode == 2 ? 0.7 : 0.35);
  if (mode == 4) {  // few allowed
    std::fill(p.allowed.begin(), p.allowed.end(), false);
    if (n > 1) {
      const int cnt = uni(rng, 1, 2);
      for (int t = 0; t < cnt; ++t) p.allowed[uni(rng, 1, n - 1)] = true;
    }
  }
  // The chain's ends are ignored whatever they say.
  p.allowed[0] = coin(rng, 0.5);
  p.allowed[n] = coin(rng, 0.5);
}

/// Residents (params read by 1-3 items) and activations; integer-valued so
/// the cap comparisons are exact in every summation order.
void random_memory_items(Rng& rng, ChainProblem& p) {
  const int n = static_cast<int>(p.compute.size());
  const int residents = uni(rng, 0, n + 2);
  for (int r = 0; r < residents; ++r) {
    std::set<int> rd;
    const int cnt = uni(rng, 1, 3);
    for (int t = 0; t < cnt; ++t) rd.insert(uni(rng, 0, n - 1));
    const double bytes = coin(rng, 0.1) ? 0.0 : coin(rng, 0.1) ? 1000.0 * uni(rng, 10, 100) : uni(rng, 1, 1000);
    p.resident.push_back({Ints(rd.begin(), rd.end()), bytes});
  }
  if (coin(rng, 0.8)) {
    p.activation.resize(n);
    for (double& a : p.activation) a = coin(rng, 0.1) ? 0.0 : uni(rng, 1, 100);
  }
}

/// inflight for `stages` (empty, 1F1B-like stages-k, or random) and a cap
/// between the largest single-item stage and the whole chain (some below).
void random_memory_cap(Rng& rng, ChainProblem& p, int stages) {
  const int n = static_cast<int>(p.compute.size());
  p.inflight.clear();
  const int mode = uni(rng, 0, 2);
  if (mode == 1)
    for (int k = 0; k < stages; ++k) p.inflight.push_back(stages - k);
  else if (mode == 2)
    for (int k = 0; k < stages; ++k) p.inflight.push_back(uni(rng, 1, 4));
  double one = 0.0, all = 0.0;
  for (int k = 0; k < stages; ++k) {
    for (int x = 0; x < n; ++x) one = std::max(one, ref_stage_memory(p, k, x, x + 1));
    all = std::max(all, ref_stage_memory(p, k, 0, n));
  }
  const double u = real(rng, 0, 1);
  const double lo = 0.85 * one;
  double cap = std::floor(lo + u * std::max(0.0, all - lo));
  p.memory_cap = std::max(1.0, cap);
}

// ------------------------------------------------------------------ tests

constexpr int kMaxItems = 18;
constexpr int kMaxStages = 6;

/// Number of (problem, stages) cases when each n in 1..kMaxItems gets
/// `per_n` problems and every stage count 1..min(n, kMaxStages).
int expected_cases(int per_n) {
  int total = 0;
  for (int n = 1; n <= kMaxItems; ++n) total += per_n * std::min(n, kMaxStages);
  return total;
}

struct RandomRun {
  int cases = 0, feasible = 0, infeasible = 0, capped = 0, cap_binding = 0, mask_binding = 0, failures = 0;
};

void run_random(bool dag, std::uint64_t seed, int per_n, RandomRun& run) {
  Rng rng(seed);
  for (int n = 1; n <= kMaxItems; ++n)
    for (int rep = 0; rep < per_n; ++rep) {
      ChainProblem p;
      p.compute = random_compute(rng, n);
      if (dag)
        random_dag_transfers(rng, p);
      else
        random_chain_transfers(rng, p);
      random_allowed(rng, p);
      const bool with_memory = coin(rng, 0.55);
      if (with_memory) random_memory_items(rng, p);
      for (int stages = 1; stages <= std::min(n, kMaxStages); ++stages) {
        p.inflight.clear();
        p.memory_cap = 0.0;
        if (with_memory) {
          if (coin(rng, 0.85))
            random_memory_cap(rng, p, stages);
          else if (coin(rng, 0.5))  // residents and activations but no cap
            p.inflight.assign(stages, 2.0);
        }
        const Brute bf = brute_force(p, stages);
        const ChainPartition got = min_bottleneck_partition(p, stages);
        ++run.cases;
        (bf.feasible ? run.feasible : run.infeasible)++;
        if (p.memory_cap > 0) {
          ++run.capped;
          const Brute loose = brute_force(p, stages, /*use_cap=*/false);
          if (loose.feasible && (!bf.feasible || bf.best > loose.best)) ++run.cap_binding;
        }
        if (!p.allowed.empty()) {
          ChainProblem all = p;
          all.allowed.clear();
          const Brute loose = brute_force(all, stages);
          if (loose.feasible && (!bf.feasible || bf.best > loose.best)) ++run.mask_binding;
        }
        const std::string err = check_against_brute(p, stages, got, bf);
        if (!err.empty() && ++run.failures <= 5)
          ADD_FAILURE() << (dag ? "DAG" : "chain") << " case " << run.cases << ": " << err << "\n"
                        << describe(p, stages);
      }
    }
}

void expect_mix(const RandomRun& run, int per_n) {
  EXPECT_EQ(run.failures, 0) << "cases disagreeing with the brute force (the first 5 are shown above)";
  EXPECT_EQ(run.cases, expected_cases(per_n));
  // The generators must actually exercise every dimension.
  EXPECT_GT(run.infeasible, run.cases / 20);
  EXPECT_GT(run.feasible, run.cases / 2);
  EXPECT_GT(run.cap_binding, run.cases / 20);
  EXPECT_GT(run.mask_binding, run.cases / 20);
  std::printf(
      "  %d cases (%d failed): %d feasible, %d infeasible, %d capped (%d where the cap raises the optimum), "
      "%d where the allowed cuts raise it\n",
      run.cases, run.failures, run.feasible, run.infeasible, run.capped, run.cap_binding, run.mask_binding);
}

TEST(ChainPartition, StageCostAndMemoryMatchReference) {
  Rng rng(20240611);
  int checked = 0;
  for (int rep = 0; rep < 400; ++rep) {
    const int n = uni(rng, 1, 40);
    ChainProblem p;
    p.compute = random_compute(rng, n);
    if (coin(rng, 0.5))
      random_dag_transfers(rng, p);
    else
      random_chain_transfers(rng, p);
    random_memory_items(rng, p);
    const int stages = uni(rng, 1, std::min(n, 8));
    random_memory_cap(rng, p, stages);
    for (int t = 0; t < 20; ++t) {
      int i = uni(rng, 0, n - 1), j = uni(rng, i + 1, n);
      const int k = uni(rng, 0, stages - 1);
      const double c = stage_cost(p, i, j), rc = ref_stage_cost(p, i, j);
      const double m = stage_memory(p, k, i, j), rm = ref_stage_memory(p, k, i, j);
      ++checked;
      if (!near(c, rc, 1e-12) || !near(m, rm, 1e-12)) {
        ADD_FAILURE() << "[" << i << "," << j << ") k=" << k << ": stage_cost " << c << " vs reference " << rc
                      << ", stage_memory " << m << " vs reference " << rm << "\n"
                      << describe(p, stages);
        return;
      }
    }
  }
  EXPECT_EQ(checked, 400 * 20);
}

TEST(ChainPartition, RandomChainsMatchBruteForce) {
  RandomRun run;
  run_random(/*dag=*/false, 7001, 80, run);
  expect_mix(run, 80);
}

TEST(ChainPartition, RandomDagsMatchBruteForce) {
  RandomRun run;
  run_random(/*dag=*/true, 9002, 80, run);
  expect_mix(run, 80);
}

// ------------------------------------------------------------------ edge cases

ChainProblem small_chain() {
  // compute {1,2,3}; value 0->1 costs 5, value 1->2 costs 0.5.
  ChainProblem p;
  p.compute = {1, 2, 3};
  p.transfers = {{0, {1}, 5.0}, {1, {2}, 0.5}};
  return p;
}

TEST(ChainPartition, OneStage) {
  ChainProblem p = small_chain();
  ChainPartition r = min_bottleneck_partition(p, 1);
  ASSERT_TRUE(r.feasible);
  EXPECT_TRUE(r.starts.empty());
  EXPECT_DOUBLE_EQ(r.bottleneck, 6.0);  // 1+2+3, every transfer internal

  // Memory of the single stage: resident read by items 0 and 2 (10 bytes,
  // held once) + inflight 4 x activations (1+1+1) = 22.
  p.resident = {{{0, 2}, 10.0}};
  p.activation = {1, 1, 1};
  p.inflight = {4};
  EXPECT_DOUBLE_EQ(stage_memory(p, 0, 0, 3), 22.0);
  p.memory_cap = 22.0;  // exactly at the cap: fits
  r = min_bottleneck_partition(p, 1);
  ASSERT_TRUE(r.feasible);
  EXPECT_DOUBLE_EQ(r.bottleneck, 6.0);
  p.memory_cap = 21.0;
  EXPECT_FALSE(min_bottleneck_partition(p, 1).feasible);

  // One item.
  ChainProblem one;
  one.compute = {7.5};
  r = min_bottleneck_partition(one, 1);
  ASSERT_TRUE(r.feasible);
  EXPECT_TRUE(r.starts.empty());
  EXPECT_DOUBLE_EQ(r.bottleneck, 7.5);
}

TEST(ChainPartition, StagesEqualItems) {
  ChainProblem p = small_chain();
  // Every item its own stage: costs 1, 2+5, 3+0.5 -> bottleneck 7.
  ChainPartition r = min_bottleneck_partition(p, 3);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{1, 2}));
  EXPECT_DOUBLE_EQ(r.bottleneck, 7.0);
  // The only partition needs the cut before item 2.
  p.allowed = {true, true, false, true};
  EXPECT_FALSE(min_bottleneck_partition(p, 3).feasible);
  // Two stages with that cut forbidden: only {1}: max(1, 2+3+5) = 10.
  r = min_bottleneck_partition(p, 2);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{1}));
  EXPECT_DOUBLE_EQ(r.bottleneck, 10.0);
  // Memory: a param read by items 0 and 2 is held by both stages that read it.
  // With 1F1B inflight {3,2,1} and activations {4,1,1}: stage 0 holds
  // 10 + 3*4 = 22, stage 1 holds 2*1 = 2, stage 2 holds 10 + 1*1 = 11.
  p.allowed.clear();
  p.resident = {{{0, 2}, 10.0}};
  p.activation = {4, 1, 1};
  p.inflight = {3, 2, 1};
  EXPECT_DOUBLE_EQ(stage_memory(p, 0, 0, 1), 22.0);
  EXPECT_DOUBLE_EQ(stage_memory(p, 1, 1, 2), 2.0);
  EXPECT_DOUBLE_EQ(stage_memory(p, 2, 2, 3), 11.0);
  p.memory_cap = 22.0;
  EXPECT_TRUE(min_bottleneck_partition(p, 3).feasible);
  p.memory_cap = 21.0;
  EXPECT_FALSE(min_bottleneck_partition(p, 3).feasible);
}

TEST(ChainPartition, AllZeroCostsStillGiveNonEmptyStages) {
  for (int stages : {1, 2, 4, 7, 10}) {
    ChainProblem p;
    p.compute.assign(10, 0.0);
    for (int i = 0; i + 1 < 10; ++i) p.transfers.push_back({i, {i + 1}, 0.0});
    const ChainPartition r = min_bottleneck_partition(p, stages);
    ASSERT_TRUE(r.feasible) << stages;
    EXPECT_EQ(validate(p, stages, r), "") << stages;
    EXPECT_EQ(r.bottleneck, 0.0) << stages;
  }
}

TEST(ChainPartition, HugeTransferIsNotCut) {
  // Six items of compute 1; the value i->i+1 costs 0.1 except 2->3 (1000).
  // Two stages, by cut position b:
  //   b=1: max(1, 5+0.1) = 5.1     b=2: max(2, 4+0.1) = 4.1
  //   b=3: max(3, 3+1000) = 1003   b=4: max(4, 2+0.1) = 4
  //   b=5: max(5, 1+0.1) = 5
  // so b=4 with bottleneck 4 (without the huge edge b=3 would win with 3.1).
  ChainProblem p;
  p.compute.assign(6, 1.0);
  for (int i = 0; i < 5; ++i) p.transfers.push_back({i, {i + 1}, i == 2 ? 1000.0 : 0.1});
  ChainPartition r = min_bottleneck_partition(p, 2);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{4}));
  EXPECT_NEAR(r.bottleneck, 4.0, 1e-12);

  p.transfers[2].cost = 0.1;
  r = min_bottleneck_partition(p, 2);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{3}));
  EXPECT_NEAR(r.bottleneck, 3.1, 1e-12);
}

TEST(ChainPartition, SkipCostsOncePerConsumerStage) {
  // compute {1,1,2,3,1,1}; value S from item 0 read by items 2 and 5 (cost 4);
  // values i->i+1 cost 1 each.
  ChainProblem p;
  p.compute = {1, 1, 2, 3, 1, 1};
  p.transfers = {{0, {2, 5}, 4.0}};
  for (int i = 0; i < 5; ++i) p.transfers.push_back({i, {i + 1}, 1.0});
  // Stage costs (S is paid by each stage holding a consumer, never relayed):
  //   [1,3) = 1+2 + S 4 + (0->1) 1       = 8
  //   [3,6) = 3+1+1 + S 4 + (2->3) 1     = 10   (S paid a second time)
  //   [1,6) = 8 + S 4 once + (0->1) 1    = 13   (two consumers, one stage)
  //   [3,5) = 3+1 + (2->3) 1             = 5    (S passes by: not charged)
  //   [0,3) = 4 (S's consumer 2 is local)
  EXPECT_DOUBLE_EQ(stage_cost(p, 1, 3), 8.0);
  EXPECT_DOUBLE_EQ(stage_cost(p, 3, 6), 10.0);
  EXPECT_DOUBLE_EQ(stage_cost(p, 1, 6), 13.0);
  EXPECT_DOUBLE_EQ(stage_cost(p, 3, 5), 5.0);
  EXPECT_DOUBLE_EQ(stage_cost(p, 0, 3), 4.0);
  // Three stages, all ten partitions:
  //   {1,2}: 1, 1+1,  2+3+1+1+4+1 = 12      -> 12
  //   {1,3}: 1, 8,    10                    -> 10
  //   {1,4}: 1, 1+2+3+4+1 = 11, 1+1+4+1 = 7 -> 11
  //   {1,5}: 1, 1+2+3+1+4+1 = 12, 1+4+1     -> 12
  //   {2,3}: 2, 2+4+1 = 7, 10               -> 10
  //   {2,4}: 2, 2+3+4+1 = 10, 7             -> 10
  //   {2,5}: 2, 2+3+1+4+1 = 11, 6           -> 11
  //   {3,4}: 4, 3+1 = 4, 1+1+4+1 = 7        -> 7
  //   {3,5}: 4, 5, 1+4+1 = 6                -> 6   <- optimum
  //   {4,5}: 7, 1+1 = 2, 6                  -> 7
  // (Charging S only at its first consumer stage would give 4 at {3,4};
  // relaying it through every stage up to its last consumer would give 7.)
  ChainPartition r = min_bottleneck_partition(p, 3);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{3, 5}));
  EXPECT_NEAR(r.bottleneck, 6.0, 1e-12);
  // Forbid the cut before item 5: of the rest only {3,4} reaches 7.
  p.allowed.assign(7, true);
  p.allowed[5] = false;
  r = min_bottleneck_partition(p, 3);
  ASSERT_TRUE(r.feasible);
  EXPECT_NEAR(r.bottleneck, 7.0, 1e-12);
  EXPECT_EQ(r.starts, (Ints{3, 4}));
}

TEST(ChainPartition, ReceiveCostIsPaidOncePerReceivingStage) {
  // compute {1,1,1,1}; items 0 and 1 both feed item 2 (two values), 2 -> 3.
  // Values cost nothing on their own; receiving anything costs 3 once.
  ChainProblem p;
  p.compute = {1, 1, 1, 1};
  p.transfers = {{0, {2}, 0.0}, {1, {2}, 0.0}, {2, {3}, 0.0}};
  p.receive_cost = 3.0;
  EXPECT_DOUBLE_EQ(stage_cost(p, 0, 2), 2.0);  // receives nothing
  EXPECT_DOUBLE_EQ(stage_cost(p, 2, 4), 5.0);  // two values, one charge
  EXPECT_DOUBLE_EQ(stage_cost(p, 1, 2), 1.0);  // item 1 reads no earlier value
  EXPECT_DOUBLE_EQ(stage_cost(p, 1, 3), 5.0);  // value 0 -> 2
  EXPECT_DOUBLE_EQ(stage_cost(p, 3, 4), 4.0);
  // Two stages: {1}: 1 | 3+3 = 6; {2}: 2 | 2+3 = 5; {3}: 3 | 1+3 = 4 <- the
  // optimum.
  ChainPartition r = min_bottleneck_partition(p, 2);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{3}));
  EXPECT_DOUBLE_EQ(r.bottleneck, 4.0);
  // Three stages: {1,2}: 1, 1 (nothing in), 2+3 = 5; {1,3}: 1, 2+3 = 5, 4;
  // {2,3}: 2, 1+3 = 4, 4 <- the optimum.
  r = min_bottleneck_partition(p, 3);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{2, 3}));
  EXPECT_DOUBLE_EQ(r.bottleneck, 4.0);
}

TEST(ChainPartition, AllowedEndsAreIgnored) {
  ChainProblem p;
  p.compute = {1, 1, 1, 1};
  p.allowed = {false, false, true, false, false};  // only the cut before item 2
  ChainPartition r = min_bottleneck_partition(p, 2);
  ASSERT_TRUE(r.feasible);
  EXPECT_EQ(r.starts, (Ints{2}));
  EXPECT_DOUBLE_EQ(r.bottleneck, 2.0);
  EXPECT_FALSE(min_bottleneck_partition(p, 3).feasible);
  // No allowed cut at all: one stage still works, two do not.
  p.allowed = {true, false, false, false, true};
  EXPECT_TRUE(min_bottleneck_partition(p, 1).feasible);
  EXPECT_FALSE(min_bottleneck_partition(p, 2).feasible);
}

// ------------------------------------------------------------------ large

ChainProblem large_dag(std::uint64_t seed, int n) {
  Rng rng(seed);
  ChainProblem p;
  p.compute.resize(n);
  for (double& x : p.compute) x = coin(rng, 0.01) ? real(rng, 5, 20) : real(rng, 0, 1);
  std::vector<Ints> readers(n);
  for (int c = 1; c < n; ++c) {
    readers[c - 1].push_back(c);
    if (c >= 2 && coin(rng, 0.7)) readers[uni(rng, std::max(0, c - 8), c - 2)].push_back(c);
    if (coin(rng, 0.01)) readers[uni(rng, 0, c - 1)].push_back(c);  // long skip
  }
  for (int prod = 0; prod < n; ++prod) {
    Ints& r = readers[prod];
    if (r.empty()) continue;
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    p.transfers.push_back({prod, r, real(rng, 0, 0.5)});
  }
  return p;
}

TEST(ChainPartition, LargeRandomDag) {
  const int n = 100000;
  const ChainProblem p = large_dag(4242, n);
  double max_c = 0.0, sum_c = 0.0;
  for (double x : p.compute) {
    max_c = std::max(max_c, x);
    sum_c += x;
  }
  int solved = 0;
  for (int stages : {8, 64}) {
    const ChainPartition r = min_bottleneck_partition(p, stages);
    ASSERT_TRUE(r.feasible) << stages;
    ASSERT_EQ(static_cast<int>(r.starts.size()), stages - 1);
    Ints b{0};
    b.insert(b.end(), r.starts.begin(), r.starts.end());
    b.push_back(n);
    for (int k = 0; k < stages; ++k) ASSERT_LT(b[k], b[k + 1]) << stages << " stage " << k;
    double worst = 0.0, ref_worst = 0.0;
    for (int k = 0; k < stages; ++k) {
      worst = std::max(worst, stage_cost(p, b[k], b[k + 1]));
      ref_worst = std::max(ref_worst, ref_stage_cost(p, b[k], b[k + 1]));
    }
    EXPECT_NEAR(worst, r.bottleneck, 1e-9 * r.bottleneck) << stages;
    EXPECT_NEAR(ref_worst, r.bottleneck, 1e-9 * r.bottleneck) << stages;
    EXPECT_GE(r.bottleneck, std::max(max_c, sum_c / stages) * (1 - 1e-12)) << stages;
    // Equal item counts per stage: a valid partition, so no better than the optimum.
    double equal = 0.0;
    for (int k = 0; k < stages; ++k)
      equal = std::max(equal, stage_cost(p, static_cast<int>(int64_t{k} * n / stages),
                                         static_cast<int>(int64_t{k + 1} * n / stages)));
    EXPECT_LE(r.bottleneck, equal * (1 + 1e-12)) << stages;
    std::printf("  n=%d stages=%d: bottleneck %.6f (lower bound %.6f, equal split %.6f)\n", n, stages, r.bottleneck,
                std::max(max_c, sum_c / stages), equal);
    ++solved;
  }
  EXPECT_EQ(solved, 2);
}

}  // namespace
}  // namespace ppc::analysis
