// c10d (LibTorch 1.13): TCPStore rendezvous + ProcessGroupGloo. The only file
// of the project that includes c10d headers; a LibTorch 2.x / NCCL transport
// is a sibling of this file.
//
// Errors: Gloo reports a dead peer as "Connection closed by peer [addr]:port"
// at once and a stall as "Timed out waiting Nms for ..." after the context
// timeout (= the group's timeout); both are rethrown as PeerError naming the
// global rank. After either, the Gloo pair is closed: treat it as fatal.
// A Gloo send completes only once the receiver has posted the matching
// receive, so a send to a stalled rank also times out.
#include "runtime/transport/transport.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "runtime/transport/rendezvous.h"
#include "schemas/error.h"

#ifndef USE_C10D_GLOO
#error "ProcessGroupGloo needs USE_C10D_GLOO (defined by the Torch CMake target)"
#endif

namespace ppc::runtime {
namespace {

bool is_timeout(const std::string& what) {
  return what.find("Timed out") != std::string::npos || what.find("timed out") != std::string::npos ||
         what.find("timeout") != std::string::npos;
}

std::string seconds(std::chrono::milliseconds t) {
  return t.count() % 1000 == 0 ? std::to_string(t.count() / 1000) + " s" : std::to_string(t.count()) + " ms";
}

std::string join(const std::vector<int>& ranks, const char* sep = ", ") {
  std::ostringstream os;
  for (size_t i = 0; i < ranks.size(); ++i) os << (i ? sep : "") << ranks[i];
  return os.str();
}

// Turns a c10d / Gloo failure of an operation with the given peers (global
// ranks, this rank excluded) into a PeerError that names them (and, across
// hosts, their hosts).
PeerError make_peer_error(const std::exception& e, const std::vector<int>& peers, std::chrono::milliseconds timeout,
                          const std::string& op, const Roster& roster) {
  const std::string what = e.what();
  std::string detail = " (" + op + ": " + what + ")";
  // c10d messages can be multi-line with a C++ backtrace: keep the first line.
  if (auto nl = detail.find('\n'); nl != std::string::npos) detail = detail.substr(0, nl) + ")";
  if (peers.size() == 1) {
    int peer = peers.front();
    if (is_timeout(what))
      return PeerError(peer, roster.rank(peer) + " did not answer within " + seconds(timeout) + detail);
    return PeerError(peer, "connection to " + roster.rank(peer) + " closed" + detail);
  }
  std::string who = "one of ranks " + join(peers);
  if (is_timeout(what)) return PeerError(-1, who + " did not answer within " + seconds(timeout) + detail);
  return PeerError(-1, "connection to " + who + " closed" + detail);
}

// Failures cascade: when rank 1 dies, rank 0 notices and exits, and rank 2
// may then only see "connection to rank 0 closed". So the first rank to
// notice a failure records it in the TCPStore (first writer wins), and every
// rank watches for that record (a second store connection, polled every
// 100 ms by a thread, which also beats a per-rank heartbeat counter so that a
// timeout can tell a stalled rank from one blocked on it) and reports a later failure as that one, naming the
// rank that failed first. Rank 0 hosts the store: before throwing it lingers
// until every other survivor has seen the record (at most kLinger).
//
// Across hosts, the store itself can be out of reach (a cut link): no store
// call then ever returns. The watcher notices its heartbeats going
// unanswered, and the exchange with the store after a failure runs on a
// thread of its own for at most kSettleLimit; either way the rank reports the
// store's host as lost instead of waiting.
class FailureRecord : public std::enable_shared_from_this<FailureRecord> {
 public:
  static constexpr std::chrono::milliseconds kLinger{3000};
  static constexpr std::chrono::milliseconds kPoll{100};
  static constexpr std::chrono::milliseconds kNameWait{1000};
  static constexpr std::chrono::milliseconds kSilent{3000};
  static constexpr std::chrono::milliseconds kSettleLimit{10000};

  FailureRecord(c10::intrusive_ptr<c10d::Store> store, const RendezvousOptions& o, Roster roster)
      : store_(std::move(store)),
        rank_(o.rank),
        world_size_(o.world_size),
        timeout_(o.timeout),
        store_at_(o.master_addr + ":" + std::to_string(o.master_port)),
        roster_(std::move(roster)) {
    last_beat_ok_ = Clock::now().time_since_epoch().count();
    // With 2 ranks there is nobody to relay a failure to; across hosts the
    // heartbeats still tell a silent store at once.
    if (world_size_ <= 2 && !roster_.several_hosts()) return;
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = false;
    so.waitWorkers = false;
    so.timeout = o.timeout;
    watch_store_ = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    watcher_ = std::thread([this] { watch(); });
  }

  ~FailureRecord() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watcher_.joinable()) watcher_.join();
  }

  const Roster& roster() const { return roster_; }

  [[noreturn]] void fail(const std::exception& e, const std::vector<int>& peers, const std::string& op) {
    PeerError own = make_peer_error(e, peers, timeout_, op, roster_);
    if (store_silent()) throw lost_store(own);
    auto outcome = std::make_shared<std::promise<PeerError>>();
    std::future<PeerError> settled = outcome->get_future();
    std::thread([self = shared_from_this(), own, outcome] { outcome->set_value(self->settle(own)); }).detach();
    if (settled.wait_for(kSettleLimit) != std::future_status::ready) throw lost_store(own);
    throw settled.get();
  }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr const char* kKey = "ppc/first_failure";
  static constexpr const char* kAcks = "ppc/first_failure_acks";

  // The error to report for `own`, agreed with the other ranks through the
  // store. Never throws.
  PeerError settle(PeerError own) {
    std::string record;
    try {
      // A timeout on a peer that is itself blocked on a stalled rank would
      // blame the wrong rank: prefer the rank (or host) whose heartbeat stopped.
      if (world_size_ > 2 && is_timeout(own.what())) own = blame_stalled(own);
      // A closed connection need not mean that peer failed: Gloo closes every
      // connection of a rank whose receive timed out, before that rank has
      // found and recorded the stalled rank (stalled_ranks takes 3 polls).
      // While the peer's heartbeat still advances, give it time to record what
      // it saw; a peer that really died (killed) stops beating at once, and
      // then this costs 3 polls.
      if (world_size_ > 2 && own.rank() >= 0 && !is_timeout(own.what())) wait_for_record_from(own.rank());
      record = exchange(own);
      ack(record);
      if (rank_ == 0) linger();
    } catch (const std::exception&) {
      // The store is gone (rank 0 exited): use what the watcher saw, if anything.
      std::lock_guard<std::mutex> lock(mutex_);
      record = seen_;
      // Nothing recorded and no store: rank 0, which hosts it, failed first
      // (it lingers for the others when it fails because of another rank),
      // and this rank only sees the cascade.
      if (record.empty() && rank_ != 0 && own.rank() != 0)
        return PeerError(0, roster_.rank(0) + " is gone (the rendezvous store it hosts does not answer); here: " +
                                std::string(own.what()));
    }
    return resolve(record, own);
  }

  // Writes this rank's record unless one exists; returns the one that holds.
  std::string exchange(const PeerError& own) {
    const std::string mine = std::to_string(own.rank()) + "|" + std::to_string(rank_) + "|" + own.what();
    std::vector<uint8_t> got = store_->compareSet(kKey, {}, std::vector<uint8_t>(mine.begin(), mine.end()));
    std::string record(got.begin(), got.end());
    if (std::atoi(record.c_str()) < 0 && own.rank() >= 0) {
      // The first record could not tell which peer failed; this one can.
      got = store_->compareSet(kKey, got, std::vector<uint8_t>(mine.begin(), mine.end()));
      record.assign(got.begin(), got.end());
    } else if (std::atoi(record.c_str()) < 0) {
      // Neither can this rank (a collective with several peers): give the
      // ranks that talk to the failed one directly a moment to name it.
      const auto until = Clock::now() + std::min(kNameWait, timeout_);
      while (Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        got = store_->get(kKey);
        record.assign(got.begin(), got.end());
        if (std::atoi(record.c_str()) >= 0) break;
      }
    }
    return record;
  }

  // The error to throw given the record that holds ("" if none).
  PeerError resolve(const std::string& record, const PeerError& own) const {
    if (record.empty()) return own;
    auto a = record.find('|'), b = record.find('|', a + 1);
    if (a == std::string::npos || b == std::string::npos) return own;
    const int culprit = std::atoi(record.substr(0, a).c_str());
    const int reporter = std::atoi(record.substr(a + 1, b - a - 1).c_str());
    if (reporter == rank_ || culprit == own.rank() || culprit == rank_) return own;
    return PeerError(culprit, record.substr(b + 1) + " [noticed first by rank " + std::to_string(reporter) +
                                  "]; here: " + own.what());
  }

  // The store does not answer (its host is out of reach): name that host.
  PeerError lost_store(const PeerError& own) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!seen_.empty()) return resolve(seen_, own);
    }
    const std::string silent = "the rendezvous store at " + store_at_ + " does not answer";
    const std::vector<int> host = roster_.host_ranks(0);
    if (roster_.several_hosts() && std::find(host.begin(), host.end(), rank_) == host.end())
      return PeerError(0, "lost " + roster_.host(0) + ": " + silent + "; here: " + own.what());
    return PeerError(0, silent + " (" + roster_.rank(0) + " hosts it); here: " + own.what());
  }

  // The watcher's heartbeats have gone unanswered for kSilent.
  bool store_silent() {
    if (!watcher_.joinable()) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (acked_ || stop_) return false;
    }
    const auto last = Clock::time_point(Clock::duration(last_beat_ok_.load()));
    return Clock::now() - last > kSilent;
  }

  PeerError blame_stalled(const PeerError& own) {
    const std::vector<int> stalled = stalled_ranks();
    if (stalled.size() == 1 && stalled.front() != own.rank())
      return PeerError(stalled.front(), roster_.rank(stalled.front()) +
                                            " stopped responding (its heartbeat stopped); here: " + own.what());
    if (stalled.size() > 1 && roster_.several_hosts() && stalled == roster_.host_ranks(stalled.front()))
      return PeerError(stalled.front(),
                       roster_.host(stalled.front()) +
                           " stopped responding (the heartbeats of all its ranks stopped); here: " + own.what());
    return own;
  }

  // Counts this rank once among those that have seen the record (the failed
  // rank itself, if alive, does not count).
  void ack(const std::string& record) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (acked_) return;
      acked_ = true;
      if (seen_.empty()) seen_ = record;
    }
    if (std::atoi(record.c_str()) == rank_) return;
    store_->add(kAcks, 1);
  }

  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      cv_.wait_for(lock, kPoll);
      if (stop_ || acked_) return;
      lock.unlock();
      try {
        watch_store_->add(heartbeat_key(rank_), 1);
        last_beat_ok_ = Clock::now().time_since_epoch().count();
        if (watch_store_->check({kKey})) {
          std::vector<uint8_t> v = watch_store_->get(kKey);
          std::string record(v.begin(), v.end());
          bool do_ack = false;
          {
            std::lock_guard<std::mutex> g(mutex_);
            seen_ = record;
            if (!acked_) do_ack = acked_ = true;
          }
          if (do_ack && std::atoi(record.c_str()) != rank_) watch_store_->add(kAcks, 1);
          return;
        }
      } catch (const std::exception&) {
        return;  // the store is gone
      }
      lock.lock();
    }
  }

  // Returns when a failure record exists, when `peer`'s heartbeat did not
  // advance over 3 polls, or after kLinger.
  void wait_for_record_from(int peer) {
    const auto until = Clock::now() + std::min(kLinger, timeout_);
    int64_t beat = store_->add(heartbeat_key(peer), 0);
    auto next_beat_check = Clock::now() + 3 * kPoll;
    while (!store_->check({kKey}) && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (Clock::now() < next_beat_check) continue;
      const int64_t now = store_->add(heartbeat_key(peer), 0);
      if (now == beat) return;
      beat = now;
      next_beat_check = Clock::now() + 3 * kPoll;
    }
  }

  static std::string heartbeat_key(int rank) { return "ppc/heartbeat/" + std::to_string(rank); }

  // The other ranks whose heartbeat did not advance over a few polls (sorted).
  std::vector<int> stalled_ranks() {
    auto read = [&] {
      std::vector<int64_t> v;
      for (int r = 0; r < world_size_; ++r) v.push_back(store_->add(heartbeat_key(r), 0));
      return v;
    };
    std::vector<int64_t> before = read();
    std::this_thread::sleep_for(3 * kPoll);
    std::vector<int64_t> after = read();
    std::vector<int> stalled;
    for (int r = 0; r < world_size_; ++r)
      if (r != rank_ && after[r] == before[r]) stalled.push_back(r);
    return stalled;
  }

  void linger() {
    const auto deadline = Clock::now() + std::min(kLinger, timeout_);
    while (Clock::now() < deadline) {
      // Survivors: everyone but the failed rank (single failure).
      if (store_->add(kAcks, 0) >= world_size_ - 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Store> watch_store_;
  const int rank_;
  const int world_size_;
  const std::chrono::milliseconds timeout_;
  const std::string store_at_;
  const Roster roster_;
  std::thread watcher_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool acked_ = false;
  std::string seen_;
  std::atomic<Clock::rep> last_beat_ok_{0};
};

class GlooWork : public Work {
 public:
  GlooWork(c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> tensors, at::Tensor copy_to,
           std::vector<int> peers, std::shared_ptr<FailureRecord> failures, std::string op)
      : work_(std::move(work)),
        tensors_(std::move(tensors)),
        copy_to_(std::move(copy_to)),
        peers_(std::move(peers)),
        failures_(std::move(failures)),
        op_(std::move(op)) {}

  void wait() override {
    if (!work_) return;
    try {
      work_->wait();  // bounded by the Gloo context timeout (the group's timeout)
    } catch (const std::exception& e) {
      work_.reset();
      failures_->fail(e, peers_, op_);
    }
    work_.reset();
    if (copy_to_.defined()) copy_to_.copy_(tensors_.front());
    tensors_.clear();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<at::Tensor> tensors_;  // keeps the buffers alive until wait()
  at::Tensor copy_to_;               // non-contiguous receive target
  std::vector<int> peers_;           // whom a failure names
  std::shared_ptr<FailureRecord> failures_;
  std::string op_;
};

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The TCPStore as the rendezvous' key-value store.
class StoreKeyValue : public KeyValueStore {
 public:
  explicit StoreKeyValue(c10::intrusive_ptr<c10d::Store> store) : store_(std::move(store)) {}
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    std::vector<uint8_t> got = store_->compareSet(key, bytes(expected), bytes(desired));
    return std::string(got.begin(), got.end());
  }
  std::optional<std::string> get_if(const std::string& key) override {
    if (!store_->check({key})) return std::nullopt;
    std::vector<uint8_t> v = store_->get(key);
    return std::string(v.begin(), v.end());
  }
  int64_t add(const std::string& key, int64_t delta) override { return store_->add(key, delta); }
  void set(const std::string& key, const std::string& value) override { store_->set(key, bytes(value)); }

 private:
  static std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
  c10::intrusive_ptr<c10d::Store> store_;
};

std::string numeric_host(const sockaddr* sa, socklen_t length) {
  char host[NI_MAXHOST];
  if (getnameinfo(sa, length, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "";
  return host;
}

// The local address the kernel sends to host:port from (connect() on a UDP
// socket picks the route and the source address, sending nothing); on the
// host that owns `host`, `host` itself. "" with `error` set if there is none.
std::string route_source(const std::string& host, int port, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    error = gai_strerror(rc);
    return "";
  }
  std::string source;
  for (addrinfo* ai = found; ai != nullptr && source.empty(); ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0)
      source = numeric_host(reinterpret_cast<sockaddr*>(&local), length);
    else
      error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return source;
}

// The first IPv4 address of interface `name` (else its first IPv6 one), or "".
std::string interface_address(const std::string& name) {
  ifaddrs* all = nullptr;
  if (getifaddrs(&all) != 0) return "";
  std::string v4, v6;
  for (ifaddrs* i = all; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || name != i->ifa_name) continue;
    if (i->ifa_addr->sa_family == AF_INET && v4.empty()) v4 = numeric_host(i->ifa_addr, sizeof(sockaddr_in));
    if (i->ifa_addr->sa_family == AF_INET6 && v6.empty()) v6 = numeric_host(i->ifa_addr, sizeof(sockaddr_in6));
  }
  freeifaddrs(all);
  return v4.empty() ? v6 : v4;
}

// The address this rank's Gloo device listens on, which the other ranks
// connect to: GLOO_SOCKET_IFNAME's, if set; 127.0.0.1 when MASTER_ADDR is a
// loopback address (one host); otherwise the address this host reaches
// MASTER_ADDR from (MASTER_ADDR itself on its own host), never loopback.
std::string local_address(const RendezvousOptions& o, const std::string& who) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    std::string address = interface_address(ifname);
    if (address.empty())
      throw Error("GLOO_SOCKET_IFNAME=" + std::string(ifname) + ": no interface of that name with an address here (" +
                  who + ")");
    return address;
  }
  if (is_loopback(o.master_addr)) return "127.0.0.1";
  std::string error;
  std::string address = route_source(o.master_addr, o.master_port, error);
  if (address.empty())
    throw PeerError(0, "cannot reach the rendezvous store at " + o.master_addr + ":" + std::to_string(o.master_port) +
                           " from " + who + ": " + error);
  return address;
}

std::shared_ptr<::gloo::transport::Device> make_device(const std::string& address) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  return c10d::ProcessGroupGloo::createDeviceForHostname(address);
}

// "rank 2 (node 1)": this rank before the rendezvous, for messages.
std::string describe_self(const RendezvousOptions& o) {
  std::string who = "rank " + std::to_string(o.rank);
  if (o.node_rank >= 0) who += " (node " + std::to_string(o.node_rank) + ")";
  return who;
}

// One TCP connection attempt, given up after `limit`; the reason in `error`.
bool try_connect(const addrinfo* ai, std::chrono::milliseconds limit, std::string& error) {
  const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
  if (fd < 0) {
    error = std::strerror(errno);
    return false;
  }
  int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
      close(fd);
      error = "no answer";
      return false;
    }
    int so_error = 0;
    socklen_t length = sizeof so_error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length);
    rc = so_error == 0 ? 0 : -1;
    errno = so_error;
  }
  if (rc != 0) error = std::strerror(errno);
  close(fd);
  return rc == 0;
}

// Waits until something accepts connections at host:port (rank 0 may start
// after this rank), trying every 100 ms up to `timeout`. c10d's client would
// retry as long, but then logs its failure over several lines of stderr.
bool wait_for_listener(const std::string& host, int port, std::chrono::milliseconds timeout, std::string& error) {
  using Clock = std::chrono::steady_clock;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    error = gai_strerror(rc);
    return false;
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(found, freeaddrinfo);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (try_connect(ai, std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(1000)), error))
        return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The TCPStore: rank 0 hosts it on master_port, every rank (rank 0 too)
// connects to it at master_addr:master_port. The rendezvous that follows
// waits for the ranks, not the store.
c10::intrusive_ptr<c10d::Store> connect_store(const RendezvousOptions& o, const std::string& who) {
  const std::string where = o.master_addr + ":" + std::to_string(o.master_port);
  if (std::string error; o.rank != 0 && !wait_for_listener(o.master_addr, o.master_port, o.timeout, error))
    throw PeerError(0, "cannot reach the rendezvous store at " + where + " from " + who + ": " + error +
                           " (tried for " + seconds(o.timeout) + ")");
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.world_size);
    so.waitWorkers = false;
    so.timeout = o.timeout;
    return c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    if (o.rank == 0)
      throw PeerError(-1, who + " cannot host the rendezvous store at " + where + ": " + first_line(e.what()));
    throw PeerError(0, "cannot reach the rendezvous store at " + where + " from " + who + ": " + first_line(e.what()));
  }
}

// The peer address in a Gloo connect error ("connect [10.0.0.2]:4242: ..."), or "".
std::string gloo_peer_address(const std::string& what) {
  const auto open = what.find('[');
  const auto close = what.find("]:", open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return what.substr(open + 1, close - open - 1);
}

class GlooTransport : public Transport {
 public:
  explicit GlooTransport(const RendezvousOptions& o) : options_(o) {
    const std::string who = describe_self(o);
    const std::string address = local_address(o, who);
    store_ = connect_store(o, who);
    Member me{o.rank, o.world_size, o.node_rank, o.num_nodes, o.local_rank, o.local_world_size, address};
    StoreKeyValue kv(store_);
    Roster roster = rendezvous(kv, me, o.timeout, o.master_addr + ":" + std::to_string(o.master_port));
    device_ = make_device(address);
    std::vector<int> all(static_cast<size_t>(o.world_size));
    for (int r = 0; r < o.world_size; ++r) all[static_cast<size_t>(r)] = r;
    failures_ = std::make_shared<FailureRecord>(store_, o, std::move(roster));
    world_ = make_group(all, "ppc_world");
    // Point-to-point traffic to a higher rank travels on its own group, so
    // its own connections: a pipeline's activations and its gradients flow
    // in opposite directions, and on one connection each side's sends and
    // receive posts wait for the pair's lock while Gloo's thread reads the
    // other direction's data (skip's uniform 2-stage split, 3 tensors per
    // micro-batch each way: 12.9 -> 7.3 ms per step).
    up_ = make_group(all, "ppc_up");
    if (const char* f = std::getenv("PPRUN_TEST_CORRUPT_MESSAGE")) {
      int r = -1;
      long long n = 0;
      char kind[8] = {};
      if (std::sscanf(f, "%d:%lld:%7s", &r, &n, kind) == 3 && r == o.rank && n > 0) {
        fault_n_ = n;
        fault_kind_ = kind;
      }
    }
  }

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  // Tests only: PPRUN_TEST_CORRUPT_MESSAGE=RANK:N:flip|short makes rank RANK
  // send its N-th data message (tag below 2^30, counted from 1) with a byte
  // flipped in its middle, or 8 bytes short, so that the receiver's checks
  // can be tested end to end.
  at::Tensor inject_fault(at::Tensor t, uint32_t tag) {
    if (fault_n_ == 0 || tag >= (1u << 30) || ++data_sent_ != fault_n_) return t;
    at::Tensor bytes = t.reshape({-1}).view(at::kByte).clone();
    if (fault_kind_ == "short") return bytes.narrow(0, 0, std::max<int64_t>(0, bytes.numel() - 8)).clone();
    if (bytes.numel() > 0) bytes.data_ptr<uint8_t>()[bytes.numel() / 2] ^= 0x5a;
    return bytes;
  }

  std::unique_ptr<Work> isend(at::Tensor t, int dst, uint32_t tag) override {
    check_peer(dst, "isend");
    // Gloo moves host memory: a GPU's tensor travels as a host copy.
    std::vector<at::Tensor> ts{inject_fault(t.detach().to(at::kCPU).contiguous(), tag)};
    const std::string op = "send to rank " + std::to_string(dst) + ", tag " + std::to_string(tag);
    try {
      auto w = (dst > options_.rank ? up_ : world_)->send(ts, dst, checked_tag(tag));
      return std::make_unique<GlooWork>(std::move(w), std::move(ts), at::Tensor(), std::vector<int>{dst}, failures_,
                                        op);
    } catch (const std::exception& e) { failures_->fail(e, {dst}, op); }
  }

  std::unique_ptr<Work> irecv(at::Tensor t, int src, uint32_t tag) override {
    check_peer(src, "irecv");
    at::Tensor copy_to;
    at::Tensor buffer = t;
    if (!t.is_contiguous() || !t.device().is_cpu()) {  // received in host memory, copied in by wait()
      copy_to = t;
      buffer = at::empty(t.sizes(), t.options().device(at::kCPU));
    }
    std::vector<at::Tensor> ts{buffer};
    const std::string op = "receive from rank " + std::to_string(src) + ", tag " + std::to_string(tag);
    try {
      auto w = (src < options_.rank ? up_ : world_)->recv(ts, src, checked_tag(tag));
      return std::make_unique<GlooWork>(std::move(w), std::move(ts), std::move(copy_to), std::vector<int>{src},
                                        failures_, op);
    } catch (const std::exception& e) { failures_->fail(e, {src}, op); }
  }

  void all_reduce_sum(std::vector<at::Tensor>& ts, const std::vector<int>& ranks) override {
    std::vector<int> members = checked_members(ranks, "all_reduce_sum");
    if (members.size() == 1 || ts.empty()) return;
    std::vector<int> peers = others(members);
    const std::string op = "all_reduce_sum among ranks " + join(members);
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group = group_of(members);

    // Gloo's allreduce wants equal sizes across a vector (one tensor per
    // device): flatten each dtype's tensors into one buffer, reduce it once.
    std::vector<c10::ScalarType> dtypes;
    for (const at::Tensor& t : ts)
      if (std::find(dtypes.begin(), dtypes.end(), t.scalar_type()) == dtypes.end()) dtypes.push_back(t.scalar_type());
    for (c10::ScalarType dtype : dtypes) {
      std::vector<at::Tensor> parts;
      std::vector<size_t> index;
      for (size_t i = 0; i < ts.size(); ++i)
        if (ts[i].scalar_type() == dtype) {
          parts.push_back(ts[i].detach().reshape({-1}));
          index.push_back(i);
        }
      std::vector<at::Tensor> flat{parts.size() == 1 ? parts.front().to(at::kCPU).contiguous().clone()
                                                     : at::cat(parts).to(at::kCPU)};
      try {
        c10d::AllreduceOptions ao;
        ao.reduceOp = c10d::ReduceOp::SUM;
        group->allreduce(flat, ao)->wait();
      } catch (const std::exception& e) { failures_->fail(e, peers, op); }
      int64_t offset = 0;
      for (size_t k = 0; k < index.size(); ++k) {
        at::Tensor& dst = ts[index[k]];
        const int64_t n = dst.numel();
        dst.detach().copy_(flat.front().narrow(0, offset, n).view(dst.sizes()));
        offset += n;
      }
    }
  }

  std::unique_ptr<Work> iall_reduce_sum(at::Tensor t, const std::vector<int>& ranks) override {
    std::vector<int> members = checked_members(ranks, "iall_reduce_sum");
    if (members.size() == 1 || t.numel() == 0)
      return std::make_unique<GlooWork>(c10::intrusive_ptr<c10d::Work>(), std::vector<at::Tensor>{}, at::Tensor(),
                                        std::vector<int>{}, failures_, "");
    if (!t.is_contiguous()) throw std::invalid_argument("iall_reduce_sum: the tensor must be contiguous");
    std::vector<int> peers = others(members);
    const std::string op = "all_reduce_sum among ranks " + join(members);
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group = group_of(members);
    // A GPU's tensor is summed as a host copy, copied back by wait().
    const bool host = t.device().is_cpu();
    std::vector<at::Tensor> ts{host ? t : t.to(at::kCPU)};
    try {
      c10d::AllreduceOptions ao;
      ao.reduceOp = c10d::ReduceOp::SUM;
      auto w = group->allreduce(ts, ao);
      return std::make_unique<GlooWork>(std::move(w), std::move(ts), host ? at::Tensor() : t, std::move(peers),
                                        failures_, op);
    } catch (const std::exception& e) { failures_->fail(e, peers, op); }
  }

  void connect_group(const std::vector<int>& ranks) override {
    std::vector<int> members = checked_members(ranks, "connect_group");
    if (members.size() > 1) group_of(members);
  }

  void barrier() override {
    if (options_.world_size == 1) return;
    std::vector<int> peers;
    for (int r = 0; r < options_.world_size; ++r)
      if (r != options_.rank) peers.push_back(r);
    try {
      world_->barrier()->wait();
    } catch (const std::exception& e) { failures_->fail(e, peers, "barrier"); }
  }

 private:
  long long fault_n_ = 0, data_sent_ = 0;  // PPRUN_TEST_CORRUPT_MESSAGE
  std::string fault_kind_;
  static int checked_tag(uint32_t tag) {
    if (tag > static_cast<uint32_t>(INT_MAX))
      throw std::invalid_argument("tag " + std::to_string(tag) + " does not fit c10d (< 2^31)");
    return static_cast<int>(tag);
  }

  void check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= options_.world_size || peer == options_.rank)
      throw std::invalid_argument(std::string(what) + ": bad peer rank " + std::to_string(peer) + " (this is rank " +
                                  std::to_string(options_.rank) + " of " + std::to_string(options_.world_size) + ")");
  }

  // `ranks` sorted and deduplicated; they must be ranks of the world and include this one.
  std::vector<int> checked_members(const std::vector<int>& ranks, const char* what) const {
    std::vector<int> members = ranks;
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    for (int r : members)
      if (r < 0 || r >= options_.world_size)
        throw std::invalid_argument(std::string(what) + ": bad rank " + std::to_string(r));
    if (!std::binary_search(members.begin(), members.end(), options_.rank))
      throw std::invalid_argument(std::string(what) + ": rank " + std::to_string(options_.rank) +
                                  " is not among the ranks it reduces over");
    return members;
  }

  std::vector<int> others(const std::vector<int>& members) const {
    std::vector<int> peers;
    for (int r : members)
      if (r != options_.rank) peers.push_back(r);
    return peers;
  }

  // The process group of `members` (sorted): the world's, or a sub-group
  // made at its first use and kept.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_of(const std::vector<int>& members) {
    if (members.size() == static_cast<size_t>(options_.world_size)) return world_;
    auto it = groups_.find(members);
    if (it == groups_.end())
      it = groups_.emplace(members, make_group(members, "ppc_group_" + join(members, "_"))).first;
    return it->second;
  }

  // A process group over `members` (sorted global ranks) with group-local
  // ranks, rendezvousing under its own key prefix.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> make_group(const std::vector<int>& members, const std::string& prefix) {
    const int local =
        static_cast<int>(std::lower_bound(members.begin(), members.end(), options_.rank) - members.begin());
    auto go = c10d::ProcessGroupGloo::Options::create(options_.timeout);
    go->devices.push_back(device_);
    go->threads = 2;
    try {
      auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, store_);
      return c10::make_intrusive<c10d::ProcessGroupGloo>(store, local, static_cast<int>(members.size()), go);
    } catch (const std::exception& e) {
      std::vector<int> peers;
      for (int r : members)
        if (r != options_.rank) peers.push_back(r);
      std::string op = "connecting ranks " + join(members) + " (" + prefix + ")";
      // Across hosts, say which host an unreachable address belongs to.
      const Roster& roster = failures_->roster();
      if (const int at = roster.rank_at(gloo_peer_address(e.what())); roster.several_hosts() && at >= 0)
        op += " to " + roster.host(at);
      failures_->fail(e, peers, op);
    }
  }

  RendezvousOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::shared_ptr<::gloo::transport::Device> device_;
  std::shared_ptr<FailureRecord> failures_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> world_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> up_;  ///< sends to higher ranks (receives from lower)
  std::map<std::vector<int>, c10::intrusive_ptr<c10d::ProcessGroupGloo>> groups_;
};

}  // namespace

std::string announce_bad_start(const RendezvousOptions& o, const std::string& message) {
  if (o.num_nodes <= 1 || o.world_size <= 1) return message;
  try {
    const std::string who = describe_self(o);
    const std::string address = local_address(o, who);
    RendezvousOptions brief = o;  // do not wait long for a store that is not there
    brief.timeout = std::min(o.timeout, std::chrono::milliseconds(10000));
    StoreKeyValue kv(connect_store(brief, who));
    Member me{o.rank, o.world_size, o.node_rank, o.num_nodes, o.local_rank, o.local_world_size, address};
    return announce_bad_start(kv, me, message, brief.timeout);
  } catch (const std::exception&) { return message; }
}

std::unique_ptr<Transport> connect_gloo(const RendezvousOptions& options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size)
    throw std::invalid_argument("connect_gloo: rank " + std::to_string(options.rank) + " outside [0, " +
                                std::to_string(options.world_size) + ")");
  // Gloo writes to its sockets without MSG_NOSIGNAL: a write to a peer that
  // just died must fail (and be reported, naming it), not kill this process
  // with SIGPIPE before it can say anything.
  std::signal(SIGPIPE, SIG_IGN);
  return std::make_unique<GlooTransport>(options);
}

}  // namespace ppc::runtime
