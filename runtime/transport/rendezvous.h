// The join of a pprun job's ranks before any Gloo connection, and where each
// rank runs, so that errors can name hosts. Written against a small key-value
// interface: c10d's TCPStore in gloo_transport.cpp, a map in the unit tests.
//
// Every rank claims its rank in the store and checks that it belongs to the
// same job as rank 0 (world size, number of nodes); rank 0 waits for all of
// them (up to the timeout) and publishes the roster. A rank that finds a
// mismatch records it, and every rank fails with that record: ppc::Error
// (exit 2) for a job started inconsistently, PeerError for ranks that never
// came.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ppc::runtime {

class KeyValueStore {
 public:
  virtual ~KeyValueStore();
  /// Sets `key` to `desired` if it holds `expected` ("": absent) and returns
  /// what it holds afterwards (c10d's compareSet).
  virtual std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) = 0;
  /// The value of `key`, or nullopt if it has none yet (never waits).
  virtual std::optional<std::string> get_if(const std::string& key) = 0;
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  virtual void set(const std::string& key, const std::string& value) = 0;
};

/// One rank as it joined. Unknown fields are -1 (node, local_rank) or 0
/// (num_nodes, local_world_size).
struct Member {
  int rank = 0, world_size = 1, node = -1, num_nodes = 0, local_rank = -1, local_world_size = 0;
  /// The address its host is reached at (the one its Gloo device binds).
  std::string address;

  std::string encode() const;
  /// Throws std::runtime_error for text that encode() did not write.
  static Member decode(const std::string& text);
  /// "node 1 (10.231.7.2)", or "10.231.7.2" where the node is unknown.
  std::string host() const;
  /// "rank 3 (node 1, 10.231.7.2)".
  std::string who() const;
};

/// Where every rank runs (indexed by rank).
class Roster {
 public:
  Roster() = default;
  explicit Roster(std::vector<Member> members);
  /// More than one host (distinct address or node): only then do messages name hosts.
  bool several_hosts() const { return several_hosts_; }
  /// "rank 2 (node 1, 10.231.7.2)", or "rank 2" on one host.
  std::string rank(int r) const;
  /// The ranks on r's host, sorted ({r} where unknown).
  std::vector<int> host_ranks(int r) const;
  /// "node 1 (10.231.7.2: ranks 2, 3)": r's host and its ranks.
  std::string host(int r) const;
  /// A rank whose host is at `address`, or -1.
  int rank_at(const std::string& address) const;
  const std::vector<Member>& members() const { return members_; }

 private:
  bool same_host(int a, int b) const;
  std::vector<Member> members_;
  bool several_hosts_ = false;
};

/// Joins `me` to the job whose store is `store` (the store's own host and port
/// as `where`, for messages) and returns the roster once every rank has
/// joined. Throws ppc::Error when the ranks were started inconsistently (world
/// size or node count differing from rank 0's, a rank started twice, a host
/// that started only some of its LOCAL_WORLD_SIZE ranks), PeerError when ranks
/// did not join within `timeout` or the store stopped answering; every rank
/// that is in the rendezvous fails with the same message.
Roster rendezvous(KeyValueStore& store, const Member& me, std::chrono::milliseconds timeout, const std::string& where);

/// For a rank that found bad input before it could join (its placement, its
/// schedule): records `message` as the job's failure, so that the ranks in the
/// rendezvous fail with it (exit 2) instead of waiting for this one until the
/// timeout, and returns the record that holds (the first; where rank 0's
/// world size differs from this rank's, that disagreement). As rank 0, stays
/// until the world's other ranks have seen it, at most 10 s. Never throws
/// (returns `message` when the store fails).
std::string announce_bad_start(KeyValueStore& store, const Member& me, const std::string& message,
                               std::chrono::milliseconds timeout);

/// "2, 3, 5": ranks for messages.
std::string join_ranks(const std::vector<int>& ranks);

}  // namespace ppc::runtime
