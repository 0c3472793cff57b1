#include "compiler/analysis/chain_partition.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>

namespace ppc::analysis {

namespace {

bool meets(const std::vector<int>& sorted, int i, int j) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), i);
  return it != sorted.end() && *it < j;
}

// Fenwick tree over positions 1..n of a difference array: add(l, x) adds x to
// every position >= l; prefix(j) is the value at j. largest_at_most() finds
// the largest j with prefix(j) + extra(j) <= t for a predicate that is
// monotone in j (true, then false).
class Fenwick {
 public:
  explicit Fenwick(int n) : n_(n), t_(n + 1, 0.0L) {
    top_ = 1;
    while (top_ * 2 <= n_) top_ *= 2;
  }
  void clear() { std::fill(t_.begin(), t_.end(), 0.0L); }
  void add(int l, long double x) {
    for (int k = l; k <= n_; k += k & -k) t_[k] += x;
  }
  template <typename Extra>
  int largest_at_most(long double limit, const Extra& extra) const {
    int pos = 0;
    long double acc = 0.0L;
    for (int step = top_; step > 0; step >>= 1) {
      int nx = pos + step;
      if (nx <= n_ && acc + t_[nx] + extra(nx) <= limit) {
        pos = nx;
        acc += t_[nx];
      }
    }
    return pos;
  }

 private:
  int n_, top_;
  std::vector<long double> t_;
};

// "Value v is charged to stage [i, j) iff j > (first reader of v at or after
// i)": as the start i sweeps right, that first reader moves along v's readers.
// One event list per start position: (first position the charge applies to, amount).
struct Sweep {
  std::vector<std::vector<std::pair<int, double>>> at;  // at[i]: Fenwick adds when the start reaches i

  Sweep(int n) : at(n + 1) {}
  // readers sorted unique; the charge is live for starts i in [from, ...).
  void add(const std::vector<int>& readers, int from, double amount) {
    if (amount == 0.0 || readers.empty()) return;
    size_t r = std::lower_bound(readers.begin(), readers.end(), from) - readers.begin();
    if (r == readers.size()) return;
    // Starts in [from, readers[r]]: charged for ends j > readers[r] (Fenwick position readers[r]+1).
    at[from].push_back({readers[r] + 1, amount});
    for (; r < readers.size(); ++r) {
      int leave = readers[r] + 1;  // first start past this reader
      if (leave > static_cast<int>(at.size()) - 1) break;
      at[leave].push_back({readers[r] + 1, -amount});
      if (r + 1 < readers.size()) at[leave].push_back({readers[r + 1] + 1, amount});
    }
  }
};

// first_in[i]: the first item at or after i that reads a transfer produced
// before i (n: none), so a stage [i, j) receives something iff j > first_in[i].
// A reader r of a value whose previous reader (or producer) is q is that
// value's first reader at or after i for the starts i in (q, r]; first_in is
// the smallest such r, found by sweeping i with a min-heap. O(E log E).
std::vector<int> first_received(const ChainProblem& p, int n) {
  std::vector<std::vector<int>> opens(n + 1);
  for (const auto& t : p.transfers) {
    int q = t.producer;
    for (int r : t.consumers) {
      if (q + 1 <= n) opens[q + 1].push_back(r);
      q = r;
    }
  }
  std::vector<int> out(n, n);
  std::priority_queue<int, std::vector<int>, std::greater<int>> live;
  for (int i = 0; i < n; ++i) {
    for (int r : opens[i]) live.push(r);
    while (!live.empty() && live.top() < i) live.pop();
    if (!live.empty()) out[i] = live.top();
  }
  return out;
}

// The chain's ends always bound a stage, whatever `allowed` says.
bool cut_allowed(const ChainProblem& p, int n, int b) { return b == 0 || b == n || p.allowed.empty() || p.allowed[b]; }

// Memory: the last feasible end of every start, per stage index ([stage
// index][start]; -1 where a cut is not allowed). It does not depend on the
// bottleneck bound, so it is computed once.
std::vector<std::vector<int>> memory_ends(const ChainProblem& p, int n, int stages) {
  std::vector<long double> act(n + 1, 0.0L);
  for (int k = 0; k < n; ++k) act[k + 1] = act[k] + (p.activation.empty() ? 0.0 : p.activation[k]);
  Sweep mem(n);
  for (const auto& r : p.resident) mem.add(r.readers, 0, r.bytes);
  Fenwick f(n);
  std::vector<std::vector<int>> mem_end(stages, std::vector<int>(n, -1));
  for (int i = 0; i < n; ++i) {
    for (auto [pos, x] : mem.at[i]) f.add(pos, x);
    if (!cut_allowed(p, n, i)) continue;
    for (int k = 0; k < stages; ++k) {
      long double inflight = p.inflight.empty() ? 1.0L : p.inflight[k];
      mem_end[k][i] = f.largest_at_most(p.memory_cap, [&](int j) { return inflight * (act[j] - act[i]); });
    }
  }
  return mem_end;
}

// Decides "is there a partition into `stages` stages with every stage cost
// <= bound", exactly, for any bound; what does not depend on the bound is
// computed once, at construction.
class Feasibility {
 public:
  Feasibility(const ChainProblem& p, int stages)
      : p_(p),
        n_(static_cast<int>(p.compute.size())),
        stages_(stages),
        prefix_(n_ + 1, 0.0L),
        comm_(n_),
        f_(n_),
        end_of_(n_, -1) {
    for (int k = 0; k < n_; ++k) prefix_[k + 1] = prefix_[k] + std::max(0.0, p.compute[k]);
    for (const auto& t : p.transfers) {
      comm_.add(t.consumers, t.producer + 1, t.cost);
      transfer_total_ += t.cost;
    }
    if (p.receive_cost != 0.0) first_in_ = first_received(p, n_);
    if (p.memory_cap > 0.0) mem_end_ = memory_ends(p, n_, stages);
  }

  long double compute_total() const { return prefix_[n_]; }
  double transfer_total() const { return transfer_total_; }

  // With `keep`, remembers the stages of a feasible partition for starts().
  bool operator()(double bound, bool keep) {
    last_ends(bound);
    return layers(keep);
  }

  // The first item of stages 1..N-1 of the partition the last feasible
  // call with `keep` found.
  std::vector<int> starts() const {
    std::vector<int> out(stages_ - 1, 0);
    int j = n_;
    for (int k = stages_; k >= 1; --k) {
      int i = pred_[static_cast<size_t>(k) * (n_ + 1) + j];
      if (k > 1) out[k - 2] = i;
      j = i;
    }
    return out;
  }

 private:
  // end_of_[i]: the last end j of a stage [i, j) costing at most `bound`,
  // for every allowed start i, in one sweep over the starts.
  void last_ends(double bound) {
    f_.clear();
    int charged = -1;  // Fenwick position of the previous start's receive_cost
    for (int i = 0; i < n_; ++i) {
      for (auto [pos, x] : comm_.at[i]) f_.add(pos, x);
      if (!first_in_.empty()) {
        if (charged > 0) f_.add(charged, -p_.receive_cost);
        charged = first_in_[i] < n_ ? first_in_[i] + 1 : -1;
        if (charged > 0) f_.add(charged, p_.receive_cost);
      }
      if (!cut_allowed(p_, n_, i)) continue;
      long double limit = static_cast<long double>(bound) + prefix_[i];
      end_of_[i] = f_.largest_at_most(limit, [&](int j) { return prefix_[j]; });
    }
  }

  // Which ends k stages can reach, layer by layer: stage k may end at j when
  // some reachable start before j allows an end at j or later.
  bool layers(bool keep) {
    const bool capped = !mem_end_.empty();
    if (keep) pred_.assign(static_cast<size_t>(stages_ + 1) * (n_ + 1), -1);
    std::vector<char> reach(n_ + 1, 0), next(n_ + 1, 0);
    reach[0] = 1;
    for (int k = 1; k <= stages_; ++k) {
      std::fill(next.begin(), next.end(), 0);
      int best = -1, arg = -1;
      bool any = false;
      for (int j = 1; j <= n_; ++j) {
        int i = j - 1;
        if (reach[i]) {
          int lim = end_of_[i];
          if (capped) lim = std::min(lim, mem_end_[k - 1][i]);
          if (lim > best) best = lim, arg = i;
        }
        if (best >= j && cut_allowed(p_, n_, j)) {
          next[j] = 1;
          any = true;
          if (keep) pred_[static_cast<size_t>(k) * (n_ + 1) + j] = arg;
        }
      }
      if (!any) return false;
      reach.swap(next);
    }
    return reach[n_] != 0;
  }

  const ChainProblem& p_;
  const int n_, stages_;
  std::vector<long double> prefix_;  // prefix_[j]: compute of items [0, j), negative costs as 0
  Sweep comm_;
  double transfer_total_ = 0.0;
  std::vector<int> first_in_;              // empty: no receive_cost
  std::vector<std::vector<int>> mem_end_;  // empty: no memory cap
  Fenwick f_;
  std::vector<int> end_of_;  // last feasible end of each allowed start
  std::vector<int> pred_;    // [k * (n + 1) + j]: start of the stage k ending at j
};

}  // namespace

double stage_cost(const ChainProblem& p, int i, int j) {
  double c = 0.0;
  bool received = false;
  for (int k = i; k < j; ++k) c += p.compute[k];
  for (const auto& t : p.transfers)
    if (t.producer < i && meets(t.consumers, i, j)) {
      c += t.cost;
      received = true;
    }
  return received ? c + p.receive_cost : c;
}

double stage_memory(const ChainProblem& p, int k, int i, int j) {
  double m = 0.0;
  for (const auto& r : p.resident)
    if (meets(r.readers, i, j)) m += r.bytes;
  double act = 0.0;
  if (!p.activation.empty())
    for (int x = i; x < j; ++x) act += p.activation[x];
  double inflight = p.inflight.empty() ? 1.0 : p.inflight[k];
  return m + inflight * act;
}

ChainPartition min_bottleneck_partition(const ChainProblem& p, int stages) {
  const int n = static_cast<int>(p.compute.size());
  if (stages < 1 || stages > n)
    throw std::invalid_argument("min_bottleneck_partition: need 1 <= stages <= items (" + std::to_string(stages) +
                                ", " + std::to_string(n) + ")");
  if (!p.inflight.empty() && static_cast<int>(p.inflight.size()) < stages)
    throw std::invalid_argument("min_bottleneck_partition: inflight has fewer entries than stages");
  Feasibility feasible(p, stages);

  ChainPartition out;
  const long double total = feasible.compute_total();
  double lo = static_cast<double>(total) / stages,
         hi = static_cast<double>(total) + feasible.transfer_total() + std::max(0.0, p.receive_cost);
  for (double c : p.compute) lo = std::max(lo, c);
  // Is there any partition at all (allowed cuts, memory cap)? Then the sum of
  // everything, rounded up past the float error of its summation, is feasible.
  if (!feasible(std::numeric_limits<double>::infinity(), false)) return out;
  hi = std::max(hi, lo) * (1 + 1e-12) + 1e-300;
  if (feasible(lo, false)) {
    hi = lo;
  } else {
    // feasible(lo) is false, feasible(hi) true; feasibility is monotone in the bound.
    for (int it = 0; it < 200 && hi - lo > 1e-13 * hi; ++it) {
      double mid = lo + (hi - lo) / 2;
      if (mid <= lo || mid >= hi) break;
      if (feasible(mid, false))
        hi = mid;
      else
        lo = mid;
    }
  }
  feasible(hi, true);
  out.feasible = true;
  out.starts = feasible.starts();
  int prev = 0;
  for (int k = 0; k < stages; ++k) {
    int end = k + 1 < stages ? out.starts[k] : n;
    out.bottleneck = std::max(out.bottleneck, stage_cost(p, prev, end));
    prev = end;
  }
  return out;
}

}  // namespace ppc::analysis
