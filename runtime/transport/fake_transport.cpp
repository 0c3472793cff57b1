// In-process transport for unit tests: one Hub shared by `world_size` fakes,
// each used from its own thread. Sends copy eagerly; receives match by
// (src, dst, tag) in FIFO order (the k-th irecv posted for a key takes the
// k-th message sent on it, whatever order the waits come in).
#include "runtime/transport/transport.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <tuple>

namespace ppc::runtime {
namespace {

using Clock = std::chrono::steady_clock;
using Key = std::tuple<int, int, uint32_t>;  // src, dst, tag

struct Channel {
  uint64_t sent = 0;
  uint64_t posted = 0;
  std::map<uint64_t, at::Tensor> messages;  // by send sequence number
};

struct Round {
  std::map<int, std::vector<at::Tensor>> contributions;
  std::vector<at::Tensor> result;
  std::string error;
  bool done = false;
  size_t consumed = 0;
};

struct Group {
  std::map<int, uint64_t> calls;  // per member: how many collectives it entered
  std::map<uint64_t, Round> rounds;
};

struct Hub {
  Hub(int world, std::chrono::milliseconds timeout)
      : world_size(world), timeout(timeout), closed(static_cast<size_t>(world), false) {}
  const int world_size;
  const std::chrono::milliseconds timeout;
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<bool> closed;
  std::map<Key, Channel> channels;
  std::map<std::vector<int>, Group> groups;
};

std::string closed_message(int rank) { return "connection to rank " + std::to_string(rank) + " closed"; }

class DoneWork : public Work {
 public:
  explicit DoneWork(std::string error = {}, int peer = -1) : error_(std::move(error)), peer_(peer) {}
  void wait() override {
    if (!error_.empty()) throw PeerError(peer_, error_);
  }

 private:
  std::string error_;
  int peer_;
};

class DeferredWork : public Work {
 public:
  explicit DeferredWork(std::function<void()> run) : run_(std::move(run)) {}
  void wait() override {
    if (!run_) return;
    auto run = std::move(run_);
    run_ = nullptr;
    run();
  }

 private:
  std::function<void()> run_;
};

class FakeRecvWork : public Work {
 public:
  FakeRecvWork(std::shared_ptr<Hub> hub, Key key, uint64_t seq, at::Tensor target)
      : hub_(std::move(hub)), key_(key), seq_(seq), target_(std::move(target)) {}

  void wait() override {
    if (done_) return;
    const int src = std::get<0>(key_);
    std::unique_lock<std::mutex> lock(hub_->mutex);
    Channel& ch = hub_->channels[key_];
    const auto deadline = Clock::now() + hub_->timeout;
    bool ready = hub_->cv.wait_until(
        lock, deadline, [&] { return ch.messages.count(seq_) != 0 || hub_->closed[static_cast<size_t>(src)]; });
    auto it = ch.messages.find(seq_);
    if (it == ch.messages.end()) {
      if (ready) throw PeerError(src, closed_message(src));
      throw PeerError(src, describe_timeout(src, hub_->timeout));
    }
    at::Tensor message = std::move(it->second);
    ch.messages.erase(it);
    lock.unlock();
    done_ = true;
    if (message.scalar_type() != target_.scalar_type() || message.numel() != target_.numel())
      throw std::runtime_error("message from rank " + std::to_string(src) + " (tag " +
                               std::to_string(std::get<2>(key_)) + ") has " + std::to_string(message.numel()) +
                               " elements of " + std::string(c10::toString(message.scalar_type())) +
                               ", the receive buffer " + std::to_string(target_.numel()) + " of " +
                               std::string(c10::toString(target_.scalar_type())));
    target_.copy_(message.view(target_.sizes()));
  }

 private:
  std::shared_ptr<Hub> hub_;
  Key key_;
  uint64_t seq_;
  at::Tensor target_;
  bool done_ = false;
};

class FakeTransport : public Transport {
 public:
  FakeTransport(std::shared_ptr<Hub> hub, int rank) : hub_(std::move(hub)), rank_(rank) {}

  ~FakeTransport() override {
    std::lock_guard<std::mutex> lock(hub_->mutex);
    hub_->closed[static_cast<size_t>(rank_)] = true;
    hub_->cv.notify_all();
  }

  int rank() const override { return rank_; }
  int world_size() const override { return hub_->world_size; }

  std::unique_ptr<Work> isend(at::Tensor t, int dst, uint32_t tag) override {
    check_peer(dst, "isend");
    at::Tensor copy = t.detach().contiguous().clone();
    std::lock_guard<std::mutex> lock(hub_->mutex);
    if (hub_->closed[static_cast<size_t>(dst)]) return std::make_unique<DoneWork>(closed_message(dst), dst);
    Channel& ch = hub_->channels[Key{rank_, dst, tag}];
    ch.messages.emplace(ch.sent++, std::move(copy));
    hub_->cv.notify_all();
    return std::make_unique<DoneWork>();
  }

  std::unique_ptr<Work> irecv(at::Tensor t, int src, uint32_t tag) override {
    check_peer(src, "irecv");
    Key key{src, rank_, tag};
    std::lock_guard<std::mutex> lock(hub_->mutex);
    uint64_t seq = hub_->channels[key].posted++;
    return std::make_unique<FakeRecvWork>(hub_, key, seq, std::move(t));
  }

  void all_reduce_sum(std::vector<at::Tensor>& ts, const std::vector<int>& ranks) override {
    collective(ts, checked_members(ranks, "all_reduce_sum"));
  }

  // The reduction happens at wait(): the fakes' collectives block until
  // every member joins, and members wait in the order they started.
  std::unique_ptr<Work> iall_reduce_sum(at::Tensor t, const std::vector<int>& ranks) override {
    std::vector<int> members = checked_members(ranks, "iall_reduce_sum");
    return std::make_unique<DeferredWork>([this, t, members]() mutable {
      std::vector<at::Tensor> ts{t};
      collective(ts, members);
    });
  }

  void barrier() override {
    std::vector<int> all(static_cast<size_t>(hub_->world_size));
    for (int r = 0; r < hub_->world_size; ++r) all[static_cast<size_t>(r)] = r;
    std::vector<at::Tensor> none;
    collective(none, all);
  }

 private:
  // `ranks` sorted and deduplicated; they must be ranks of the world and include this one.
  std::vector<int> checked_members(const std::vector<int>& ranks, const char* what) const {
    std::vector<int> members = ranks;
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    for (int r : members) check_peer(r, what, /*allow_self=*/true);
    if (!std::binary_search(members.begin(), members.end(), rank_))
      throw std::invalid_argument(std::string(what) + ": rank " + std::to_string(rank_) +
                                  " is not among the ranks it reduces over");
    return members;
  }

  void check_peer(int peer, const char* what, bool allow_self = false) const {
    if (peer < 0 || peer >= hub_->world_size || (!allow_self && peer == rank_))
      throw std::invalid_argument(std::string(what) + ": bad peer rank " + std::to_string(peer) + " (this is rank " +
                                  std::to_string(rank_) + " of " + std::to_string(hub_->world_size) + ")");
  }

  void collective(std::vector<at::Tensor>& ts, const std::vector<int>& members) {
    std::vector<at::Tensor> mine;
    mine.reserve(ts.size());
    for (const at::Tensor& t : ts) mine.push_back(t.detach().contiguous().clone());

    std::unique_lock<std::mutex> lock(hub_->mutex);
    Group& group = hub_->groups[members];
    const uint64_t generation = group.calls[rank_]++;
    Round& round = group.rounds[generation];
    round.contributions[rank_] = std::move(mine);
    if (round.contributions.size() == members.size()) {
      try {
        const auto& first = round.contributions.begin()->second;
        for (const auto& [r, c] : round.contributions)
          if (c.size() != first.size()) throw std::runtime_error("ranks pass different numbers of tensors");
        for (size_t i = 0; i < first.size(); ++i) {
          at::Tensor sum = first[i].clone();
          for (auto it = std::next(round.contributions.begin()); it != round.contributions.end(); ++it)
            sum.add_(it->second[i]);
          round.result.push_back(sum);
        }
      } catch (const std::exception& e) { round.error = std::string("all_reduce_sum: ") + e.what(); }
      round.done = true;
      hub_->cv.notify_all();
    }
    auto missing_closed = [&]() -> int {
      for (int r : members)
        if (round.contributions.count(r) == 0 && hub_->closed[static_cast<size_t>(r)]) return r;
      return -1;
    };
    const auto deadline = Clock::now() + hub_->timeout;
    hub_->cv.wait_until(lock, deadline, [&] { return round.done || missing_closed() >= 0; });
    if (!round.done) {
      int dead = missing_closed();
      if (dead >= 0) throw PeerError(dead, closed_message(dead));
      int missing = -1;
      for (int r : members)
        if (round.contributions.count(r) == 0) {
          missing = r;
          break;
        }
      throw PeerError(missing, describe_timeout(missing, hub_->timeout));
    }
    std::string error = round.error;
    std::vector<at::Tensor> result = round.result;
    if (++round.consumed == members.size()) group.rounds.erase(generation);
    lock.unlock();
    if (!error.empty()) throw std::runtime_error(error);
    for (size_t i = 0; i < ts.size(); ++i) ts[i].copy_(result[i].view(ts[i].sizes()));
  }

  std::shared_ptr<Hub> hub_;
  int rank_;
};

}  // namespace

std::vector<std::unique_ptr<Transport>> make_local_fakes(int world_size, std::chrono::milliseconds timeout) {
  if (world_size < 1) throw std::invalid_argument("make_local_fakes: world size must be >= 1");
  auto hub = std::make_shared<Hub>(world_size, timeout);
  std::vector<std::unique_ptr<Transport>> out;
  for (int r = 0; r < world_size; ++r) out.push_back(std::make_unique<FakeTransport>(hub, r));
  return out;
}

}  // namespace ppc::runtime
