#include "runtime/schedule/simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <tuple>

#include "schemas/error.h"

namespace ppc::runtime::schedule {

namespace {

using Key = std::tuple<int, int, int>;  // kind, stage, micro-batch

std::string text(Action::Kind kind, int stage, int microbatch) {
  return std::to_string(stage) + kind_name(kind) + std::to_string(microbatch);
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

class Simulator {
 public:
  Simulator(const Schedule& s, int num_stages, const StageGraph& g, const SimOptions& o)
      : sched_(s), graph_(g), opts_(o) {
    if (g.num_stages != num_stages)
      throw Error("stage graph has " + std::to_string(g.num_stages) + " stages, the schedule " +
                  std::to_string(num_stages));
    owner_ = stage_ranks(s, num_stages);
    if (!o.costs.empty() && o.costs.size() != 1 && o.costs.size() != static_cast<size_t>(num_stages))
      throw Error("costs given for " + std::to_string(o.costs.size()) + " stages, expected 1 or " +
                  std::to_string(num_stages));
    costs_ = o.costs.empty() ? std::vector<StageCost>(1) : o.costs;
    // Per stage: its producers and consumers on other ranks (one message
    // each per micro-batch and direction).
    // And the bytes of those messages: forward, activations in and out;
    // backward, their gradients.
    remote_.assign(num_stages, 0);
    remote_bytes_.assign(num_stages, {0.0, 0.0});
    for (int st = 0; st < num_stages; ++st) {
      for (int p : g.producers[st])
        if (owner_[p] != owner_[st]) {
          ++remote_[st];
          remote_bytes_[st].first += g.message_bytes(p, st, false);
          remote_bytes_[st].second += g.message_bytes(p, st, true);
        }
      for (int c : g.consumers[st])
        if (owner_[c] != owner_[st]) {
          ++remote_[st];
          remote_bytes_[st].first += g.message_bytes(st, c, false);
          remote_bytes_[st].second += g.message_bytes(st, c, true);
        }
    }
    for (size_t r = 0; r < s.size(); ++r)
      for (size_t i = 0; i < s[r].size(); ++i) {
        lowered_ = lowered_ || s[r][i].is_comm();
        const Action& a = s[r][i];
        where_.emplace(Key(a.kind, a.stage, a.microbatch), static_cast<int>(r));
      }
  }

  SimResult run() { return opts_.cores > 0 ? run_shared() : run_own_cores(); }

 private:
  // A core per rank: each rank's actions run back to back as their data
  // arrives, rank by rank until none can go on.
  SimResult run_own_cores() {
    const size_t P = sched_.size();
    SimResult res = empty_result();
    std::vector<size_t> next(P, 0);
    std::vector<double> free_at(P, 0);
    std::vector<int> in_flight(P, 0);
    for (bool progress = true; progress;) {
      progress = false;
      for (size_t r = 0; r < P; ++r) {
        while (next[r] < sched_[r].size()) {
          const Action& a = sched_[r][next[r]];
          waiting_.clear();
          std::optional<double> ready = ready_time(static_cast<int>(r), a);
          if (!ready) break;
          const double start = std::max(free_at[r], *ready);
          double end = start + duration(a);
          if (opts_.blocking_recv && (a.kind == Action::RECV_F || a.kind == Action::RECV_B))
            end = recv_arrival(static_cast<int>(r), a, start);
          done_[Key(a.kind, a.stage, a.microbatch)] = {start, end};
          res.timeline[r].push_back({a, start, end});
          free_at[r] = end;
          if (a.is_compute()) res.busy[r] += end - start;
          if (a.kind == Action::F) res.peak_in_flight[r] = std::max(res.peak_in_flight[r], ++in_flight[r]);
          if (a.kind == Action::B || a.kind == Action::W) --in_flight[r];
          ++next[r];
          progress = true;
        }
      }
    }
    for (size_t r = 0; r < P; ++r) res.makespan = std::max(res.makespan, free_at[r]);
    finish(res, next);
    return res;
  }

  // The ranks share opts_.cores cores: time runs forward event by event (an
  // action ends, a message arrives), and between events each of the k ranks
  // computing progresses at min(1, cores / k) of its own speed. Sends and
  // posted receives take no core; a blocking receive waits without one.
  SimResult run_shared() {
    const size_t P = sched_.size();
    SimResult res = empty_result();
    std::vector<size_t> next(P, 0);
    std::vector<int> in_flight(P, 0);
    std::vector<double> free_at(P, 0);
    struct Running {
      bool on = false, work = false;  // running; computing (else a blocking receive waiting)
      double start = 0, left = 0;     // its start; work left (computing) or the end of the wait
    };
    std::vector<Running> running(P);
    auto end_action = [&](size_t r, double start, double end) {
      const Action& a = sched_[r][next[r]];
      done_[Key(a.kind, a.stage, a.microbatch)] = {start, end};
      res.timeline[r].push_back({a, start, end});
      res.makespan = std::max(res.makespan, end);
      if (a.is_compute()) res.busy[r] += end - start;
      if (a.kind == Action::F) res.peak_in_flight[r] = std::max(res.peak_in_flight[r], ++in_flight[r]);
      if (a.kind == Action::B || a.kind == Action::W) --in_flight[r];
      ++next[r];
      free_at[r] = end;
      running[r].on = false;
    };
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<double> ends(P, inf);
    for (double now = 0;;) {
      // Start what can start now; actions taking no time end at once, and
      // may let other ranks go on.
      double wake = inf;  // the earliest later time some rank's next action gets its data
      for (bool progress = true; progress;) {
        progress = false;
        for (size_t r = 0; r < P; ++r)
          while (!running[r].on && next[r] < sched_[r].size()) {
            const Action& a = sched_[r][next[r]];
            waiting_.clear();
            std::optional<double> ready = ready_time(static_cast<int>(r), a);
            if (!ready) break;
            if (*ready > now) {
              wake = std::min(wake, *ready);
              break;
            }
            if (opts_.blocking_recv && (a.kind == Action::RECV_F || a.kind == Action::RECV_B)) {
              // It blocks from when its rank got to it, not from when its
              // data was sent.
              const double start = std::max(free_at[r], *ready);
              const double arrival = recv_arrival(static_cast<int>(r), a, start);
              if (arrival > now) {
                running[r] = {true, false, start, arrival};
                break;
              }
              end_action(r, start, arrival);
              progress = true;
              continue;
            } else if (const double d = duration(a); d > 0) {
              running[r] = {true, true, now, d};
              break;
            }
            end_action(r, now, now);
            progress = true;
          }
      }
      int computing = 0;
      for (const Running& x : running) computing += x.on && x.work ? 1 : 0;
      const double rate = computing > opts_.cores ? opts_.cores / computing : 1.0;
      double t = wake;
      for (size_t r = 0; r < P; ++r) {
        ends[r] = !running[r].on ? inf : running[r].work ? now + running[r].left / rate : running[r].left;
        t = std::min(t, ends[r]);
      }
      if (t == inf) break;  // every rank done, or a deadlock
      for (size_t r = 0; r < P; ++r) {
        if (!running[r].on) continue;
        if (ends[r] <= t)
          end_action(r, running[r].start, t);
        else if (running[r].work)
          running[r].left -= (t - now) * rate;
      }
      now = t;
    }
    finish(res, next);
    return res;
  }

  // A result with a place for every rank's busy time, peak and timeline.
  SimResult empty_result() const {
    SimResult res;
    res.busy.assign(sched_.size(), 0);
    res.peak_in_flight.assign(sched_.size(), 0);
    res.timeline.resize(sched_.size());
    return res;
  }

  // The deadlock report and bubble of a run that got as far as `next`.
  void finish(SimResult& res, const std::vector<size_t>& next) {
    const size_t P = sched_.size();
    for (size_t r = 0; r < P; ++r) {
      if (next[r] == sched_[r].size()) continue;
      const Action& a = sched_[r][next[r]];
      waiting_.clear();
      ready_time(static_cast<int>(r), a);  // fills waiting_
      res.deadlock = true;
      res.stuck.push_back({static_cast<int>(r), static_cast<int>(next[r]), a, waiting_});
    }
    double total_busy = 0;
    for (double b : res.busy) total_busy += b;
    if (res.makespan > 0 && P > 0) res.bubble_fraction = 1 - total_busy / (static_cast<double>(P) * res.makespan);
  }

  const StageCost& cost(int stage) const { return costs_.size() == 1 ? costs_[0] : costs_[stage]; }

  double duration(const Action& a) const {
    const double cpu = opts_.message_cpu > 0 ? opts_.message_cpu * remote_[a.stage] : 0.0;
    const double rate = opts_.message_cpu_bytes_per_ms;
    const double fwd = rate > 0 ? remote_bytes_[a.stage].first / rate : 0.0;
    const double bwd = rate > 0 ? remote_bytes_[a.stage].second / rate : 0.0;
    switch (a.kind) {
      case Action::F: return cost(a.stage).f + cpu + fwd;
      case Action::B: return cost(a.stage).b + cpu + bwd;
      case Action::I: return cost(a.stage).i + cpu + bwd;
      case Action::W: return cost(a.stage).w;
      default: return 0;
    }
  }

  // The end time of an action, or nullopt (recording it in waiting_ when
  // waiting_ is still empty) when it has not run.
  std::optional<std::pair<double, double>> find(Action::Kind kind, int stage, int mb) {
    auto it = done_.find(Key(kind, stage, mb));
    if (it != done_.end()) return it->second;
    if (waiting_.empty()) {
      auto w = where_.find(Key(kind, stage, mb));
      waiting_ =
          text(kind, stage, mb) + (w == where_.end() ? ", which no rank has" : " on rank " + std::to_string(w->second));
    }
    return std::nullopt;
  }

  // Folds the end of (kind, stage, mb) plus `delay` into `ready`; clears
  // `ready` and returns false when that action has not run.
  bool need(std::optional<double>& ready, Action::Kind kind, int stage, int mb, double delay = 0) {
    auto t = find(kind, stage, mb);
    if (!t) {
      ready.reset();
      return false;
    }
    if (ready) ready = std::max(*ready, t->second + delay);
    return true;
  }

  // How long the message from stage `from` to stage `to` takes in flight
  // (backward: the gradients of edge to -> from).
  double message_time(int from, int to, bool backward) const {
    if (!(opts_.bytes_per_ms > 0)) return opts_.comm;
    const double bytes = backward ? graph_.message_bytes(to, from, true) : graph_.message_bytes(from, to, false);
    return opts_.comm + bytes / opts_.bytes_per_ms;
  }

  // A message moves once both its send is issued and its receive is posted
  // (Gloo's rendezvous), and arrives message_time() later.
  bool need_message(std::optional<double>& ready, Action::Kind recv, int recv_stage, Action::Kind send, int send_stage,
                    int mb) {
    auto posted = find(recv, recv_stage, mb);
    auto sent = find(send, send_stage, mb);
    if (!posted || !sent) {
      ready.reset();
      return false;
    }
    if (ready)
      ready = std::max(
          *ready, std::max(posted->first, sent->second) + message_time(send_stage, recv_stage, recv == Action::RECV_B));
    return true;
  }

  // When a blocking RECV posted at `start` has all its messages (their SENDs
  // have run: ready_time() checked).
  double recv_arrival(int r, const Action& a, double start) const {
    const bool fwd = a.kind == Action::RECV_F;
    const auto& peers = fwd ? graph_.producers[a.stage] : graph_.consumers[a.stage];
    double end = start;
    for (int t : peers)
      if (owner_[t] != r) {
        const auto& sent = done_.at(Key(fwd ? Action::SEND_F : Action::SEND_B, t, a.microbatch));
        end = std::max(end, std::max(start, sent.second) + message_time(t, a.stage, !fwd));
      }
    return end;
  }

  // B or I of (stage, mb), whichever the schedule has.
  Action::Kind grad_kind(int stage, int mb) const {
    return where_.count(Key(Action::I, stage, mb)) ? Action::I : Action::B;
  }

  std::optional<double> ready_time(int r, const Action& a) {
    std::optional<double> ready = 0.0;
    const int s = a.stage, m = a.microbatch;
    switch (a.kind) {
      case Action::F:
        for (int p : graph_.producers[s]) {
          if (owner_[p] == r)
            need(ready, Action::F, p, m);
          else if (!lowered_)
            need(ready, Action::F, p, m, message_time(p, s, false));
          else
            need_message(ready, Action::RECV_F, s, Action::SEND_F, p, m);
          if (!ready) return ready;
        }
        break;
      case Action::B:
      case Action::I:
        if (!need(ready, Action::F, s, m)) return ready;
        for (int c : graph_.consumers[s]) {
          if (owner_[c] == r)
            need(ready, grad_kind(c, m), c, m);
          else if (!lowered_)
            need(ready, grad_kind(c, m), c, m, message_time(c, s, true));
          else
            need_message(ready, Action::RECV_B, s, Action::SEND_B, c, m);
          if (!ready) return ready;
        }
        break;
      case Action::W: need(ready, Action::I, s, m); break;
      case Action::SEND_F: need(ready, Action::F, s, m); break;
      case Action::SEND_B: need(ready, grad_kind(s, m), s, m); break;
      case Action::RECV_F:
        if (opts_.blocking_recv)
          for (int p : graph_.producers[s])
            if (owner_[p] != r && !find(Action::SEND_F, p, m)) return std::nullopt;
        break;
      case Action::RECV_B:
        if (opts_.blocking_recv)
          for (int c : graph_.consumers[s])
            if (owner_[c] != r && !find(Action::SEND_B, c, m)) return std::nullopt;
        break;
    }
    return ready;
  }

  const Schedule& sched_;
  const StageGraph& graph_;
  const SimOptions& opts_;
  std::vector<int> owner_;
  std::vector<StageCost> costs_;
  std::vector<int> remote_;                              // per stage: peer stages on other ranks
  std::vector<std::pair<double, double>> remote_bytes_;  // per stage: their messages' bytes, forward and backward
  bool lowered_ = false;
  std::map<Key, int> where_;                       // action -> its rank
  std::map<Key, std::pair<double, double>> done_;  // action -> its start and end time
  std::string waiting_;                            // the first missing dependency of the action last asked about
};

}  // namespace

std::string SimResult::deadlock_message() const {
  if (!deadlock) return "";
  std::string out = "deadlock: ";
  for (size_t k = 0; k < stuck.size(); ++k) {
    const StuckRank& s = stuck[k];
    if (k) out += "; ";
    out += "rank " + std::to_string(s.rank) + " is stuck at action " + std::to_string(s.index) + " (" +
           to_string(s.action) + ") waiting for " + s.waiting_for;
  }
  return out;
}

void set_message_cost(SimOptions& options, const MessageCost& message) {
  options.comm = message.latency_ms;
  options.bytes_per_ms = message.bytes_per_second / 1000.0;
  options.message_cpu = message.rank_ms;
  options.message_cpu_bytes_per_ms = message.rank_bytes_per_second / 1000.0;
}

double ring_all_reduce_time(double bytes, int replicas, double comm, double bytes_per_ms) {
  if (replicas < 2) return 0;
  const double piece = bytes / replicas;
  return 2.0 * (replicas - 1) * (comm + (bytes_per_ms > 0 ? piece / bytes_per_ms : 0.0));
}

namespace {

// Each rank sums each of its stages' gradients after the stage's last B or
// W, in that order, one at a time; the step ends with the last.
void add_gradient_reduction(SimResult& res, const SimOptions& o) {
  res.step = res.makespan;
  res.replicas = std::max(1, o.replicas);
  if (o.replicas < 2 || res.deadlock) return;
  for (const auto& rank : res.timeline) {
    std::map<int, double> last;  // stage -> end of its last B or W
    for (const TimedAction& t : rank)
      if (t.action.kind == Action::B || t.action.kind == Action::W) last[t.action.stage] = t.end;
    std::vector<std::pair<double, int>> order;
    for (const auto& [stage, end] : last) order.emplace_back(end, stage);
    std::sort(order.begin(), order.end());
    double free = 0;
    for (const auto& [end, stage] : order) {
      const double bytes = static_cast<size_t>(stage) < o.grad_bytes.size() ? o.grad_bytes[stage] : 0.0;
      free = std::max(free, end) + ring_all_reduce_time(bytes, o.replicas, o.comm, o.bytes_per_ms);
      res.step = std::max(res.step, free);
    }
  }
}

}  // namespace

SimResult simulate(const Schedule& schedule, int num_stages, const StageGraph& graph, const SimOptions& options) {
  SimResult res = Simulator(schedule, num_stages, graph, options).run();
  add_gradient_reduction(res, options);
  return res;
}

SimResult simulate(const Schedule& schedule, int num_stages, const SimOptions& options) {
  return simulate(schedule, num_stages, StageGraph::chain(num_stages), options);
}

std::string format_timeline(const SimResult& result, double unit) {
  size_t width = 1;
  const bool shortest = unit <= 0;  // default: the shortest compute action
  for (const auto& rank : result.timeline)
    for (const TimedAction& t : rank)
      if (t.action.is_compute() && t.end > t.start) {
        width = std::max(width, to_string(t.action).size());
        if (shortest && (unit <= 0 || t.end - t.start < unit)) unit = t.end - t.start;
      }
  std::string out;
  if (unit <= 0) unit = 1;
  const long slots = static_cast<long>(std::ceil(result.makespan / unit - 1e-9));
  const std::string label_pad = std::to_string(result.timeline.size() > 0 ? result.timeline.size() - 1 : 0);
  for (size_t r = 0; r < result.timeline.size(); ++r) {
    std::string label = "rank " + std::to_string(r);
    label.resize(5 + label_pad.size(), ' ');
    std::string row = label + " |";
    size_t k = 0;
    const auto& rank = result.timeline[r];
    for (long slot = 0; slot < slots; ++slot) {
      const double mid = (slot + 0.5) * unit;
      while (k < rank.size() && (!rank[k].action.is_compute() || rank[k].end <= mid)) ++k;
      std::string cell = k < rank.size() && rank[k].start <= mid ? to_string(rank[k].action) : ".";
      cell.resize(width, ' ');
      row += " " + cell;
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    out += row + "\n";
  }
  return out;
}

std::string format_summary(const SimResult& result) {
  std::string out = "makespan " + fmt(result.makespan) + ", bubble " + fmt(result.bubble_fraction) + "\n";
  if (result.replicas > 1)
    out += "step " + fmt(result.step) + " with the gradient all-reduce across " + std::to_string(result.replicas) +
           " replicas\n";
  for (size_t r = 0; r < result.busy.size(); ++r)
    out += "rank " + std::to_string(r) + ": busy " + fmt(result.busy[r]) + ", peak in flight " +
           std::to_string(result.peak_in_flight[r]) + "\n";
  if (result.deadlock) out += result.deadlock_message() + "\n";
  return out;
}

}  // namespace ppc::runtime::schedule
