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
  auto allowed = [&](int b) { return b == 0 || b == n || p.allowed.empty() || p.allowed[b]; };

  std::vector<long double> prefix(n + 1, 0.0L);
  for (int k = 0; k < n; ++k) prefix[k + 1] = prefix[k] + std::max(0.0, p.compute[k]);

  Sweep comm(n);
  double transfer_total = 0.0;
  for (const auto& t : p.transfers) {
    comm.add(t.consumers, t.producer + 1, t.cost);
    transfer_total += t.cost;
  }
  const std::vector<int> first_in = p.receive_cost != 0.0 ? first_received(p, n) : std::vector<int>();

  // Memory: the last feasible end of every start, per stage index. It does
  // not depend on the bottleneck bound, so it is computed once.
  const bool capped = p.memory_cap > 0.0;
  std::vector<std::vector<int>> mem_end;  // [stage index][start]
  if (capped) {
    std::vector<long double> act(n + 1, 0.0L);
    for (int k = 0; k < n; ++k) act[k + 1] = act[k] + (p.activation.empty() ? 0.0 : p.activation[k]);
    Sweep mem(n);
    for (const auto& r : p.resident) mem.add(r.readers, 0, r.bytes);
    Fenwick f(n);
    mem_end.assign(stages, std::vector<int>(n, -1));
    for (int i = 0; i < n; ++i) {
      for (auto [pos, x] : mem.at[i]) f.add(pos, x);
      if (!allowed(i)) continue;
      for (int k = 0; k < stages; ++k) {
        long double inflight = p.inflight.empty() ? 1.0L : p.inflight[k];
        mem_end[k][i] = f.largest_at_most(p.memory_cap, [&](int j) { return inflight * (act[j] - act[i]); });
      }
    }
  }

  Fenwick f(n);
  std::vector<int> end_of(n, -1);  // last feasible end of each allowed start
  std::vector<int> pred;           // [k * (n + 1) + j]: start of the stage k ending at j
  auto feasible = [&](double bound, bool keep) -> bool {
    f.clear();
    int charged = -1;  // Fenwick position of the previous start's receive_cost
    for (int i = 0; i < n; ++i) {
      for (auto [pos, x] : comm.at[i]) f.add(pos, x);
      if (!first_in.empty()) {
        if (charged > 0) f.add(charged, -p.receive_cost);
        charged = first_in[i] < n ? first_in[i] + 1 : -1;
        if (charged > 0) f.add(charged, p.receive_cost);
      }
      if (!allowed(i)) continue;
      long double limit = static_cast<long double>(bound) + prefix[i];
      end_of[i] = f.largest_at_most(limit, [&](int j) { return prefix[j]; });
    }
    if (keep) pred.assign(static_cast<size_t>(stages + 1) * (n + 1), -1);
    std::vector<char> reach(n + 1, 0), next(n + 1, 0);
    reach[0] = 1;
    for (int k = 1; k <= stages; ++k) {
      std::fill(next.begin(), next.end(), 0);
      int best = -1, arg = -1;
      bool any = false;
      for (int j = 1; j <= n; ++j) {
        int i = j - 1;
        if (reach[i]) {
          int lim = end_of[i];
          if (capped) lim = std::min(lim, mem_end[k - 1][i]);
          if (lim > best) best = lim, arg = i;
        }
        if (best >= j && allowed(j)) {
          next[j] = 1;
          any = true;
          if (keep) pred[static_cast<size_t>(k) * (n + 1) + j] = arg;
        }
      }
      if (!any) return false;
      reach.swap(next);
    }
    return reach[n] != 0;
  };

  ChainPartition out;
  double lo = static_cast<double>(prefix[n]) / stages,
         hi = static_cast<double>(prefix[n]) + transfer_total + std::max(0.0, p.receive_cost);
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
  out.starts.assign(stages - 1, 0);
  int j = n;
  for (int k = stages; k >= 1; --k) {
    int i = pred[static_cast<size_t>(k) * (n + 1) + j];
    if (k > 1) out.starts[k - 2] = i;
    j = i;
  }
  int prev = 0;
  for (int k = 0; k < stages; ++k) {
    int end = k + 1 < stages ? out.starts[k] : n;
    out.bottleneck = std::max(out.bottleneck, stage_cost(p, prev, end));
    prev = end;
  }
  return out;
}

}  // namespace ppc::analysis
