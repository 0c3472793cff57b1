#include "runtime/schedule/validator.h"

#include <map>
#include <tuple>

namespace ppc::runtime::schedule {

namespace {

using Key = std::tuple<int, int, int>;  // kind, stage, micro-batch
using Where = std::pair<int, int>;      // rank, index

Key key(Action::Kind kind, int stage, int microbatch) { return Key(kind, stage, microbatch); }

std::string at(int rank, int index, const Action& a) {
  return "rank " + std::to_string(rank) + ", action " + std::to_string(index) + " (" + to_string(a) + "): ";
}

std::string text(Action::Kind kind, int stage, int microbatch) {
  return std::to_string(stage) + kind_name(kind) + std::to_string(microbatch);
}

bool any_remote(const std::vector<int>& stages, const std::vector<int>& owner, int rank) {
  for (int t : stages)
    if (owner[t] != rank) return true;
  return false;
}

class Validator {
 public:
  Validator(const Schedule& s, int num_stages, int num_microbatches, const StageGraph& g, const ValidateOptions& o)
      : sched_(s), stages_(num_stages), mbs_(num_microbatches), graph_(g), opts_(o) {}

  std::string run() {
    if (graph_.num_stages != stages_)
      return "stage graph has " + std::to_string(graph_.num_stages) + " stages, the schedule " +
             std::to_string(stages_);
    // A stage belongs to the rank with most of its actions (the lowest such
    // rank on a tie), so a stray action on another rank is the one reported.
    owner_.assign(stages_, -1);
    std::vector<std::vector<int>> count(stages_, std::vector<int>(sched_.size(), 0));
    for (size_t r = 0; r < sched_.size(); ++r)
      for (const Action& a : sched_[r]) {
        if (a.stage >= 0 && a.stage < stages_) ++count[a.stage][r];
        lowered_ = lowered_ || a.is_comm();
      }
    for (int s = 0; s < stages_; ++s)
      for (size_t r = 0; r < sched_.size(); ++r)
        if (count[s][r] > 0 && (owner_[s] == -1 || count[s][r] > count[s][owner_[s]])) owner_[s] = static_cast<int>(r);
    for (size_t r = 0; r < sched_.size(); ++r)
      for (size_t i = 0; i < sched_[r].size(); ++i) {
        std::string e = check_action(static_cast<int>(r), static_cast<int>(i), sched_[r][i]);
        if (!e.empty()) return e;
      }
    if (std::string e = check_complete(); !e.empty()) return e;
    if (lowered_)
      for (size_t r = 0; r < sched_.size(); ++r)
        for (size_t i = 0; i < sched_[r].size(); ++i) {
          std::string e = check_pairs(static_cast<int>(r), static_cast<int>(i), sched_[r][i]);
          if (!e.empty()) return e;
        }
    return "";
  }

 private:
  bool seen(Action::Kind kind, int stage, int mb) const { return seen_.count(key(kind, stage, mb)) != 0; }

  std::string check_action(int r, int i, const Action& a) {
    const std::string where = at(r, i, a);
    if (a.stage < 0 || a.stage >= stages_)
      return where + "stage " + std::to_string(a.stage) + " is out of range (" + std::to_string(stages_) + " stages)";
    if (a.microbatch < 0 || a.microbatch >= mbs_)
      return where + "micro-batch " + std::to_string(a.microbatch) + " is out of range (" + std::to_string(mbs_) +
             " micro-batches)";
    if (owner_[a.stage] != r)
      return where + "stage " + std::to_string(a.stage) + " is on two ranks (also on rank " +
             std::to_string(owner_[a.stage]) + ")";
    auto [it, inserted] = seen_.emplace(key(a.kind, a.stage, a.microbatch), Where(r, i));
    if (!inserted) return where + "duplicate action (first at action " + std::to_string(it->second.second) + ")";
    const bool backwardish = a.kind == Action::B || a.kind == Action::I || a.kind == Action::W ||
                             a.kind == Action::SEND_B || a.kind == Action::RECV_B;
    if (opts_.forward_only && backwardish) return where + "backward action in a forward-only schedule";
    const int s = a.stage, m = a.microbatch;
    const bool remote_producer = any_remote(graph_.producers[s], owner_, r);
    const bool remote_consumer = any_remote(graph_.consumers[s], owner_, r);
    switch (a.kind) {
      case Action::F:
        if (lowered_ && remote_producer && !seen(Action::RECV_F, s, m))
          return where + "forward before its receive " + text(Action::RECV_F, s, m);
        break;
      case Action::B:
      case Action::I:
        if (!seen(Action::F, s, m)) return where + "backward before its forward";
        if (a.kind == Action::B && (seen(Action::I, s, m) || seen(Action::W, s, m)))
          return where + "full backward of a micro-batch that also has a split backward (I/W)";
        if (a.kind == Action::I && seen(Action::B, s, m))
          return where + "split backward of a micro-batch that also has a full backward (B)";
        if (lowered_ && remote_consumer && !seen(Action::RECV_B, s, m))
          return where + "backward before its receive " + text(Action::RECV_B, s, m);
        break;
      case Action::W:
        if (seen(Action::B, s, m))
          return where + "weight-gradient backward of a micro-batch that also has a full backward (B)";
        if (!seen(Action::I, s, m))
          return where + "weight-gradient backward (W) before its input-gradient backward (I)";
        break;
      case Action::SEND_F:
        if (!remote_consumer) return where + "stage " + std::to_string(s) + " has no consumer on another rank";
        if (!seen(Action::F, s, m)) return where + "send before its forward";
        break;
      case Action::SEND_B:
        if (!remote_producer) return where + "stage " + std::to_string(s) + " has no producer on another rank";
        if (!seen(Action::B, s, m) && !seen(Action::I, s, m)) return where + "send before its backward";
        break;
      case Action::RECV_F:
        if (!remote_producer) return where + "stage " + std::to_string(s) + " has no producer on another rank";
        break;
      case Action::RECV_B:
        if (!remote_consumer) return where + "stage " + std::to_string(s) + " has no consumer on another rank";
        break;
    }
    return "";
  }

  std::string check_complete() const {
    for (int s = 0; s < stages_; ++s) {
      if (owner_[s] == -1) return "end of schedule: stage " + std::to_string(s) + " is on no rank";
      const std::string where =
          "rank " + std::to_string(owner_[s]) + ", end of schedule: stage " + std::to_string(s) + " micro-batch ";
      for (int m = 0; m < mbs_; ++m) {
        if (!seen(Action::F, s, m)) return where + std::to_string(m) + " has no forward";
        if (opts_.forward_only) continue;
        if (seen(Action::I, s, m) && !seen(Action::W, s, m))
          return where + std::to_string(m) + " has an input-gradient backward (I) but no weight-gradient backward (W)";
        if (!seen(Action::B, s, m) && !seen(Action::I, s, m))
          return where + std::to_string(m) + " has no backward (B, or I and W)";
      }
    }
    return "";
  }

  // Every communication action has its partner(s) on the peer rank(s).
  std::string check_pairs(int r, int i, const Action& a) const {
    const std::vector<int>* peers = nullptr;
    Action::Kind partner = a.kind;
    switch (a.kind) {
      case Action::SEND_F: peers = &graph_.consumers[a.stage], partner = Action::RECV_F; break;
      case Action::RECV_F: peers = &graph_.producers[a.stage], partner = Action::SEND_F; break;
      case Action::SEND_B: peers = &graph_.producers[a.stage], partner = Action::RECV_B; break;
      case Action::RECV_B: peers = &graph_.consumers[a.stage], partner = Action::SEND_B; break;
      default: return "";
    }
    for (int t : *peers) {
      if (owner_[t] == r || seen(partner, t, a.microbatch)) continue;
      return at(r, i, a) + "no matching " + text(partner, t, a.microbatch) + " on rank " + std::to_string(owner_[t]);
    }
    return "";
  }

  const Schedule& sched_;
  const int stages_, mbs_;
  const StageGraph& graph_;
  const ValidateOptions& opts_;
  std::vector<int> owner_;
  bool lowered_ = false;
  std::map<Key, Where> seen_;
};

}  // namespace

std::string validate(const Schedule& schedule, int num_stages, int num_microbatches, const StageGraph& graph,
                     const ValidateOptions& options) {
  return Validator(schedule, num_stages, num_microbatches, graph, options).run();
}

std::string validate(const Schedule& schedule, int num_stages, int num_microbatches, const ValidateOptions& options) {
  if (num_stages < 1) return "a pipeline needs at least 1 stage, got " + std::to_string(num_stages);
  return validate(schedule, num_stages, num_microbatches, StageGraph::chain(num_stages), options);
}

}  // namespace ppc::runtime::schedule
