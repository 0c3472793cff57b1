#include "runtime/schedule/lowering.h"

#include <algorithm>
#include <string>

#include "schemas/error.h"

namespace ppc::runtime::schedule {

namespace {

bool any_on_other_rank(const std::vector<int>& stages, const std::vector<int>& rank_of, int rank) {
  for (int t : stages)
    if (rank_of[t] != rank) return true;
  return false;
}

Action with_kind(Action a, Action::Kind kind) {
  a.kind = kind;
  return a;
}

}  // namespace

Schedule add_communication(const Schedule& compute, int num_stages, const StageGraph& graph) {
  if (graph.num_stages != num_stages)
    throw Error("stage graph has " + std::to_string(graph.num_stages) + " stages, the schedule " +
                std::to_string(num_stages));
  std::vector<int> rank_of = stage_ranks(compute, num_stages);
  Schedule out(compute.size());
  for (size_t r = 0; r < compute.size(); ++r) {
    const int rank = static_cast<int>(r);
    for (size_t i = 0; i < compute[r].size(); ++i) {
      const Action& a = compute[r][i];
      if (a.is_comm())
        throw Error("rank " + std::to_string(r) + ", action " + std::to_string(i) + " (" + to_string(a) +
                    "): the schedule already has communication");
      const bool remote_producer = any_on_other_rank(graph.producers[a.stage], rank_of, rank);
      const bool remote_consumer = any_on_other_rank(graph.consumers[a.stage], rank_of, rank);
      if (a.kind == Action::F && remote_producer) out[r].push_back(with_kind(a, Action::RECV_F));
      if (a.is_input_grad() && remote_consumer) out[r].push_back(with_kind(a, Action::RECV_B));
      out[r].push_back(a);
      if (a.kind == Action::F && remote_consumer) out[r].push_back(with_kind(a, Action::SEND_F));
      if (a.is_input_grad() && remote_producer) out[r].push_back(with_kind(a, Action::SEND_B));
    }
  }
  return out;
}

Schedule add_communication(const Schedule& compute, int num_stages) {
  return add_communication(compute, num_stages, StageGraph::chain(num_stages));
}

Schedule hoist_receives(const Schedule& lowered, int distance) {
  if (distance <= 0) return lowered;
  Schedule out(lowered.size());
  for (size_t r = 0; r < lowered.size(); ++r) {
    RankSchedule& cur = out[r];
    for (const Action& a : lowered[r]) {
      cur.push_back(a);
      if (a.kind != Action::RECV_F && a.kind != Action::RECV_B) continue;
      // The receive moves to just before the earliest of the (at most
      // `distance`) compute actions it passes; sends it passes stay where
      // they are relative to their compute. It never passes another receive.
      const size_t pos = cur.size() - 1;
      size_t target = pos;
      int passed = 0;
      for (size_t q = pos; q-- > 0;) {
        const Action& prev = cur[q];
        if (prev.kind == Action::RECV_F || prev.kind == Action::RECV_B) break;
        if (!prev.is_compute()) continue;
        if (prev.microbatch == a.microbatch || passed == distance) break;
        ++passed;
        target = q;
      }
      std::rotate(cur.begin() + target, cur.begin() + pos, cur.end());
    }
  }
  return out;
}

Schedule strip_communication(const Schedule& schedule) {
  Schedule out(schedule.size());
  for (size_t r = 0; r < schedule.size(); ++r)
    for (const Action& a : schedule[r])
      if (a.is_compute()) out[r].push_back(a);
  return out;
}

}  // namespace ppc::runtime::schedule
