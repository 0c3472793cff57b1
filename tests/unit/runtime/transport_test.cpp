// The in-process fake transport (threads): point-to-point matching, tags,
// sub-group all_reduce_sum, timeouts and dead peers as PeerError naming the
// rank; and rendezvous_from_env. The Gloo transport is tested across
// processes by tests/e2e/test_transport.sh.
#include "runtime/transport/transport.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

namespace ppc::runtime {
namespace {

using namespace std::chrono_literals;

// Runs fn(transport) for every rank on its own thread; rethrows the first failure.
void run_ranks(std::vector<std::unique_ptr<Transport>>& ts, const std::function<void(Transport&)>& fn) {
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(ts.size());
  for (size_t r = 0; r < ts.size(); ++r)
    threads.emplace_back([&, r] {
      try {
        fn(*ts[r]);
      } catch (...) { errors[r] = std::current_exception(); }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

TEST(FakeTransport, RingSendRecvAcrossThreads) {
  auto ts = make_local_fakes(4, 5s);
  run_ranks(ts, [](Transport& t) {
    const int n = t.world_size(), r = t.rank();
    for (int step = 0; step < 5; ++step) {
      at::Tensor in = at::empty({2, 3});
      auto recv = t.irecv(in, (r + n - 1) % n, 7);  // posted before the send
      auto send = t.isend(at::full({2, 3}, 100.0 * r + step), (r + 1) % n, 7);
      send->wait();
      recv->wait();
      double expect = 100.0 * ((r + n - 1) % n) + step;
      ASSERT_TRUE(at::equal(in, at::full({2, 3}, expect))) << "rank " << r << " step " << step;
    }
  });
}

TEST(FakeTransport, TagsKeepMessagesApartAndFifoPerTag) {
  auto ts = make_local_fakes(2, 5s);
  run_ranks(ts, [](Transport& t) {
    if (t.rank() == 0) {
      t.isend(at::full({1}, 1.0), 1, 1)->wait();
      t.isend(at::full({1}, 2.0), 1, 2)->wait();
      t.isend(at::full({1}, 3.0), 1, 1)->wait();
      t.isend(at::arange(6, at::kLong), 1, 3)->wait();
    } else {
      // Post in an order different from the sends; wait in yet another order.
      at::Tensor a = at::zeros({1}), b = at::zeros({1}), c = at::zeros({1});
      at::Tensor d = at::zeros({2, 3}, at::kLong);
      auto wb = t.irecv(b, 0, 2);
      auto wa = t.irecv(a, 0, 1);  // first message on tag 1
      auto wc = t.irecv(c, 0, 1);  // second message on tag 1
      auto wd = t.irecv(d, 0, 3);
      wc->wait();
      wd->wait();
      wb->wait();
      wa->wait();
      EXPECT_EQ(a.item<float>(), 1.0f);
      EXPECT_EQ(b.item<float>(), 2.0f);
      EXPECT_EQ(c.item<float>(), 3.0f);
      EXPECT_TRUE(at::equal(d, at::arange(6, at::kLong).view({2, 3})));
    }
  });
}

TEST(FakeTransport, SendCopiesData) {
  auto ts = make_local_fakes(2, 5s);
  run_ranks(ts, [](Transport& t) {
    if (t.rank() == 0) {
      at::Tensor x = at::ones({4});
      auto w = t.isend(x, 1, 0);
      w->wait();
      x.fill_(9.0);  // after wait() the buffer is ours again
    } else {
      at::Tensor y = at::zeros({4});
      t.irecv(y, 0, 0)->wait();
      EXPECT_TRUE(at::equal(y, at::ones({4})));
    }
  });
}

TEST(FakeTransport, AllReduceSumOverSubset) {
  auto ts = make_local_fakes(4, 5s);
  run_ranks(ts, [](Transport& t) {
    const int r = t.rank();
    if (r == 1) return;  // not a member: must not be needed
    for (int round = 0; round < 3; ++round) {
      std::vector<at::Tensor> v{at::full({3}, double(r + round)), at::full({2, 2}, int64_t(r), at::kLong)};
      t.all_reduce_sum(v, {3, 0, 2});
      EXPECT_TRUE(at::equal(v[0], at::full({3}, double(0 + 2 + 3 + 3 * round)))) << v[0];
      EXPECT_TRUE(at::equal(v[1], at::full({2, 2}, int64_t(5), at::kLong))) << v[1];
    }
    if (r == 0 || r == 2) {
      std::vector<at::Tensor> v{at::full({1}, 1.0)};
      t.all_reduce_sum(v, {0, 2});
      EXPECT_EQ(v[0].item<float>(), 2.0f);
    }
  });
}

TEST(FakeTransport, AsyncAllReduceSumsAtWaitInStartOrder) {
  // Ranks {0, 2} and {1, 3} each start two reductions, then wait for both.
  auto ts = make_local_fakes(4, 5s);
  run_ranks(ts, [](Transport& t) {
    const int r = t.rank();
    std::vector<int> group = r % 2 == 0 ? std::vector<int>{0, 2} : std::vector<int>{1, 3};
    at::Tensor a = at::full({3}, static_cast<double>(r + 1), at::kDouble);
    at::Tensor b = at::full({2}, 10.0 * (r + 1), at::kDouble);
    auto wa = t.iall_reduce_sum(a, group);
    auto wb = t.iall_reduce_sum(b, group);
    wa->wait();
    wb->wait();
    const double want = r % 2 == 0 ? 1 + 3 : 2 + 4;
    EXPECT_DOUBLE_EQ(a[2].item<double>(), want);
    EXPECT_DOUBLE_EQ(b[1].item<double>(), 10 * want);
  });
  EXPECT_THROW(ts[0]->iall_reduce_sum(at::zeros({1}), {1, 2}), std::invalid_argument);
}

TEST(SubsetTransport, RanksAreIndicesIntoItsMembers) {
  // Two "replicas" {3, 1} and {0, 2} of a 2-rank pipeline in a world of 4:
  // each sends within itself by local rank, reduces and meets at a barrier.
  auto ts = make_local_fakes(4, 5s);
  run_ranks(ts, [](Transport& world) {
    std::vector<int> members = world.rank() % 2 == 1 ? std::vector<int>{3, 1} : std::vector<int>{0, 2};
    auto sub = subset_transport(world, members);
    EXPECT_EQ(sub->world_size(), 2);
    EXPECT_EQ(members[static_cast<size_t>(sub->rank())], world.rank());
    at::Tensor x = at::full({1}, static_cast<double>(world.rank()), at::kDouble);
    if (sub->rank() == 0) {
      sub->isend(x, 1, 7)->wait();
    } else {
      at::Tensor got = at::zeros({1}, at::kDouble);
      sub->irecv(got, 0, 7)->wait();
      EXPECT_DOUBLE_EQ(got.item<double>(), members[0]);  // from the first member, by world rank
    }
    std::vector<at::Tensor> v{x.clone()};
    sub->all_reduce_sum(v, {0, 1});
    EXPECT_DOUBLE_EQ(v[0].item<double>(), members[0] + members[1]);
    sub->barrier();
    EXPECT_THROW(sub->isend(x, 2, 7), std::invalid_argument);  // no local rank 2
  });
  EXPECT_THROW(subset_transport(*ts[0], {1, 2}), std::invalid_argument);     // not a member
  EXPECT_THROW(subset_transport(*ts[0], {0, 0, 1}), std::invalid_argument);  // repeated
  EXPECT_THROW(subset_transport(*ts[0], {0, 4}), std::invalid_argument);     // outside the world
}

TEST(FakeTransport, AllReduceRejectsNonMember) {
  auto ts = make_local_fakes(3, 1s);
  std::vector<at::Tensor> v{at::ones({1})};
  EXPECT_THROW(ts[1]->all_reduce_sum(v, {0, 2}), std::invalid_argument);
}

TEST(FakeTransport, BarrierAndSelfSendRejected) {
  auto ts = make_local_fakes(3, 5s);
  run_ranks(ts, [](Transport& t) { t.barrier(); });
  EXPECT_THROW(ts[0]->isend(at::ones({1}), 0, 0), std::invalid_argument);
  EXPECT_THROW(ts[0]->irecv(at::ones({1}), 3, 0), std::invalid_argument);
}

TEST(FakeTransport, RecvWithoutSenderTimesOutNamingRank) {
  auto ts = make_local_fakes(3, 300ms);
  at::Tensor x = at::zeros({2});
  auto w = ts[0]->irecv(x, 2, 5);
  auto start = std::chrono::steady_clock::now();
  try {
    w->wait();
    FAIL() << "expected PeerError";
  } catch (const PeerError& e) {
    EXPECT_EQ(e.rank(), 2);
    EXPECT_EQ(std::string(e.what()), "rank 2 did not answer within 300 ms");
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3s);
}

TEST(FakeTransport, AllReduceTimeoutNamesMissingRank) {
  auto ts = make_local_fakes(3, 200ms);
  std::vector<at::Tensor> v{at::ones({1})};
  try {
    ts[0]->all_reduce_sum(v, {0, 1});
    FAIL() << "expected PeerError";
  } catch (const PeerError& e) {
    EXPECT_EQ(e.rank(), 1);
    EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
  }
}

TEST(FakeTransport, DeadPeerFailsPendingRecvAtOnce) {
  auto ts = make_local_fakes(2, 10s);
  at::Tensor x = at::zeros({1});
  auto w = ts[0]->irecv(x, 1, 0);
  auto start = std::chrono::steady_clock::now();
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    ts[1].reset();  // rank 1 "dies"
  });
  try {
    w->wait();
    FAIL() << "expected PeerError";
  } catch (const PeerError& e) {
    EXPECT_EQ(e.rank(), 1);
    EXPECT_EQ(std::string(e.what()), "connection to rank 1 closed");
  }
  killer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_THROW(ts[0]->isend(at::ones({1}), 1, 0)->wait(), PeerError);
}

TEST(FakeTransport, SizeMismatchIsAnError) {
  auto ts = make_local_fakes(2, 2s);
  ts[0]->isend(at::ones({3}), 1, 0)->wait();
  at::Tensor y = at::zeros({4});
  EXPECT_THROW(ts[1]->irecv(y, 0, 0)->wait(), std::runtime_error);
}

TEST(Rendezvous, EnvironmentThenFlags) {
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "29601", 1);
  setenv("RANK", "2", 1);
  setenv("WORLD_SIZE", "4", 1);
  RendezvousOptions o = rendezvous_from_env();
  EXPECT_EQ(o.master_addr, "10.0.0.7");
  EXPECT_EQ(o.master_port, 29601);
  EXPECT_EQ(o.rank, 2);
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(300000));
  o = rendezvous_from_env(std::string("127.0.0.1"), 1234, 0, std::nullopt, 5000ms);
  EXPECT_EQ(o.master_addr, "127.0.0.1");
  EXPECT_EQ(o.master_port, 1234);
  EXPECT_EQ(o.rank, 0);
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.timeout, 5000ms);
  setenv("RANK", "4", 1);
  EXPECT_THROW(rendezvous_from_env(), std::invalid_argument);
  setenv("RANK", "x1", 1);
  EXPECT_THROW(rendezvous_from_env(), std::invalid_argument);
  for (const char* v : {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"}) unsetenv(v);
  o = rendezvous_from_env();
  EXPECT_EQ(o.master_addr, "127.0.0.1");
  EXPECT_EQ(o.master_port, 29500);
  EXPECT_EQ(o.rank, 0);
  EXPECT_EQ(o.world_size, 1);
}

TEST(Rendezvous, DescribeTimeout) {
  EXPECT_EQ(describe_timeout(2, std::chrono::milliseconds(5000)), "rank 2 did not answer within 5 s");
  EXPECT_EQ(describe_timeout(1, std::chrono::milliseconds(1500)), "rank 1 did not answer within 1500 ms");
}

}  // namespace
}  // namespace ppc::runtime
