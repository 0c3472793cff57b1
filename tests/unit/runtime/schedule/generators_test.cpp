// runtime/schedule/generators: GPipe, 1F1B, interleaved 1F1B, looped BFS and
// ZB-H1 written out for small cases, every one validated compiled and lowered,
// and their argument errors.
#include <gtest/gtest.h>

#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/validator.h"
#include "tests/unit/runtime/schedule/test_schedules.h"

using namespace ppc::runtime::schedule;
using namespace ppc::runtime::schedule::test_schedules;

TEST(Generators, KnownShapes) {
  EXPECT_EQ(to_string(gpipe(3, 2)[1]), "1F0 1F1 1B0 1B1");
  Schedule ofob = one_f_one_b(3, 4);
  EXPECT_EQ(to_string(ofob[0]), "0F0 0F1 0F2 0B0 0F3 0B1 0B2 0B3");
  EXPECT_EQ(to_string(ofob[1]), "1F0 1F1 1B0 1F2 1B1 1F3 1B2 1B3");
  EXPECT_EQ(to_string(ofob[2]), "2F0 2B0 2F1 2B1 2F2 2B2 2F3 2B3");
  Schedule zb = zb_h1(3, 4);
  EXPECT_EQ(to_string(zb[0]), "0F0 0F1 0F2 0I0 0W0 0F3 0I1 0W1 0I2 0W2 0I3 0W3");
  EXPECT_EQ(to_string(zb[1]), "1F0 1F1 1I0 1F2 1I1 1W0 1F3 1I2 1W1 1I3 1W2 1W3");
  EXPECT_EQ(to_string(zb[2]), "2F0 2I0 2F1 2I1 2F2 2I2 2W0 2F3 2I3 2W1 2W2 2W3");
  // Interleaved, P=2 V=2 M=4: chunks of P micro-batches alternate between stages r and r+P.
  Schedule il = interleaved_1f1b(2, 2, 4);
  EXPECT_EQ(to_string(il[0]), "0F0 0F1 2F0 2F1 0F2 2B0 0F3 2B1 2F2 0B0 2F3 0B1 2B2 2B3 0B2 0B3");
  EXPECT_EQ(to_string(il[1]), "1F0 1F1 3F0 3B0 3F1 3B1 1F2 1B0 1F3 1B1 3F2 3B2 3F3 3B3 1B2 1B3");
  EXPECT_EQ(to_string(looped_bfs(2, 2, 2)[1]), "1F0 1F1 3F0 3F1 3B0 3B1 1B0 1B1");
  // V = 1 is plain 1F1B. Written out (rank r: min(P-1-r, M) warm-up forwards, (F, B) pairs, the remaining
  // backwards), since interleaved_1f1b(P, 1, M) returns one_f_one_b(P, M) itself.
  const Schedule ofob_3_6 =
      sched({"0F0 0F1 0F2 0B0 0F3 0B1 0F4 0B2 0F5 0B3 0B4 0B5", "1F0 1F1 1B0 1F2 1B1 1F3 1B2 1F4 1B3 1F5 1B4 1B5",
             "2F0 2B0 2F1 2B1 2F2 2B2 2F3 2B3 2F4 2B4 2F5 2B5"});
  EXPECT_EQ(interleaved_1f1b(3, 1, 6), ofob_3_6);
  EXPECT_EQ(one_f_one_b(3, 6), ofob_3_6);
  // Deterministic: two calls, with other generators run in between, give ZB-H1's lists for P = 4, M = 8,
  // written out from the definition (rank r: min(P-1-r, M) warm-up forwards; then for each j, F, I(j) and,
  // from j >= r on, the oldest W not yet run; then the remaining W).
  const Schedule zb_4_8 =
      sched({"0F0 0F1 0F2 0F3 0I0 0W0 0F4 0I1 0W1 0F5 0I2 0W2 0F6 0I3 0W3 0F7 0I4 0W4 0I5 0W5 0I6 0W6 0I7 0W7",
             "1F0 1F1 1F2 1I0 1F3 1I1 1W0 1F4 1I2 1W1 1F5 1I3 1W2 1F6 1I4 1W3 1F7 1I5 1W4 1I6 1W5 1I7 1W6 1W7",
             "2F0 2F1 2I0 2F2 2I1 2F3 2I2 2W0 2F4 2I3 2W1 2F5 2I4 2W2 2F6 2I5 2W3 2F7 2I6 2W4 2I7 2W5 2W6 2W7",
             "3F0 3I0 3F1 3I1 3F2 3I2 3F3 3I3 3W0 3F4 3I4 3W1 3F5 3I5 3W2 3F6 3I6 3W3 3F7 3I7 3W4 3W5 3W6 3W7"});
  const Schedule first = zb_h1(4, 8);
  EXPECT_EQ(zb_h1(3, 5).size(), 3u);
  EXPECT_EQ(zb_v(4, 8).size(), 4u);
  const Schedule second = zb_h1(4, 8);
  EXPECT_EQ(first, zb_4_8);
  EXPECT_EQ(second, zb_4_8);
}

TEST(Generators, EveryScheduleValidatesCompiledAndLowered) {
  for (int P : {1, 2, 3, 4})
    for (int M : {1, 2, 3, 4, 5, 8}) {
      for (const auto& [name, s] : std::vector<std::pair<std::string, Schedule>>{
               {"gpipe", gpipe(P, M)}, {"1f1b", one_f_one_b(P, M)}, {"zb-h1", zb_h1(P, M)}}) {
        SCOPED_TRACE(name + " P=" + std::to_string(P) + " M=" + std::to_string(M));
        EXPECT_EQ(validate(s, P, M), "");
        Schedule low = add_communication(s, P);
        EXPECT_EQ(validate(low, P, M), "");
        EXPECT_EQ(validate(hoist_receives(low), P, M), "");
        EXPECT_EQ(strip_communication(low), s);
        EXPECT_FALSE(simulate(hoist_receives(low), P).deadlock);
      }
      for (int V : {2, 3}) {
        SCOPED_TRACE("V=" + std::to_string(V) + " P=" + std::to_string(P) + " M=" + std::to_string(M));
        EXPECT_EQ(validate(looped_bfs(P, V, M), P * V, M), "");
        if (M % P != 0) continue;
        Schedule s = interleaved_1f1b(P, V, M);
        EXPECT_EQ(validate(s, P * V, M), "");
        Schedule low = add_communication(s, P * V);
        EXPECT_EQ(validate(low, P * V, M), "");
        EXPECT_EQ(validate(hoist_receives(low, 2), P * V, M), "");
        EXPECT_FALSE(simulate(low, P * V).deadlock);
      }
    }
}

TEST(Generators, RejectBadArguments) {
  EXPECT_EQ(error_of([] { interleaved_1f1b(4, 2, 6); }),
            "interleaved 1F1B: the number of micro-batches (6) must be a multiple of the number of ranks (4)");
  EXPECT_EQ(error_of([] { one_f_one_b(0, 4); }), "1F1B: the number of ranks must be at least 1, got 0");
  EXPECT_EQ(error_of([] { zb_h1(2, 0); }), "ZB-H1: the number of micro-batches must be at least 1, got 0");
  EXPECT_EQ(error_of([] { looped_bfs(2, 0, 2); }),
            "looped BFS: the number of stages per rank must be at least 1, got 0");
}
