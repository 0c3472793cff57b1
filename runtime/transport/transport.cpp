#include "runtime/transport/transport.h"

#include <ATen/Functions.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <sstream>

namespace ppc::runtime {

Work::~Work() = default;
Transport::~Transport() = default;

namespace {

int parse_int(const std::string& what, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || errno != 0 || v < INT_MIN || v > INT_MAX)
    throw std::invalid_argument(what + ": expected an integer, got '" + text + "'");
  return static_cast<int>(v);
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// GROUP_RANK / GROUP_WORLD_SIZE and LOCAL_RANK / LOCAL_WORLD_SIZE: each rank
// inside its size, where both are set.
void read_placement(RendezvousOptions& o) {
  const auto read = [](const char* name, int& into, int lowest) {
    if (auto v = env(name)) {
      into = parse_int(name, *v);
      if (into < lowest) throw std::invalid_argument(std::string(name) + " " + *v + " is out of range");
    }
  };
  read("GROUP_RANK", o.node_rank, 0);
  read("GROUP_WORLD_SIZE", o.num_nodes, 1);
  read("LOCAL_RANK", o.local_rank, 0);
  read("LOCAL_WORLD_SIZE", o.local_world_size, 1);
  if (o.num_nodes > 0 && o.node_rank >= o.num_nodes)
    throw std::invalid_argument("GROUP_RANK " + std::to_string(o.node_rank) + " (the node rank) is outside 0.." +
                                std::to_string(o.num_nodes - 1) + " (GROUP_WORLD_SIZE " + std::to_string(o.num_nodes) +
                                ")");
  if (o.local_world_size > 0 && o.local_rank >= o.local_world_size)
    throw std::invalid_argument("LOCAL_RANK " + std::to_string(o.local_rank) + " is outside 0.." +
                                std::to_string(o.local_world_size - 1) + " (LOCAL_WORLD_SIZE " +
                                std::to_string(o.local_world_size) + ")");
  if (o.local_world_size > o.world_size)
    throw std::invalid_argument("LOCAL_WORLD_SIZE " + std::to_string(o.local_world_size) + " exceeds WORLD_SIZE " +
                                std::to_string(o.world_size));
}

}  // namespace

RendezvousOptions rendezvous_from_env(std::optional<std::string> master_addr, std::optional<int> master_port,
                                      std::optional<int> rank, std::optional<int> world_size,
                                      std::optional<std::chrono::milliseconds> timeout) {
  RendezvousOptions o;
  if (auto v = env("MASTER_ADDR")) o.master_addr = *v;
  if (auto v = env("MASTER_PORT")) o.master_port = parse_int("MASTER_PORT", *v);
  if (auto v = env("RANK")) o.rank = parse_int("RANK", *v);
  if (auto v = env("WORLD_SIZE")) o.world_size = parse_int("WORLD_SIZE", *v);
  if (master_addr) o.master_addr = *master_addr;
  if (master_port) o.master_port = *master_port;
  if (rank) o.rank = *rank;
  if (world_size) o.world_size = *world_size;
  if (timeout) o.timeout = *timeout;
  if (o.master_addr.empty()) throw std::invalid_argument("master address is empty");
  if (o.master_port < 1 || o.master_port > 65535)
    throw std::invalid_argument("master port " + std::to_string(o.master_port) + " is outside 1..65535");
  if (o.world_size < 1) throw std::invalid_argument("world size must be >= 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw std::invalid_argument("rank " + std::to_string(o.rank) + " is outside [0, " + std::to_string(o.world_size) +
                                ")");
  if (o.timeout.count() <= 0) throw std::invalid_argument("timeout must be positive");
  read_placement(o);
  return o;
}

namespace {

class SubsetTransport : public Transport {
 public:
  SubsetTransport(Transport& world, std::vector<int> members) : world_(world), members_(std::move(members)) {
    std::vector<int> sorted = members_;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.empty() || std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() || sorted.front() < 0 ||
        sorted.back() >= world.world_size())
      throw std::invalid_argument("subset_transport: members must be distinct ranks of the world");
    auto it = std::find(members_.begin(), members_.end(), world.rank());
    if (it == members_.end())
      throw std::invalid_argument("subset_transport: rank " + std::to_string(world.rank()) + " is not a member");
    rank_ = static_cast<int>(it - members_.begin());
  }
  int rank() const override { return rank_; }
  int world_size() const override { return static_cast<int>(members_.size()); }
  std::unique_ptr<Work> isend(at::Tensor t, int dst, uint32_t tag) override {
    return world_.isend(std::move(t), global(dst), tag);
  }
  std::unique_ptr<Work> irecv(at::Tensor t, int src, uint32_t tag) override {
    return world_.irecv(std::move(t), global(src), tag);
  }
  void all_reduce_sum(std::vector<at::Tensor>& ts, const std::vector<int>& ranks) override {
    world_.all_reduce_sum(ts, global(ranks));
  }
  std::unique_ptr<Work> iall_reduce_sum(at::Tensor t, const std::vector<int>& ranks) override {
    return world_.iall_reduce_sum(std::move(t), global(ranks));
  }
  void connect_group(const std::vector<int>& ranks) override { world_.connect_group(global(ranks)); }
  void barrier() override {
    if (members_.size() < 2) return;
    std::vector<at::Tensor> one{at::zeros({1})};
    world_.all_reduce_sum(one, members_);
  }

 private:
  int global(int r) const {
    if (r < 0 || r >= static_cast<int>(members_.size()))
      throw std::invalid_argument("bad rank " + std::to_string(r) + " of a group of " +
                                  std::to_string(members_.size()));
    return members_[static_cast<size_t>(r)];
  }
  std::vector<int> global(const std::vector<int>& ranks) const {
    std::vector<int> out;
    out.reserve(ranks.size());
    for (int r : ranks) out.push_back(global(r));
    return out;
  }

  Transport& world_;
  std::vector<int> members_;
  int rank_ = 0;
};

}  // namespace

std::unique_ptr<Transport> subset_transport(Transport& world, std::vector<int> members) {
  return std::make_unique<SubsetTransport>(world, std::move(members));
}

std::string describe_timeout(int rank, std::chrono::milliseconds timeout) {
  std::ostringstream os;
  os << "rank " << rank << " did not answer within ";
  if (timeout.count() % 1000 == 0)
    os << timeout.count() / 1000 << " s";
  else
    os << timeout.count() << " ms";
  return os.str();
}

}  // namespace ppc::runtime
