// runtime/schedule/validator: malformed schedules rejected, each with a message
// naming the rank and action; forward-only schedules.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>

#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/validator.h"
#include "tests/unit/runtime/schedule/test_schedules.h"

using namespace ppc::runtime::schedule;
using namespace ppc::runtime::schedule::test_schedules;

TEST(Validator, RejectsMissingForward) {
  Schedule s = one_f_one_b(3, 4);
  auto drop = [](RankSchedule& r, const std::string& a) { r.erase(std::find(r.begin(), r.end(), parse_action(a))); };
  Schedule no_f = s;
  drop(no_f[1], "1F2");
  EXPECT_EQ(validate(no_f, 3, 4), "rank 1, action 5 (1B2): backward before its forward");
  drop(no_f[1], "1B2");
  EXPECT_EQ(validate(no_f, 3, 4), "rank 1, end of schedule: stage 1 micro-batch 2 has no forward");
  Schedule no_b = s;
  drop(no_b[2], "2B3");
  EXPECT_EQ(validate(no_b, 3, 4), "rank 2, end of schedule: stage 2 micro-batch 3 has no backward (B, or I and W)");
}

TEST(Validator, RejectsBackwardBeforeForward) {
  Schedule s = one_f_one_b(3, 4);
  std::swap(s[2][0], s[2][1]);
  EXPECT_EQ(validate(s, 3, 4), "rank 2, action 0 (2B0): backward before its forward");
}

TEST(Validator, RejectsWeightGradBeforeInputGrad) {
  Schedule s = zb_h1(2, 3);
  ASSERT_EQ(to_string(s[1]), "1F0 1I0 1F1 1I1 1W0 1F2 1I2 1W1 1W2");
  std::swap(s[1][3], s[1][4]);  // 1W0 still after 1I0: fine
  EXPECT_EQ(validate(s, 2, 3), "");
  std::swap(s[1][1], s[1][3]);  // 1W0 ahead of 1I0
  EXPECT_EQ(validate(s, 2, 3),
            "rank 1, action 1 (1W0): weight-gradient backward (W) before its input-gradient backward (I)");
  Schedule no_w = zb_h1(2, 3);
  no_w[0].pop_back();
  EXPECT_EQ(validate(no_w, 2, 3),
            "rank 0, end of schedule: stage 0 micro-batch 2 has an input-gradient backward (I) but no weight-gradient "
            "backward (W)");
}

TEST(Validator, RejectsStageOnTwoRanks) {
  Schedule s = one_f_one_b(3, 4);
  // Move 1F3 (and its backward) to rank 0.
  s[0].push_back(parse_action("1F3"));
  EXPECT_EQ(validate(s, 3, 4), "rank 0, action 8 (1F3): stage 1 is on two ranks (also on rank 1)");
  EXPECT_EQ(error_of([&] { stage_ranks(s, 3); }), "rank 1, action 0 (1F0): stage 1 also runs on rank 0");
}

TEST(Validator, RejectsOtherMalformedSchedules) {
  EXPECT_EQ(validate(sched({"0F0 0B0", "1F0 1B0 1F0"}), 2, 1),
            "rank 1, action 2 (1F0): duplicate action (first at action 0)");
  EXPECT_EQ(validate(sched({"0F0 0B0", "2F0"}), 2, 1), "rank 1, action 0 (2F0): stage 2 is out of range (2 stages)");
  EXPECT_EQ(validate(sched({"0F0 0B0 0F1"}), 1, 1),
            "rank 0, action 2 (0F1): micro-batch 1 is out of range (1 micro-batches)");
  EXPECT_EQ(validate(sched({"0F0 0I0 0B0 0W0"}), 1, 1),
            "rank 0, action 2 (0B0): full backward of a micro-batch that also has a split backward (I/W)");
  EXPECT_EQ(validate(sched({"0F0 0B0", ""}), 2, 1), "end of schedule: stage 1 is on no rank");
  // Lowered: sends after their compute, receives before, every one paired.
  EXPECT_EQ(validate(sched({"0SEND_F0 0F0 0RECV_B0 0B0", "1RECV_F0 1F0 1B0 1SEND_B0"}), 2, 1),
            "rank 0, action 0 (0SEND_F0): send before its forward");
  EXPECT_EQ(validate(sched({"0F0 0SEND_F0 0RECV_B0 0B0", "1F0 1RECV_F0 1B0 1SEND_B0"}), 2, 1),
            "rank 1, action 0 (1F0): forward before its receive 1RECV_F0");
  EXPECT_EQ(validate(sched({"0F0 0RECV_B0 0B0", "1RECV_F0 1F0 1B0 1SEND_B0"}), 2, 1),
            "rank 1, action 0 (1RECV_F0): no matching 0SEND_F0 on rank 0");
  EXPECT_EQ(validate(sched({"0F0 0SEND_F0 0RECV_B0 0B0", "1RECV_F0 1F0 1B0"}), 2, 1),
            "rank 0, action 2 (0RECV_B0): no matching 1SEND_B0 on rank 1");
  EXPECT_EQ(validate(sched({"0F0 0SEND_F0 0RECV_B0 0B0", "1RECV_F0 1F0 1SEND_F0 1B0 1SEND_B0"}), 2, 1),
            "rank 1, action 2 (1SEND_F0): stage 1 has no consumer on another rank");
}

TEST(Validator, ForwardOnlySchedules) {
  Schedule fwd = sched({"0F0 0F1", "1F0 1F1"});
  ValidateOptions inference;
  inference.forward_only = true;
  EXPECT_EQ(validate(fwd, 2, 2, inference), "");
  EXPECT_EQ(validate(add_communication(fwd, 2), 2, 2, inference), "");
  EXPECT_EQ(validate(fwd, 2, 2), "rank 0, end of schedule: stage 0 micro-batch 0 has no backward (B, or I and W)");
  EXPECT_EQ(validate(gpipe(2, 2), 2, 2, inference),
            "rank 0, action 2 (0B0): backward action in a forward-only schedule");
}
