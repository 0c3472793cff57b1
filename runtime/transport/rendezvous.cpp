#include "runtime/transport/rendezvous.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "runtime/transport/transport.h"
#include "schemas/error.h"

namespace ppc::runtime {

KeyValueStore::~KeyValueStore() = default;

std::string join_ranks(const std::vector<int>& ranks) {
  std::ostringstream os;
  for (size_t i = 0; i < ranks.size(); ++i) os << (i ? ", " : "") << ranks[i];
  return os.str();
}

std::string Member::encode() const {
  std::ostringstream os;
  os << rank << '|' << world_size << '|' << node << '|' << num_nodes << '|' << local_rank << '|' << local_world_size
     << '|' << address;
  return os.str();
}

Member Member::decode(const std::string& text) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (size_t bar; fields.size() < 6 && (bar = text.find('|', start)) != std::string::npos; start = bar + 1)
    fields.push_back(text.substr(start, bar - start));
  fields.push_back(text.substr(start));
  if (fields.size() != 7) throw std::runtime_error("rendezvous: malformed member record '" + text + "'");
  Member m;
  try {
    m.rank = std::stoi(fields[0]);
    m.world_size = std::stoi(fields[1]);
    m.node = std::stoi(fields[2]);
    m.num_nodes = std::stoi(fields[3]);
    m.local_rank = std::stoi(fields[4]);
    m.local_world_size = std::stoi(fields[5]);
  } catch (const std::logic_error&) { throw std::runtime_error("rendezvous: malformed member record '" + text + "'"); }
  m.address = fields[6];
  return m;
}

std::string Member::host() const { return node >= 0 ? "node " + std::to_string(node) + " (" + address + ")" : address; }

std::string Member::who() const {
  return "rank " + std::to_string(rank) + " (" + (node >= 0 ? "node " + std::to_string(node) + ", " : "") + address +
         ")";
}

Roster::Roster(std::vector<Member> members) : members_(std::move(members)) {
  for (size_t r = 1; r < members_.size(); ++r)
    if (!same_host(0, static_cast<int>(r))) several_hosts_ = true;
}

bool Roster::same_host(int a, int b) const {
  const Member& x = members_[static_cast<size_t>(a)];
  const Member& y = members_[static_cast<size_t>(b)];
  return x.address == y.address && x.node == y.node;
}

std::string Roster::rank(int r) const {
  if (!several_hosts_ || r < 0 || r >= static_cast<int>(members_.size())) return "rank " + std::to_string(r);
  return members_[static_cast<size_t>(r)].who();
}

std::vector<int> Roster::host_ranks(int r) const {
  if (r < 0 || r >= static_cast<int>(members_.size())) return {r};
  std::vector<int> ranks;
  for (int q = 0; q < static_cast<int>(members_.size()); ++q)
    if (same_host(r, q)) ranks.push_back(q);
  return ranks;
}

std::string Roster::host(int r) const {
  const std::vector<int> ranks = host_ranks(r);
  if (r < 0 || r >= static_cast<int>(members_.size())) return "the host of rank " + std::to_string(r);
  const Member& m = members_[static_cast<size_t>(r)];
  const std::string list = (ranks.size() == 1 ? "rank " : "ranks ") + join_ranks(ranks);
  if (m.node >= 0) return "node " + std::to_string(m.node) + " (" + m.address + ": " + list + ")";
  return "host " + m.address + " (" + list + ")";
}

int Roster::rank_at(const std::string& address) const {
  for (const Member& m : members_)
    if (m.address == address) return m.rank;
  return -1;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(20);
// Rank 0 hosts the store: after a failed rendezvous it stays until every
// other rank that came has read the record, at most kLinger; after a job
// found started inconsistently, longer (see settle_abort).
constexpr auto kLinger = std::chrono::milliseconds(3000);
constexpr auto kLingerForAll = std::chrono::milliseconds(10000);
constexpr auto kQuiet = std::chrono::milliseconds(2000);
// How long a rank that failed before the rendezvous waits for rank 0's
// record of the job (to compare world sizes).
constexpr auto kWorldWait = std::chrono::milliseconds(2000);
// Ranks other than 0 wait for the roster this much longer than rank 0 waits
// for them (rank 0 started its wait before they could connect).
constexpr auto kRosterSlack = std::chrono::milliseconds(5000);

const std::string kArrived = "ppc/rdzv/arrived";
const std::string kWorld = "ppc/rdzv/world";
const std::string kJoined = "ppc/rdzv/joined";
const std::string kAbort = "ppc/rdzv/abort";
const std::string kAcks = "ppc/rdzv/abort_acks";
const std::string kRoster = "ppc/rdzv/roster";
std::string rank_key(int r) { return "ppc/rdzv/rank/" + std::to_string(r); }

std::string seconds(std::chrono::milliseconds t) {
  return t.count() % 1000 == 0 ? std::to_string(t.count() / 1000) + " s" : std::to_string(t.count()) + " ms";
}

class Join {
 public:
  Join(KeyValueStore& store, const Member& me, std::chrono::milliseconds timeout, std::string where)
      : store_(store), me_(me), timeout_(timeout), where_(std::move(where)) {}

  Roster run() {
    store_.add(kArrived, 1);
    if (me_.rank == 0) {
      const std::string mine = me_.encode();
      const std::string got = store_.compare_set(kWorld, "", mine);
      hosting_ = got == mine;
      if (!hosting_) abort(true, started_twice(Member::decode(got)));
    } else {
      check_same_job(Member::decode(await(kWorld, Clock::now() + timeout_, "rank 0 did not open it")));
    }
    const std::string mine = me_.encode();
    const std::string got = store_.compare_set(rank_key(me_.rank), "", mine);
    if (got != mine) abort(true, started_twice(Member::decode(got)));
    store_.add(kJoined, 1);
    if (me_.rank != 0) return decode_roster(await(kRoster, Clock::now() + timeout_ + kRosterSlack, "no roster"));
    return gather();
  }

  std::string started_twice(const Member& first) const {
    return "rank " + std::to_string(me_.rank) + " was started twice: on " + first.host() + " and on " + me_.host() +
           " (give each host its own --node-rank)";
  }

  // A rank that found bad input before joining: records it for the job (or,
  // where rank 0's world size differs, that) and returns the record that holds.
  std::string announce(const std::string& message) {
    store_.add(kArrived, 1);
    std::string problem = me_.who() + ": " + message;
    if (me_.rank == 0) {
      const std::string mine = me_.encode();
      hosting_ = store_.compare_set(kWorld, "", mine) == mine;
    } else {
      const auto until = Clock::now() + std::min<std::chrono::milliseconds>(kWorldWait, timeout_);
      std::optional<std::string> zero;
      while (!(zero = store_.get_if(kWorld)) && Clock::now() < until) std::this_thread::sleep_for(kPoll);
      if (zero) problem = disagreement(Member::decode(*zero)).value_or(problem);
    }
    const std::string record = store_.compare_set(kAbort, "", "2|" + problem);
    settle_abort(true);
    return record.substr(record.find('|') + 1);
  }

 private:
  // What makes `zero`'s job and this rank's differ, if anything.
  std::optional<std::string> disagreement(const Member& zero) const {
    const auto differ = [&](const std::string& what, int mine, int theirs) {
      return "the ranks disagree on " + what + ": " + std::to_string(mine) + " on " + me_.who() + ", " +
             std::to_string(theirs) + " on " + zero.who() + " (start every host with the same --nnodes and --nproc)";
    };
    if (zero.world_size != me_.world_size) return differ("the world size", me_.world_size, zero.world_size);
    if (zero.num_nodes > 0 && me_.num_nodes > 0 && zero.num_nodes != me_.num_nodes)
      return differ("the number of nodes", me_.num_nodes, zero.num_nodes);
    return std::nullopt;
  }

  void check_same_job(const Member& zero) {
    if (auto problem = disagreement(zero)) abort(true, *problem);
  }

  // Rank 0: waits until every rank has joined, then publishes where each runs.
  Roster gather() {
    const auto deadline = Clock::now() + timeout_;
    while (store_.add(kJoined, 0) < me_.world_size) {
      poll_abort();
      if (Clock::now() >= deadline) report_missing();
      std::this_thread::sleep_for(kPoll);
    }
    std::vector<Member> members;
    std::string roster;
    for (int r = 0; r < me_.world_size; ++r) {
      const std::string m = store_.get_if(rank_key(r)).value_or("");
      members.push_back(Member::decode(m));
      roster += (r ? "\n" : "") + m;
    }
    store_.set(kRoster, roster);
    return Roster(std::move(members));
  }

  static Roster decode_roster(const std::string& text) {
    std::vector<Member> members;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) members.push_back(Member::decode(line));
    return Roster(std::move(members));
  }

  // Waits for `key`, failing with any record of a failed rendezvous.
  std::string await(const std::string& key, Clock::time_point deadline, const std::string& why) {
    for (;;) {
      poll_abort();
      if (auto v = store_.get_if(key)) return *v;
      if (Clock::now() >= deadline)
        throw PeerError(0, "the rendezvous at " + where_ + " did not complete within " + seconds(timeout_) + " (" +
                               why + "; here: " + me_.who() + ")");
      std::this_thread::sleep_for(kPoll);
    }
  }

  [[noreturn]] void report_missing() {
    std::vector<Member> present;
    std::set<int> missing;
    for (int r = 0; r < me_.world_size; ++r) {
      if (auto v = store_.get_if(rank_key(r)))
        present.push_back(Member::decode(*v));
      else
        missing.insert(r);
    }
    // A joined rank's LOCAL_RANK and LOCAL_WORLD_SIZE say which ranks its host started.
    std::map<std::string, std::pair<Member, std::vector<int>>> partial;
    for (const Member& m : present) {
      if (m.local_rank < 0 || m.local_world_size <= 0) continue;
      auto& entry = partial.emplace(m.host(), std::make_pair(m, std::vector<int>{})).first->second;
      for (int r = m.rank - m.local_rank; r < m.rank - m.local_rank + m.local_world_size; ++r)
        if (missing.count(r) && std::find(entry.second.begin(), entry.second.end(), r) == entry.second.end())
          entry.second.push_back(r);
    }
    std::string message;
    for (auto& [host, entry] : partial) {
      if (entry.second.empty()) continue;
      std::sort(entry.second.begin(), entry.second.end());
      const int lws = entry.first.local_world_size, started = lws - static_cast<int>(entry.second.size());
      message += std::string(message.empty() ? "" : "; ") + (entry.second.size() == 1 ? "rank " : "ranks ") +
                 join_ranks(entry.second) + (entry.second.size() == 1 ? " is" : " are") + " missing from " + host +
                 ": it started " + std::to_string(started) + " of its " + std::to_string(lws) +
                 " ranks (LOCAL_WORLD_SIZE)";
    }
    if (!message.empty()) abort(true, message + "; waited " + seconds(timeout_) + " at " + where_, true);
    abort(false, missing_hosts(present, std::vector<int>(missing.begin(), missing.end())));
  }

  std::string missing_hosts(const std::vector<Member>& present, const std::vector<int>& missing) const {
    std::string message = (missing.size() == 1 ? "rank " : "ranks ") + join_ranks(missing) +
                          " did not join the rendezvous at " + where_ + " within " + seconds(timeout_);
    if (me_.num_nodes <= 0) return message;
    std::vector<int> absent;
    for (int n = 0; n < me_.num_nodes; ++n)
      if (std::none_of(present.begin(), present.end(), [n](const Member& m) { return m.node == n; }))
        absent.push_back(n);
    if (absent.empty()) return message;
    return message + " (no rank of node" + (absent.size() == 1 ? " " : "s ") + join_ranks(absent) +
           " came: is it started, with the same --master-addr and --master-port, and can it reach " + where_ + "?)";
  }

  // Records the failure (the first record wins) and fails with it. Records
  // are "CODE|message": 2 a job started inconsistently (rank 0 waits for the
  // whole world to see it), 3 bad input with ranks missing, 1 ranks that
  // never came.
  [[noreturn]] void abort(bool bad_input, const std::string& message, bool ranks_missing = false) {
    const std::string mine = (bad_input ? (ranks_missing ? "3|" : "2|") : "1|") + message;
    raise(store_.compare_set(kAbort, "", mine));
  }

  void poll_abort() {
    if (auto v = store_.get_if(kAbort)) raise(*v);
  }

  [[noreturn]] void raise(const std::string& record) {
    const char code = record.empty() ? '1' : record[0];
    settle_abort(code == '2');
    const std::string message = record.substr(record.find('|') + 1);
    if (code == '2' || code == '3') throw Error(message);
    throw PeerError(-1, message);
  }

  // Acknowledges a failed rendezvous, or, hosting the store, stays until the
  // ranks that came have seen the record. For a job started inconsistently,
  // ranks of other hosts may still be on their way: then it stays until the
  // whole world has seen it, or no rank came for kQuiet, at most kLingerForAll.
  void settle_abort(bool wait_for_all) {
    try {
      if (!hosting_) {
        store_.add(kAcks, 1);
        return;
      }
      const auto start = Clock::now();
      const auto until = start + std::min<std::chrono::milliseconds>(wait_for_all ? kLingerForAll : kLinger, timeout_);
      int64_t arrived = store_.add(kArrived, 0);
      auto last_arrival = start;
      while (Clock::now() < until) {
        const int64_t acks = store_.add(kAcks, 0), now_arrived = store_.add(kArrived, 0);
        if (now_arrived != arrived) last_arrival = Clock::now();
        arrived = now_arrived;
        if (wait_for_all && acks >= me_.world_size - 1) return;
        if (acks >= arrived - 1 && (!wait_for_all || Clock::now() - last_arrival >= kQuiet)) return;
        std::this_thread::sleep_for(kPoll);
      }
    } catch (const std::exception&) {
      // The store is gone: the record is all there is to say.
    }
  }

  KeyValueStore& store_;
  const Member me_;
  const std::chrono::milliseconds timeout_;
  const std::string where_;
  bool hosting_ = false;  ///< this is the rank 0 whose store the job uses
};

}  // namespace

std::string announce_bad_start(KeyValueStore& store, const Member& me, const std::string& message,
                               std::chrono::milliseconds timeout) {
  try {
    return Join(store, me, timeout, "").announce(message);
  } catch (const std::exception&) { return message; }
}

Roster rendezvous(KeyValueStore& store, const Member& me, std::chrono::milliseconds timeout, const std::string& where) {
  try {
    return Join(store, me, timeout, where).run();
  } catch (const Error&) { throw; } catch (const PeerError&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw PeerError(0, "the rendezvous store at " + where + " stopped answering (" + me.who() +
                           " lost it during the rendezvous): " + what.substr(0, what.find('\n')));
  }
}

}  // namespace ppc::runtime
