// runtime/schedule/generators: GPipe, 1F1B, interleaved 1F1B, looped BFS,
// ZB-H1, interleaved ZB and DualPipeV written out for small cases, every one
// validated compiled and lowered, and their argument errors (also as
// make_compute_schedule reports them).
#include <gtest/gtest.h>

#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/registry.h"
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
  EXPECT_EQ(error_of([] { interleaved_zb(4, 2, 9); }),
            "interleaved ZB: the number of micro-batches (9) must be a multiple of the number of rounds "
            "max(1, M / P) = 2");
  EXPECT_EQ(error_of([] { interleaved_zb(2, 0, 4); }),
            "interleaved ZB: the number of stages per rank must be at least 1, got 0");
  EXPECT_EQ(error_of([] { dualpipev(4, 7); }),
            "DualPipeV: the number of micro-batches (7) must be at least the number of stages (8)");
  EXPECT_EQ(error_of([] { dualpipev(0, 7); }), "DualPipeV: the number of ranks must be at least 1, got 0");
}

TEST(Generators, RegistryNamesAndRefusesBadCombinations) {
  auto make = [](const std::string& name, int P, int V, int M) { return make_compute_schedule(name, P, V, M, false); };
  EXPECT_EQ(make("interleaved-zb", 4, 2, 8), interleaved_zb(4, 2, 8));
  EXPECT_EQ(make("interleaved-zb", 4, 2, 10), interleaved_zb(4, 2, 10));
  EXPECT_EQ(make("interleaved-zb", 4, 3, 3), interleaved_zb(4, 3, 3));
  EXPECT_EQ(make("dualpipev", 2, 2, 4), dualpipev(2, 4));
  EXPECT_EQ(to_string(make_compute_schedule("dualpipev", 2, 2, 4, true)[1]), "1F0 2F0 1F1 2F1 1F2 2F2 1F3 2F3");
  const auto& names = schedule_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "interleaved-zb"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "dualpipev"), names.end());
  EXPECT_EQ(error_of([&] { make("interleaved-zb", 4, 2, 9); }),
            "schedule 'interleaved-zb' needs the micro-batch count (9) to be a multiple of its rounds, "
            "max(1, micro-batches / ranks) = 2 (use a multiple of the number of ranks (4), or fewer micro-batches "
            "than ranks)");
  EXPECT_EQ(error_of([&] { make("dualpipev", 4, 1, 8); }),
            "schedule 'dualpipev' runs two stages per rank (a V: stage s and 2P-1-s on rank s), but each rank holds 1 "
            "(use half as many ranks as stages)");
  EXPECT_EQ(error_of([&] { make("dualpipev", 4, 2, 6); }),
            "schedule 'dualpipev' needs at least as many micro-batches as stages (8), got 6 (raise --chunks)");
}

namespace {

// Every (stage, micro-batch) of `s` has exactly one F and either one B or one
// I and one W; "" when so, else the first pair that does not.
std::string one_of_each(const Schedule& s, int num_stages, int M) {
  for (int st = 0; st < num_stages; ++st)
    for (int m = 0; m < M; ++m) {
      int n[4] = {0, 0, 0, 0};  // F, B, I, W
      for (const auto& rank : s)
        for (const Action& a : rank)
          if (a.is_compute() && a.stage == st && a.microbatch == m) ++n[a.kind];
      if (n[0] != 1 || !((n[1] == 1 && n[2] == 0 && n[3] == 0) || (n[1] == 0 && n[2] == 1 && n[3] == 1)))
        return "stage " + std::to_string(st) + " micro-batch " + std::to_string(m);
    }
  return "";
}

int count(const Schedule& s, Action::Kind kind) {
  int n = 0;
  for (const auto& rank : s)
    for (const Action& a : rank) n += a.kind == kind;
  return n;
}

// Validated compute-only, lowered and hoisted; no deadlock either way.
void expect_runs(const Schedule& s, int num_stages, int M) {
  EXPECT_EQ(validate(s, num_stages, M), "");
  EXPECT_EQ(one_of_each(s, num_stages, M), "");
  Schedule low = add_communication(s, num_stages);
  EXPECT_EQ(validate(low, num_stages, M), "");
  EXPECT_EQ(validate(hoist_receives(low), num_stages, M), "");
  EXPECT_EQ(strip_communication(low), s);
  SimResult r = simulate(s, num_stages, costs(1, 2, 1, 1));
  EXPECT_FALSE(r.deadlock) << r.deadlock_message();
  SimResult h = simulate(hoist_receives(low), num_stages, costs(1, 2, 1, 1));
  EXPECT_FALSE(h.deadlock) << h.deadlock_message();
  EXPECT_EQ(h.makespan, r.makespan);
}

}  // namespace

TEST(Generators, InterleavedZeroBubbleWrittenOut) {
  // P = 2, V = 2, M = 4: rounds of g = 2 micro-batches; rank r's forwards go
  // 2 on its first stage, 2 on its second, ...; its I's 2 on the second, 2
  // on the first, ...; warm-up (V-1)g + P-1-r = 3 - r forwards; then F, I
  // and (from the r-th pair on) the W of the oldest I without one.
  const Schedule want =
      sched({"0F0 0F1 2F0 2F1 2I0 2W0 0F2 2I1 2W1 0F3 0I0 0W0 2F2 0I1 0W1 2F3 2I2 2W2 "
             "2I3 2W3 0I2 0W2 0I3 0W3",
             "1F0 1F1 3F0 3I0 3F1 3I1 3W0 1F2 1I0 3W1 1F3 1I1 1W0 3F2 3I2 1W1 3F3 3I3 3W2 "
             "1I2 3W3 1I3 1W2 1W3"});
  EXPECT_EQ(interleaved_zb(2, 2, 4), want);
  // P = 3, V = 2, M = 2 (fewer micro-batches than ranks: one round of g = 2).
  // Rank 2: warm-up g = 2 forwards of stage 2, then F/I pairs on stage 5,
  // then the I's of stage 2, with a W from the third I (j >= r = 2) on.
  EXPECT_EQ(to_string(interleaved_zb(3, 2, 2)[2]), "2F0 2F1 5F0 5I0 5F1 5I1 2I0 5W0 2I1 5W1 2W0 2W1");
  // Rank 0: warm-up min(2 + 2, 4) = 4: every forward first.
  EXPECT_EQ(to_string(interleaved_zb(3, 2, 2)[0]), "0F0 0F1 3F0 3F1 3I0 3W0 3I1 3W1 0I0 0W0 0I1 0W1");
  // V = 1 is ZB-H1.
  for (auto [P, M] : {std::pair{3, 4}, {4, 8}, {2, 6}}) EXPECT_EQ(interleaved_zb(P, 1, M), zb_h1(P, M));
}

TEST(Generators, DualPipeVWrittenOut) {
  // P = 2, M = 4. Rank 0 holds stages a = 0, b = 3: 2(P-1) forwards of a;
  // one (F a, F b); one (I b, W b, F b); M-2P+1 = 1 round of (F a, B b, F b,
  // B a); one (B b, F b, B a); backwards of b then a, the second split; one
  // (queued W, I a); the last queued W.
  // Rank 1 holds stages a = 1, b = 2: no forwards alone; two (F a, F b);
  // two rounds of (F a, B b, F b, B a); two (backward of b, of a), the second
  // round split; the two queued W.
  const Schedule want = sched({"0F0 0F1 0F2 3F0 3I0 3W0 3F1 0F3 3B1 3F2 0B0 3B2 3F3 0B1 3B3 0I2 0W2 0I3 0W3",
                               "1F0 2F0 1F1 2F1 1F2 2B0 2F2 1B0 1F3 2B1 2F3 1B1 2B2 1B2 2I3 1I3 2W3 1W3"});
  EXPECT_EQ(dualpipev(2, 4), want);
  // P = 3, M = 6, rank 1 (stages 1 and 4): 2 forwards of 1; two (F1, F4);
  // one (I4, W4, F4); M-2P+2 = 2 rounds of (F1, B4, F4, B1); one (B4, F4,
  // B1); two (backward of 4, of 1), split from the third of the four on (r
  // odd: the second round); one (queued W, I1); the two W left.
  EXPECT_EQ(to_string(dualpipev(3, 6)[1]),
            "1F0 1F1 1F2 4F0 1F3 4F1 4I0 4W0 4F2 1F4 4B1 4F3 1B0 1F5 4B2 4F4 1B1 4B3 4F5 1B2 "
            "4B4 1B3 4I5 1I4 4W5 1I5 1W4 1W5");
  for (int s = 0; s < 6; ++s) EXPECT_EQ(stage_ranks(dualpipev(3, 6), 6)[s], zb_v_rank(3, s));
}

TEST(Generators, InterleavedZeroBubbleAndDualPipeVRunEverywhere) {
  for (int P : {1, 2, 3, 4, 5})
    for (int M = 1; M <= 16; ++M) {
      for (int V : {1, 2, 3, 4}) {
        if (M % std::max(1, M / P) != 0) {
          EXPECT_NE(error_of([&] { interleaved_zb(P, V, M); }), "");
          continue;
        }
        SCOPED_TRACE("interleaved-zb P=" + std::to_string(P) + " V=" + std::to_string(V) + " M=" + std::to_string(M));
        Schedule s = interleaved_zb(P, V, M);
        for (int st = 0; st < P * V; ++st) EXPECT_EQ(stage_ranks(s, P * V)[st], st % P);
        expect_runs(s, P * V, M);
        EXPECT_EQ(count(s, Action::B), 0);
        // In flight (F done, W not): at most (V-1)g + P per rank, g = M / max(1, M / P).
        const int g = M / std::max(1, M / P);
        SimResult r = simulate(s, P * V, costs(1, 2, 1, 1));
        for (int k = 0; k < P; ++k) EXPECT_EQ(r.peak_in_flight[k], std::min((V - 1) * g + P, V * M)) << "rank " << k;
      }
      if (M < 2 * P) {
        EXPECT_NE(error_of([&] { dualpipev(P, M); }), "");
        continue;
      }
      SCOPED_TRACE("dualpipev P=" + std::to_string(P) + " M=" + std::to_string(M));
      Schedule d = dualpipev(P, M);
      for (int st = 0; st < 2 * P; ++st) EXPECT_EQ(stage_ranks(d, 2 * P)[st], zb_v_rank(P, st));
      expect_runs(d, 2 * P, M);
      // Split where DualPipeV splits: per rank r, P-1-r (step 3) + r+1 (step 6) + P-1-r (step 7).
      EXPECT_EQ(count(d, Action::I), P * (2 * P - 1) - P * (P - 1) / 2);
      // Stage activations (half of a 1F1B stage's): 2P after the warm-up, one more while a forward and a
      // backward overlap.
      SimResult r = simulate(d, 2 * P, costs(1, 2, 1, 1));
      for (int k = 0; k < P; ++k) EXPECT_EQ(r.peak_in_flight[k], 2 * P + 1) << "rank " << k;
    }
}
