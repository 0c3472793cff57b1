// runtime/schedule/csv: schedules as CSV, one row per rank, as torch writes
// them; round trips and errors naming row and column.
#include <gtest/gtest.h>

#include "runtime/schedule/csv.h"
#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "tests/unit/runtime/schedule/test_schedules.h"

using namespace ppc::runtime::schedule;
using namespace ppc::runtime::schedule::test_schedules;

TEST(ScheduleCsv, RoundTripsComputeAndLoweredSchedules) {
  for (const Schedule& s : {interleaved_1f1b(4, 2, 8), zb_h1(3, 5), add_communication(one_f_one_b(4, 6), 4)}) {
    std::string text = write_csv(s);
    EXPECT_EQ(read_csv(text), s);
    EXPECT_EQ(write_csv(read_csv(text)), text);
  }
  EXPECT_EQ(write_csv(one_f_one_b(2, 2)), "0F0,0F1,0B0,0B1\n1F0,1B0,1F1,1B1\n");
}

TEST(ScheduleCsv, ReadsTorchStyleFiles) {
  // Python's csv.writer: "\r\n" line ends; torch writes idle steps as empty cells.
  Schedule s = read_csv("0F0,,0F1,\"0B0\", 0B1 ,\r\n,1F0,1B0,1F1,1B1\r\n\r\n2F0\r\n");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(to_string(s[0]), "0F0 0F1 0B0 0B1");
  EXPECT_EQ(to_string(s[1]), "1F0 1B0 1F1 1B1");
  EXPECT_TRUE(s[2].empty());
  EXPECT_EQ(to_string(s[3]), "2F0");
  EXPECT_TRUE(read_csv("").empty());
  EXPECT_EQ(read_csv("0F0").size(), 1u);
}

TEST(ScheduleCsv, ErrorsNameRowAndColumn) {
  EXPECT_EQ(
      error_of([] { read_csv("0F0,0B0\n1F0,1X0,1B0\n", "zb.csv"); }),
      "zb.csv:2:5: invalid action '1X0': unknown kind 'X' (expected F, B, I, W, SEND_F, RECV_F, SEND_B or RECV_B)");
  EXPECT_EQ(error_of([] { read_csv("0F0,  0F\r\n"); }),
            "<schedule>:1:7: invalid action '0F': missing micro-batch index after 'F'");
}
