// The job's rendezvous (runtime/transport/rendezvous.h) on an in-memory store,
// one thread per rank: the roster and how it names hosts, and every rank
// failing alike when the job was started inconsistently.
#include "runtime/transport/rendezvous.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "runtime/transport/transport.h"
#include "schemas/error.h"

namespace ppc::runtime {
namespace {

using std::chrono::milliseconds;

class MapStore : public KeyValueStore {
 public:
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) {
      if (!expected.empty()) return expected;
      return values_[key] = desired;
    }
    if (it->second == expected) it->second = desired;
    return it->second;
  }
  std::optional<std::string> get_if(const std::string& key) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  int64_t add(const std::string& key, int64_t delta) override {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string& v = values_[key];
    v = std::to_string((v.empty() ? 0 : std::stoll(v)) + delta);
    return std::stoll(v);
  }
  void set(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> lock(mutex_);
    values_[key] = value;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> values_;
};

Member member(int rank, int world, int node, int local_rank, int local_world, int nodes = 2) {
  return Member{rank, world, node, nodes, local_rank, local_world, "10.0.0." + std::to_string(node + 1)};
}

// What each rank's rendezvous returned ("ok") or threw ("Error: ..." / "PeerError: ...").
struct Outcome {
  std::vector<std::string> results;
  std::vector<Roster> rosters;
};

Outcome join_all(const std::vector<Member>& members, milliseconds timeout) {
  MapStore store;
  Outcome out;
  out.results.resize(members.size());
  out.rosters.resize(members.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < members.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        out.rosters[i] = rendezvous(store, members[i], timeout, "10.0.0.1:29500");
        out.results[i] = "ok";
      } catch (const Error& e) { out.results[i] = std::string("Error: ") + e.what(); } catch (const PeerError& e) {
        out.results[i] = std::string("PeerError: ") + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

TEST(Rendezvous, EveryRankGetsTheRosterThatNamesHosts) {
  Outcome o = join_all({member(0, 4, 0, 0, 2), member(1, 4, 0, 1, 2), member(2, 4, 1, 0, 2), member(3, 4, 1, 1, 2)},
                       milliseconds(5000));
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(o.results[i], "ok") << i;
    const Roster& r = o.rosters[i];
    EXPECT_TRUE(r.several_hosts());
    EXPECT_EQ(r.rank(2), "rank 2 (node 1, 10.0.0.2)");
    EXPECT_EQ(r.host(3), "node 1 (10.0.0.2: ranks 2, 3)");
    EXPECT_EQ(r.host_ranks(0), (std::vector<int>{0, 1}));
    EXPECT_EQ(r.rank_at("10.0.0.2"), 2);
  }
}

TEST(Rendezvous, OneHostNamesRanksOnly) {
  std::vector<Member> ms;
  for (int r = 0; r < 3; ++r) ms.push_back(Member{r, 3, -1, 0, -1, 0, "127.0.0.1"});
  Outcome o = join_all(ms, milliseconds(5000));
  ASSERT_EQ(o.results, (std::vector<std::string>(3, "ok")));
  EXPECT_FALSE(o.rosters[1].several_hosts());
  EXPECT_EQ(o.rosters[1].rank(2), "rank 2");
}

TEST(Rendezvous, WorldSizeThatDiffersFailsEveryRank) {
  // Host 1 was started with --nproc 1: its only rank is rank 1 of 2.
  Outcome o = join_all({member(0, 4, 0, 0, 2), member(1, 4, 0, 1, 2), member(1, 2, 1, 0, 1)}, milliseconds(5000));
  const std::string want =
      "Error: the ranks disagree on the world size: 2 on rank 1 (node 1, 10.0.0.2), 4 on rank 0 (node 0, 10.0.0.1) "
      "(start every host with the same --nnodes and --nproc)";
  EXPECT_EQ(o.results, (std::vector<std::string>(3, want)));
}

TEST(Rendezvous, NodeCountThatDiffersFailsEveryRank) {
  Outcome o = join_all({member(0, 2, 0, 0, 1), member(1, 2, 1, 0, 1, 3)}, milliseconds(5000));
  for (const auto& r : o.results)
    EXPECT_NE(r.find("Error: the ranks disagree on the number of nodes: 3 on rank 1"), std::string::npos) << r;
}

TEST(Rendezvous, RankStartedTwiceFailsEveryRank) {
  Outcome o = join_all({member(0, 3, 0, 0, 2), member(1, 3, 0, 1, 2), member(1, 3, 1, 0, 1)}, milliseconds(5000));
  for (const auto& r : o.results) {
    EXPECT_EQ(r.rfind("Error: rank 1 was started twice: on node ", 0), 0u) << r;
    EXPECT_NE(r.find("(give each host its own --node-rank)"), std::string::npos) << r;
  }
}

TEST(Rendezvous, RankMissingFromAHostIsBadInput) {
  // Host 1 says it has 2 ranks (LOCAL_WORLD_SIZE) but started only rank 2.
  Outcome o = join_all({member(0, 4, 0, 0, 2), member(1, 4, 0, 1, 2), member(2, 4, 1, 0, 2)}, milliseconds(300));
  const std::string want =
      "Error: rank 3 is missing from node 1 (10.0.0.2): it started 1 of its 2 ranks (LOCAL_WORLD_SIZE); waited 300 "
      "ms at 10.0.0.1:29500";
  EXPECT_EQ(o.results, (std::vector<std::string>(3, want)));
}

TEST(Rendezvous, HostThatNeverCameIsAPeerError) {
  Outcome o = join_all({member(0, 4, 0, 0, 2), member(1, 4, 0, 1, 2)}, milliseconds(300));
  const std::string want =
      "PeerError: ranks 2, 3 did not join the rendezvous at 10.0.0.1:29500 within 300 ms (no rank of node 1 came: is "
      "it started, with the same --master-addr and --master-port, and can it reach 10.0.0.1:29500?)";
  EXPECT_EQ(o.results, (std::vector<std::string>(2, want)));
}

TEST(Rendezvous, BadStartAnnouncedToTheOthers) {
  MapStore store;
  std::string got;
  std::thread bad([&] {
    std::this_thread::sleep_for(milliseconds(100));
    got = announce_bad_start(store, member(2, 3, 1, 0, 1), "schedule 'x' is wrong here", milliseconds(5000));
  });
  std::vector<std::string> results(2);
  std::vector<std::thread> ok;
  for (int r = 0; r < 2; ++r)
    ok.emplace_back([&, r] {
      try {
        rendezvous(store, member(r, 3, 0, r, 2), milliseconds(5000), "10.0.0.1:29500");
      } catch (const Error& e) { results[static_cast<size_t>(r)] = e.what(); }
    });
  bad.join();
  for (auto& t : ok) t.join();
  EXPECT_EQ(got, "rank 2 (node 1, 10.0.0.2): schedule 'x' is wrong here");
  EXPECT_EQ(results, (std::vector<std::string>(2, got)));
}

TEST(Rendezvous, MemberRecordsRoundTrip) {
  const Member m{3, 8, 1, 2, 1, 4, "fe80::1"};
  const Member back = Member::decode(m.encode());
  EXPECT_EQ(back.encode(), m.encode());
  EXPECT_EQ(back.who(), "rank 3 (node 1, fe80::1)");
  EXPECT_THROW(Member::decode("1|2|3"), std::runtime_error);
}

}  // namespace
}  // namespace ppc::runtime
