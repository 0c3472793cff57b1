// runtime/schedule/lowering: compute-only schedules lowered to paired sends
// and receives (skip edges and stages sharing a rank), and receives hoisted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>

#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/stage_graph.h"
#include "runtime/schedule/validator.h"
#include "tests/unit/runtime/schedule/test_schedules.h"

using namespace ppc::runtime::schedule;
using namespace ppc::runtime::schedule::test_schedules;

namespace {

size_t count_kind(const Schedule& s, Action::Kind k) {
  size_t n = 0;
  for (const auto& r : s) n += std::count_if(r.begin(), r.end(), [&](const Action& a) { return a.kind == k; });
  return n;
}

}  // namespace

TEST(Lowering, AddsPairedSendsAndReceivesAroundCompute) {
  Schedule low = add_communication(one_f_one_b(3, 4), 3);
  EXPECT_EQ(to_string(low[0]),
            "0F0 0SEND_F0 0F1 0SEND_F1 0F2 0SEND_F2 0RECV_B0 0B0 0F3 0SEND_F3 0RECV_B1 0B1 0RECV_B2 0B2 0RECV_B3 0B3");
  EXPECT_EQ(to_string(low[2]),
            "2RECV_F0 2F0 2B0 2SEND_B0 2RECV_F1 2F1 2B1 2SEND_B1 2RECV_F2 2F2 2B2 2SEND_B2 2RECV_F3 2F3 2B3 2SEND_B3");
  // Every SEND has exactly one RECV on the next (forward) or previous (backward) rank.
  for (const Schedule& s : {low, add_communication(interleaved_1f1b(4, 2, 8), 8)}) {
    const int P = static_cast<int>(s.size());
    for (int r = 0; r < P; ++r)
      for (const Action& a : s[r]) {
        if (a.kind != Action::SEND_F && a.kind != Action::SEND_B) continue;
        const bool fwd = a.kind == Action::SEND_F;
        Action want{fwd ? Action::RECV_F : Action::RECV_B, fwd ? a.stage + 1 : a.stage - 1, a.microbatch};
        const auto& peer = s[want.stage % P];
        EXPECT_EQ(std::count(peer.begin(), peer.end(), want), 1) << to_string(a);
      }
    EXPECT_EQ(count_kind(s, Action::SEND_F), count_kind(s, Action::RECV_F));
    EXPECT_EQ(count_kind(s, Action::SEND_B), count_kind(s, Action::RECV_B));
  }
  // Nothing to send on one rank.
  EXPECT_EQ(add_communication(interleaved_1f1b(1, 3, 2), 3), interleaved_1f1b(1, 3, 2));
}

TEST(Lowering, HoistsReceivesBeforeThePrecedingCompute) {
  Schedule h = hoist_receives(add_communication(one_f_one_b(3, 4), 3));
  EXPECT_EQ(
      to_string(h[1]),
      "1RECV_F0 1RECV_F1 1F0 1SEND_F0 1RECV_B0 1F1 1SEND_F1 1RECV_F2 1B0 1SEND_B0 1RECV_B1 1F2 1SEND_F2 1RECV_F3 1B1 "
      "1SEND_B1 1RECV_B2 1F3 1SEND_F3 1RECV_B3 1B2 1SEND_B2 1B3 1SEND_B3");
  // Never past a compute action of the same micro-batch: 0RECV_B0 stays after 0F0.. and 0F2 is mb 2.
  Schedule h0 = hoist_receives(add_communication(one_f_one_b(2, 1), 2));
  EXPECT_EQ(to_string(h0[0]), "0F0 0SEND_F0 0RECV_B0 0B0");
}

TEST(Lowering, SkipEdgesAndStagesSharingARank) {
  // Stages 0 and 1 on rank 0, stage 2 on rank 1; a skip connection 0 -> 2.
  StageGraph g = StageGraph::from_edges(3, {{0, 1}, {1, 2}, {0, 2}});
  Schedule compute = sched({"0F0 1F0 0F1 1F1 1B0 0B0 1B1 0B1", "2F0 2B0 2F1 2B1"});
  Schedule low = add_communication(compute, 3, g);
  EXPECT_EQ(to_string(low[0]),
            "0F0 0SEND_F0 1F0 1SEND_F0 0F1 0SEND_F1 1F1 1SEND_F1 1RECV_B0 1B0 0RECV_B0 0B0 1RECV_B1 1B1 0RECV_B1 0B1");
  EXPECT_EQ(to_string(low[1]), "2RECV_F0 2F0 2B0 2SEND_B0 2RECV_F1 2F1 2B1 2SEND_B1");
  EXPECT_EQ(validate(low, 3, 2, g), "");
  SimResult r = simulate(low, 3, g, costs(1, 1));
  EXPECT_FALSE(r.deadlock) << r.deadlock_message();
  // Lowered for the plain chain, stage 0 neither sends nor receives: the skip
  // edge is not served.
  Schedule chain_low = add_communication(compute, 3);
  EXPECT_EQ(validate(chain_low, 3, 2, g), "rank 0, action 8 (0B0): backward before its receive 0RECV_B0");
  chain_low[0] = low[0];  // rank 1's lists agree: stage 2 receives from rank 0 either way
  EXPECT_EQ(validate(chain_low, 3, 2, g), "");
  EXPECT_EQ(error_of([] {
              StageGraph::from_edges(3, {{2, 1}});
            }),
            "edge 2 -> 1: edges must go from an earlier stage to a later one");
}
