// runtime/schedule/action: actions in torch.distributed.pipelining's text form
// (0F3, 1RECV_B2), both ways, and the errors naming the text.
#include <gtest/gtest.h>

#include "runtime/schedule/action.h"
#include "tests/unit/runtime/schedule/test_schedules.h"

using namespace ppc::runtime::schedule;
using namespace ppc::runtime::schedule::test_schedules;

TEST(ActionText, WritesTorchPipeliningForm) {
  EXPECT_EQ(to_string(Action{Action::F, 0, 3}), "0F3");
  EXPECT_EQ(to_string(Action{Action::B, 1, 2}), "1B2");
  EXPECT_EQ(to_string(Action{Action::I, 1, 2}), "1I2");
  EXPECT_EQ(to_string(Action{Action::W, 2, 0}), "2W0");
  EXPECT_EQ(to_string(Action{Action::SEND_F, 0, 3}), "0SEND_F3");
  EXPECT_EQ(to_string(Action{Action::RECV_B, 1, 2}), "1RECV_B2");
  EXPECT_EQ(to_string(Action{Action::RECV_F, 12, 105}), "12RECV_F105");
}

TEST(ActionText, RoundTripsEveryKind) {
  for (auto k :
       {Action::F, Action::B, Action::I, Action::W, Action::SEND_F, Action::RECV_F, Action::SEND_B, Action::RECV_B})
    for (int s : {0, 3, 17})
      for (int m : {0, 9, 123}) {
        Action a{k, s, m};
        EXPECT_EQ(parse_action(to_string(a)), a) << to_string(a);
      }
}

TEST(ActionText, ParseErrorsNameTheText) {
  EXPECT_EQ(error_of([] { parse_action(""); }), "invalid action '': empty");
  EXPECT_EQ(error_of([] { parse_action("F3"); }),
            "invalid action 'F3': expected a stage index first, as in 0F3 or 1RECV_B2");
  EXPECT_EQ(error_of([] { parse_action("0X1"); }),
            "invalid action '0X1': unknown kind 'X' (expected F, B, I, W, SEND_F, RECV_F, SEND_B or RECV_B)");
  EXPECT_EQ(error_of([] { parse_action("0F"); }), "invalid action '0F': missing micro-batch index after 'F'");
  EXPECT_EQ(error_of([] { parse_action("03"); }),
            "invalid action '03': missing kind after the stage index (F, B, I, W, SEND_F, RECV_F, SEND_B or RECV_B)");
  EXPECT_EQ(error_of([] { parse_action("0F1x"); }),
            "invalid action '0F1x': unexpected 'x' after the micro-batch index");
  EXPECT_EQ(error_of([] { parse_action(" 0F1"); }),
            "invalid action ' 0F1': expected a stage index first, as in 0F3 or 1RECV_B2");
  EXPECT_EQ(error_of([] { parse_action("0f1"); }).substr(0, 40), "invalid action '0f1': unknown kind 'f' (");
  EXPECT_EQ(error_of([] { parse_action("1UNSHARD0"); }),
            "invalid action '1UNSHARD0': kind 'UNSHARD' is not supported by pprun");
  EXPECT_EQ(error_of([] { parse_action("99999999999F0"); }),
            "invalid action '99999999999F0': stage index is too large");
}
