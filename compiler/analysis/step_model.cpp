#include "compiler/analysis/step_model.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "runtime/schedule/lowering.h"
#include "runtime/schedule/registry.h"
#include "runtime/schedule/simulator.h"
#include "schemas/error.h"

namespace ppc::analysis {

namespace sched = ppc::runtime::schedule;

std::vector<sched::StageEdge> stage_edges(const CostModel& m, const std::vector<int>& starts) {
  const int stages = static_cast<int>(starts.size()) + 1;
  const int n = static_cast<int>(m.items.size());
  std::vector<int> stage_of(n, 0);
  for (int i = 0, s = 0; i < n; ++i) {
    while (s < stages - 1 && i >= starts[s]) ++s;
    stage_of[i] = s;
  }
  // A value goes once to each later stage reading it; the values of a stage
  // pair travel as one message (packed).
  std::map<std::pair<int, int>, std::pair<double, double>> bytes;
  for (size_t k = 0; k < m.reads.size(); ++k) {
    const auto& [producer, readers] = m.reads[k];
    std::set<int> to;
    for (int r : readers)
      if (stage_of[r] != stage_of[producer]) to.insert(stage_of[r]);
    for (int s : to) {
      auto& b = bytes[{stage_of[producer], s}];
      if (k < m.read_bytes.size()) {
        b.first += m.read_bytes[k].first;
        b.second += m.read_bytes[k].second;
      }
    }
  }
  std::vector<sched::StageEdge> out;
  for (const auto& [edge, b] : bytes) out.push_back({edge.first, edge.second, b.first, b.second});
  return out;
}

double predict_step_ms(const CostModel& m, const std::vector<int>& starts, const StepOptions& o,
                       std::string* schedule_used, Evaluation* evaluation) {
  const int stages = static_cast<int>(starts.size()) + 1;
  std::vector<sched::StageEdge> list = stage_edges(m, starts);
  for (auto& e : list) {
    e.bytes *= o.micro_batch_size;
    e.grad_bytes *= o.micro_batch_size;
  }
  sched::StageGraph graph = sched::StageGraph::from_edges(stages, list);

  std::string name = o.schedule;
  sched::Schedule compute;
  try {
    compute = sched::make_compute_schedule(name, stages, 1, o.chunks, false);
  } catch (const Error&) {
    name = "1f1b";
    compute = sched::make_compute_schedule(name, stages, 1, o.chunks, false);
  }
  if (schedule_used) *schedule_used = name;
  Evaluation local;
  Evaluation& e = evaluation ? *evaluation : local;
  e = evaluate(m, starts);
  sched::SimOptions so;
  // Where the step options price a message, the simulator charges each one
  // (in flight and at both ends' ranks); the stage costs' share of
  // communication (the partitioner's objective) would count it twice.
  for (double c : o.prices_messages() ? e.stage_compute : e.stage_costs) {
    double mb = c * o.micro_batch_size;
    double f = mb * o.forward_fraction, b = mb - f;
    // The first stage reads model inputs alone: no input gradients.
    so.costs.push_back(sched::StageCost{f, b, 0, 0}.filled(!so.costs.empty()));
  }
  sched::set_message_cost(so, o.message);
  so.cores = o.cores;
  so.replicas = o.replicas;
  if (o.replicas > 1) {
    so.grad_bytes.assign(static_cast<size_t>(stages), 0.0);
    for (size_t k = 0; k < m.param_bytes.size(); ++k) {
      const int stage =
          static_cast<int>(std::upper_bound(starts.begin(), starts.end(), static_cast<int>(k)) - starts.begin());
      so.grad_bytes[static_cast<size_t>(stage)] += m.param_bytes[k];
    }
  }
  auto lowered = sched::hoist_receives(sched::add_communication(compute, stages, graph), 1);
  return sched::simulate(lowered, stages, graph, so).step + o.overhead_ms;
}

namespace {

// The positions a cut may take, ascending.
std::vector<int> cut_places(const CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  const auto& allowed = m.problem.allowed;
  std::vector<int> places;
  for (int b = 1; b < n; ++b)
    if (allowed.empty() || allowed[b]) places.push_back(b);
  return places;
}

// Every stage within the model's memory cap (if any).
bool fits_memory(const CostModel& m, const Evaluation& e) {
  if (!(m.problem.memory_cap > 0)) return true;
  for (double x : e.stage_memory)
    if (x > m.problem.memory_cap) return false;
  return true;
}

// Moves one cut at a time, to the allowed position 1, 2, 4, ... places
// before or after it, taking the move that shortens the simulated step most,
// until none shortens it by min_gain (at most 64 moves). The charged
// searches place the cuts for a bottleneck; the step also depends on where
// the compute sits relative to the messages (fill and drain), which only the
// simulator sees. Each round simulates (stages - 1) x 2 log2(cut places)
// splits.
void refine(const CostModel& m, std::vector<int>& starts, double& best, const StepOptions& step) {
  const std::vector<int> places = cut_places(m);
  const int P = static_cast<int>(places.size());
  for (int round = 0; round < 64; ++round) {
    std::vector<int> pick;
    double pick_t = best;
    for (size_t k = 0; k < starts.size(); ++k) {
      const int at = static_cast<int>(std::lower_bound(places.begin(), places.end(), starts[k]) - places.begin());
      for (int dir : {-1, 1})
        for (int d = 1; d < P; d *= 2) {
          const int q = at + dir * d;
          if (q < 0 || q >= P) break;
          std::vector<int> cand = starts;
          cand[k] = places[q];
          if ((k > 0 && cand[k] <= cand[k - 1]) || (k + 1 < cand.size() && cand[k] >= cand[k + 1])) break;
          Evaluation e;
          const double t = predict_step_ms(m, cand, step, nullptr, &e);
          if (t < pick_t && t < best * (1 - step.min_gain) && fits_memory(m, e)) {
            pick_t = t;
            pick = cand;
          }
        }
    }
    if (pick.empty()) return;
    starts = pick;
    best = pick_t;
  }
}

// Where the splits are few (allowed cut places choose stages - 1: module
// boundaries, small graphs), every one through the simulator: the fastest
// that fits, taken if it gains min_gain on `best`. Returns false, touching
// nothing, where there are more than `limit`.
bool enumerate_all(const CostModel& m, std::vector<int>& starts, double& best, const StepOptions& step, double limit) {
  const std::vector<int> places = cut_places(m);
  const int P = static_cast<int>(places.size()), K = static_cast<int>(starts.size());
  double count = 1;  // C(P, K)
  for (int i = 0; i < K && count <= limit; ++i) count = count * (P - i) / (i + 1);
  if (K == 0 || count > limit) return false;
  std::vector<int> pick, idx(K);
  double pick_t = best * (1 - step.min_gain);
  for (int i = 0; i < K; ++i) idx[i] = i;
  std::vector<int> cand(K);
  while (true) {
    for (int i = 0; i < K; ++i) cand[i] = places[idx[i]];
    Evaluation e;
    const double t = predict_step_ms(m, cand, step, nullptr, &e);
    if (t < pick_t && fits_memory(m, e)) {
      pick_t = t;
      pick = cand;
    }
    int i = K - 1;  // next combination, lexicographic
    while (i >= 0 && idx[i] == P - K + i) --i;
    if (i < 0) break;
    ++idx[i];
    for (int j = i + 1; j < K; ++j) idx[j] = idx[j - 1] + 1;
  }
  if (!pick.empty()) {
    starts = pick;
    best = pick_t;
  }
  return true;
}

}  // namespace

std::vector<int> search_by_step(const CostModel& m, std::vector<int> starts, const StepOptions& step,
                                double* predicted_ms) {
  double best = predict_step_ms(m, starts, step);
  const int stages = static_cast<int>(starts.size()) + 1;
  if (!step.prices_messages() || stages < 2) {
    if (predicted_ms) *predicted_ms = best;
    return starts;
  }
  // Other candidates only where the model prices communication at all (else
  // each is the min-bottleneck split).
  if (m.problem.receive_cost > 0 || !m.problem.transfers.empty()) {
    // The candidates: the split that balances compute alone (where a
    // message's cost at the ranks is small next to a stage's compute, or
    // hides behind it, the objective's communication only unbalances the
    // compute), then the charged ones: per message of a micro-batch each way,
    // in the model's per-sample unit, its time in flight and at the two ends.
    // Where a message's bytes take rank time at its ends too, its bytes are
    // charged that as well: the objective prices them in flight, at the
    // profile's link rate, and each end spends that rate over
    // message.rank_bytes_per_second times as long on them.
    const MessageCost& msg = step.message;
    const double ends = msg.rank_bytes_per_second > 0 && msg.bytes_per_second > 0
                            ? msg.bytes_per_second / msg.rank_bytes_per_second
                            : 0.0;
    std::vector<ChainProblem> candidates(1, m.problem);
    candidates[0].transfers.clear();
    candidates[0].receive_cost = 0;
    for (double charge : {0.25, 0.5, 1.0, 2.0, 4.0}) {
      candidates.push_back(m.problem);
      candidates.back().receive_cost += 2.0 * charge * (msg.latency_ms + 2 * msg.rank_ms) / step.micro_batch_size;
      for (auto& t : candidates.back().transfers) t.cost *= 1 + 2 * charge * ends;
    }
    // Independent exact searches, most of the step search's time on a large
    // graph: run them at once, then judge them in order (deterministic).
    std::vector<ChainPartition> found(candidates.size());
    std::vector<std::exception_ptr> failed(candidates.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t k; (k = next++) < candidates.size();) try {
          found[k] = min_bottleneck_partition(candidates[k], stages);
        } catch (...) { failed[k] = std::current_exception(); }
    };
    const size_t workers = std::min<size_t>(candidates.size(), std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (size_t w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (size_t k = 0; k < candidates.size(); ++k) {
      if (failed[k]) std::rethrow_exception(failed[k]);
      const ChainPartition& cp = found[k];
      if (!cp.feasible || cp.starts == starts) continue;
      const double t = predict_step_ms(m, cp.starts, step);
      if (t < best * (1 - step.min_gain)) {
        starts = cp.starts;
        best = t;
      }
    }
  }
  if (!enumerate_all(m, starts, best, step, step.enumerate_splits)) refine(m, starts, best, step);
  if (predicted_ms) *predicted_ms = best;
  return starts;
}

AutoPartition auto_partition_by_step(const ir::Graph& g, const std::vector<bool>& const_like, int stages,
                                     const CostModelOptions& options, const StepOptions& step) {
  AutoPartition best = auto_partition(g, const_like, stages, options);
  best.starts = search_by_step(best.model, best.starts, step, &best.predicted_step_ms);
  predict_step_ms(best.model, best.starts, step, &best.predicted_schedule, &best.eval);
  best.cuts = cuts_at(g, best.model, best.starts);
  return best;
}

}  // namespace ppc::analysis
