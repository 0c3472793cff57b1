// runtime/schedule: schedules as data. Text and CSV forms, generators checked
// by the validator, lowering, rejection of malformed schedules, and the
// simulator's numbers against the known closed forms.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include "runtime/schedule/action.h"
#include "runtime/schedule/csv.h"
#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/stage_graph.h"
#include "runtime/schedule/validator.h"
#include "schemas/error.h"

using namespace ppc::runtime::schedule;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ppc::Error& e) {
    return e.what();
  }
  return "";
}

// Builds a schedule from text, one string per rank: {"0F0 0B0", "1F0 1B0"}.
Schedule sched(const std::vector<std::string>& ranks) {
  Schedule s;
  for (const std::string& r : ranks) {
    std::istringstream in(r);
    RankSchedule rs;
    for (std::string tok; in >> tok;) rs.push_back(parse_action(tok));
    s.push_back(rs);
  }
  return s;
}

SimOptions costs(double f, double b, double i = 1, double w = 1) {
  SimOptions o;
  o.costs = {StageCost{f, b, i, w}};
  return o;
}

size_t count_kind(const Schedule& s, Action::Kind k) {
  size_t n = 0;
  for (const auto& r : s) n += std::count_if(r.begin(), r.end(), [&](const Action& a) { return a.kind == k; });
  return n;
}

double idle(const SimResult& r, int rank) { return r.makespan - r.busy[rank]; }

}  // namespace

// --- text form ---------------------------------------------------------------

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
  for (auto k : {Action::F, Action::B, Action::I, Action::W, Action::SEND_F, Action::RECV_F, Action::SEND_B,
                 Action::RECV_B})
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
  EXPECT_EQ(error_of([] { parse_action("0F1x"); }), "invalid action '0F1x': unexpected 'x' after the micro-batch index");
  EXPECT_EQ(error_of([] { parse_action(" 0F1"); }),
            "invalid action ' 0F1': expected a stage index first, as in 0F3 or 1RECV_B2");
  EXPECT_EQ(error_of([] { parse_action("0f1"); }).substr(0, 40), "invalid action '0f1': unknown kind 'f' (");
  EXPECT_EQ(error_of([] { parse_action("1UNSHARD0"); }),
            "invalid action '1UNSHARD0': kind 'UNSHARD' is not supported by pprun");
  EXPECT_EQ(error_of([] { parse_action("99999999999F0"); }), "invalid action '99999999999F0': stage index is too large");
}

// --- CSV -----------------------------------------------------------------------

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
  EXPECT_EQ(error_of([] { read_csv("0F0,0B0\n1F0,1X0,1B0\n", "zb.csv"); }),
            "zb.csv:2:5: invalid action '1X0': unknown kind 'X' (expected F, B, I, W, SEND_F, RECV_F, SEND_B or RECV_B)");
  EXPECT_EQ(error_of([] { read_csv("0F0,  0F\r\n"); }),
            "<schedule>:1:7: invalid action '0F': missing micro-batch index after 'F'");
}

// --- generators ------------------------------------------------------------------

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
  const Schedule ofob_3_6 = sched({"0F0 0F1 0F2 0B0 0F3 0B1 0F4 0B2 0F5 0B3 0B4 0B5",
                                   "1F0 1F1 1B0 1F2 1B1 1F3 1B2 1F4 1B3 1F5 1B4 1B5",
                                   "2F0 2B0 2F1 2B1 2F2 2B2 2F3 2B3 2F4 2B4 2F5 2B5"});
  EXPECT_EQ(interleaved_1f1b(3, 1, 6), ofob_3_6);
  EXPECT_EQ(one_f_one_b(3, 6), ofob_3_6);
  // Deterministic: two calls, with other generators run in between, give ZB-H1's lists for P = 4, M = 8,
  // written out from the definition (rank r: min(P-1-r, M) warm-up forwards; then for each j, F, I(j) and,
  // from j >= r on, the oldest W not yet run; then the remaining W).
  const Schedule zb_4_8 = sched({
      "0F0 0F1 0F2 0F3 0I0 0W0 0F4 0I1 0W1 0F5 0I2 0W2 0F6 0I3 0W3 0F7 0I4 0W4 0I5 0W5 0I6 0W6 0I7 0W7",
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
  EXPECT_EQ(error_of([] { looped_bfs(2, 0, 2); }), "looped BFS: the number of stages per rank must be at least 1, got 0");
}

// --- lowering ----------------------------------------------------------------------

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
  EXPECT_EQ(to_string(h[1]),
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
  EXPECT_EQ(error_of([] { StageGraph::from_edges(3, {{2, 1}}); }),
            "edge 2 -> 1: edges must go from an earlier stage to a later one");
}

// --- validator -------------------------------------------------------------------

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
  EXPECT_EQ(validate(sched({"0F0 0B0", "1F0 1B0 1F0"}), 2, 1), "rank 1, action 2 (1F0): duplicate action (first at action 0)");
  EXPECT_EQ(validate(sched({"0F0 0B0", "2F0"}), 2, 1), "rank 1, action 0 (2F0): stage 2 is out of range (2 stages)");
  EXPECT_EQ(validate(sched({"0F0 0B0 0F1"}), 1, 1), "rank 0, action 2 (0F1): micro-batch 1 is out of range (1 micro-batches)");
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
  EXPECT_EQ(validate(gpipe(2, 2), 2, 2, inference), "rank 0, action 2 (0B0): backward action in a forward-only schedule");
}

// --- simulator ------------------------------------------------------------------

TEST(StageCost, FilledSplitsAFullBackwardOrSumsASplitOne) {
  StageCost full = StageCost{1, 3, 0, 0}.filled();  // measured without split backward
  EXPECT_DOUBLE_EQ(full.i, 1.5);
  EXPECT_DOUBLE_EQ(full.w, 1.5);
  EXPECT_DOUBLE_EQ(full.b, 3);
  StageCost split = StageCost{1, 0, 1, 2}.filled();  // only I and W measured
  EXPECT_DOUBLE_EQ(split.b, 3);
  EXPECT_DOUBLE_EQ(split.i, 1);
  EXPECT_DOUBLE_EQ(split.w, 2);
  StageCost all = StageCost{1, 4, 1, 2}.filled();  // everything measured: kept
  EXPECT_DOUBLE_EQ(all.b, 4);
  EXPECT_DOUBLE_EQ(all.i, 1);
}

TEST(Simulator, AnEdgeIsOneMessagePerMicroBatchEachWay) {
  // Stage 0 sends stage 1 two tensors: one edge, and (packed by pprun) one
  // message per micro-batch and direction.
  StageGraph two = StageGraph::from_edges(2, {{0, 1}, {0, 1}});
  EXPECT_EQ(two.producers[1], (std::vector<int>{0}));
  EXPECT_EQ(two.consumers[0], (std::vector<int>{1}));
  // GPipe, one micro-batch, F = B = 1: F0, the activations, F1, B1, the
  // gradients, B0; each crossing takes comm, compute-only and lowered alike.
  // A 3-stage chain with a skip 0 -> 2 pays comm on both of stage 2's inputs,
  // but they travel at once.
  StageGraph skip = StageGraph::from_edges(3, {{0, 1}, {1, 2}, {0, 2}, {0, 2}});
  for (bool lowered : {false, true}) {
    SCOPED_TRACE(lowered ? "lowered" : "compute-only");
    Schedule g = gpipe(2, 1), g3 = gpipe(3, 1);
    Schedule one = lowered ? add_communication(g, 2) : g, both = lowered ? add_communication(g, 2, two) : g;
    Schedule three = lowered ? add_communication(g3, 3, skip) : g3;
    SimOptions o = costs(1, 1);
    o.comm = 0.5;
    EXPECT_DOUBLE_EQ(simulate(one, 2, o).makespan, 4 + 2 * 0.5);
    EXPECT_DOUBLE_EQ(simulate(both, 2, two, o).makespan, 4 + 2 * 0.5);
    EXPECT_DOUBLE_EQ(simulate(three, 3, skip, o).makespan, 6 + 4 * 0.5);
  }
}

TEST(Simulator, AMessageTakesCommPlusItsBytesAtTheLinkRate) {
  // Two tensors on edge 0 -> 1 (merged: their bytes add up), one of them
  // without a gradient: 100 bytes forward, 40 back.
  StageGraph two = StageGraph::from_edges(2, {{0, 1, 60, 40}, {0, 1, 40, 0}});
  EXPECT_EQ(two.message_bytes(0, 1, false), 100);
  EXPECT_EQ(two.message_bytes(0, 1, true), 40);
  EXPECT_EQ(two.message_bytes(1, 0, false), 0);
  StageGraph chain = StageGraph::chain(2);  // no bytes
  for (bool lowered : {false, true}) {
    SCOPED_TRACE(lowered ? "lowered" : "compute-only");
    Schedule g = gpipe(2, 1);
    Schedule s = lowered ? add_communication(g, 2, two) : g;
    SimOptions o = costs(1, 1);
    o.comm = 0.5;
    // Without a rate, bytes take no time.
    EXPECT_DOUBLE_EQ(simulate(s, 2, two, o).makespan, 4 + 2 * 0.5);
    // F0, 0.5 + 100 / 50, F1, B1, 0.5 + 40 / 50, B0.
    o.bytes_per_ms = 50;
    EXPECT_DOUBLE_EQ(simulate(s, 2, two, o).makespan, 4 + (0.5 + 2) + (0.5 + 0.8));
    EXPECT_DOUBLE_EQ(simulate(s, 2, chain, o).makespan, 4 + 2 * 0.5);
    // A blocking receive waits for the same arrival.
    if (lowered) {
      o.blocking_recv = true;
      EXPECT_DOUBLE_EQ(simulate(s, 2, two, o).makespan, 4 + (0.5 + 2) + (0.5 + 0.8));
    }
  }
  EXPECT_EQ(error_of([] { StageGraph::from_edges(2, {{0, 1, -1, 0}}); }), "edge 0 -> 1: bytes must be 0 or more");
}

TEST(Simulator, AMessageTakesItsTimeAtBothEndsRanks) {
  // GPipe, one micro-batch, F = B = 1, 0.5 in flight per message, and 0.25
  // of rank time per message at each end: a chain's middle stage sends and
  // receives two messages per action, its ends one.
  for (bool lowered : {false, true}) {
    SCOPED_TRACE(lowered ? "lowered" : "compute-only");
    SimOptions o = costs(1, 1);
    o.comm = 0.5;
    o.message_cpu = 0.25;
    Schedule two = lowered ? add_communication(gpipe(2, 1), 2) : gpipe(2, 1);
    Schedule three = lowered ? add_communication(gpipe(3, 1), 3) : gpipe(3, 1);
    EXPECT_DOUBLE_EQ(simulate(two, 2, o).makespan, 4 * 1.25 + 2 * 0.5);
    EXPECT_DOUBLE_EQ(simulate(three, 3, o).makespan, 6 + 8 * 0.25 + 4 * 0.5);
    // Busy time counts it: it is the rank's.
    EXPECT_DOUBLE_EQ(simulate(two, 2, o).busy[0], 2 * 1.25);
  }
  // Two stages on one rank exchange no messages: no rank time.
  Schedule one_rank = {{Action{Action::F, 0, 0}, Action{Action::F, 1, 0}, Action{Action::B, 1, 0}, Action{Action::B, 0, 0}}};
  SimOptions o = costs(1, 1);
  o.message_cpu = 0.25;
  EXPECT_DOUBLE_EQ(simulate(one_rank, 2, o).makespan, 4);
}

TEST(Simulator, AMessagesBytesTakeRankTimeAtBothEndsAtTheirRate) {
  // 3 stages, edges 0 -> 1 (100 bytes, 40 back) and 0 -> 2 (a skip: 60,
  // 20) and 1 -> 2 (80, 80): at 20 bytes per unit, each action pays its
  // messages' bytes, in and out, forward activations and backward gradients.
  StageGraph g = StageGraph::from_edges(3, {{0, 1, 100, 40}, {0, 2, 60, 20}, {1, 2, 80, 80}});
  for (bool lowered : {false, true}) {
    SCOPED_TRACE(lowered ? "lowered" : "compute-only");
    Schedule s = lowered ? add_communication(gpipe(3, 1), 3, g) : gpipe(3, 1);
    SimOptions o = costs(1, 1);
    EXPECT_DOUBLE_EQ(simulate(s, 3, g, o).makespan, 6);  // no rate: free
    o.message_cpu_bytes_per_ms = 20;
    SimResult r = simulate(s, 3, g, o);
    // F: stage 0 sends 160, stage 1 gets 100 and sends 80, stage 2 gets 140;
    // B: stage 2 sends 100, stage 1 gets 80 and sends 40, stage 0 gets 60.
    EXPECT_DOUBLE_EQ(r.makespan, 6 + (160 + 180 + 140 + 100 + 120 + 60) / 20.0);
    EXPECT_DOUBLE_EQ(r.busy[1], 2 + (180 + 120) / 20.0);
    // With a per-message time besides: both.
    o.message_cpu = 0.5;
    EXPECT_DOUBLE_EQ(simulate(s, 3, g, o).makespan, 6 + 38 + 6 * 2 * 0.5);  // every stage has 2 peers
  }
  // Stages on one rank exchange no messages: no rank time.
  Schedule one_rank = {{Action{Action::F, 0, 0}, Action{Action::F, 1, 0}, Action{Action::B, 1, 0}, Action{Action::B, 0, 0}}};
  SimOptions o = costs(1, 1);
  o.message_cpu_bytes_per_ms = 1;
  EXPECT_DOUBLE_EQ(simulate(one_rank, 2, StageGraph::from_edges(2, {{0, 1, 100, 100}}), o).makespan, 4);
}

TEST(Simulator, SharedCoresAtLeastOnePerRankChangeNothing) {
  // The event-by-event run with a core per rank (or more) is the rank-by-rank
  // one: every schedule, compute-only and lowered, messages priced every way.
  auto same = [](const SimResult& a, const SimResult& b) {
    ASSERT_EQ(a.deadlock, b.deadlock);
    EXPECT_NEAR(a.makespan, b.makespan, 1e-9 * (1 + b.makespan));
    EXPECT_EQ(a.peak_in_flight, b.peak_in_flight);
    ASSERT_EQ(a.timeline.size(), b.timeline.size());
    for (size_t r = 0; r < a.timeline.size(); ++r) {
      EXPECT_NEAR(a.busy[r], b.busy[r], 1e-9 * (1 + b.busy[r]));
      ASSERT_EQ(a.timeline[r].size(), b.timeline[r].size()) << "rank " << r;
      for (size_t k = 0; k < a.timeline[r].size(); ++k) {
        EXPECT_EQ(to_string(a.timeline[r][k].action), to_string(b.timeline[r][k].action));
        EXPECT_NEAR(a.timeline[r][k].start, b.timeline[r][k].start, 1e-9 * (1 + b.makespan));
        EXPECT_NEAR(a.timeline[r][k].end, b.timeline[r][k].end, 1e-9 * (1 + b.makespan));
      }
    }
  };
  const int P = 3, M = 5;
  const std::vector<std::pair<Schedule, int>> all = {
      {gpipe(P, M), P}, {one_f_one_b(P, M), P}, {interleaved_1f1b(P, 2, 6), 2 * P}, {zb_h1(P, M), P}, {zb_v(P, 6), 2 * P}};
  for (const auto& [compute, stages] : all)
    for (int variant = 0; variant < 4; ++variant) {
      SCOPED_TRACE("variant " + std::to_string(variant));
      // Compute-only; lowered; receives hoisted; lowered with blocking receives.
      Schedule s = variant == 0 ? compute : variant == 2 ? hoist_receives(add_communication(compute, stages))
                                                         : add_communication(compute, stages);
      SimOptions o;
      for (int st = 0; st < stages; ++st) o.costs.push_back(StageCost{1.0 + 0.37 * st, 2.1 + 0.5 * (st % 2), 1.2, 0.9});
      o.comm = variant >= 2 ? 0.3 : 0.1;
      o.message_cpu = variant == 3 ? 0.15 : 0;
      o.blocking_recv = variant == 3;
      const SimResult own = simulate(s, stages, o);
      ASSERT_FALSE(own.deadlock) << own.deadlock_message();
      for (double cores : {double(P), 64.0}) {
        o.cores = cores;
        same(simulate(s, stages, o), own);
      }
      o.cores = 0;
    }
  // A deadlock reads the same.
  SimOptions blocking = costs(1, 1);
  blocking.blocking_recv = true;
  Schedule dead = sched({"0RECV_B0 0F0 0SEND_F0 0B0", "1RECV_F0 1F0 1B0 1SEND_B0"});
  const std::string want = simulate(dead, 2, blocking).deadlock_message();
  blocking.cores = 2;
  EXPECT_EQ(simulate(dead, 2, blocking).deadlock_message(), want);
  EXPECT_NE(want, "");
}

TEST(Simulator, RanksSharingCoresProgressAtCoresOverComputingRanks) {
  // GPipe, 2 ranks, 2 micro-batches, F = 1, B = 2, on one core. Rank 0's
  // 0F1 and rank 1's 1F0 run together from 1 at half speed (to 3); 1F1
  // alone (3-4); 1B0 alone (4-6); 0B0 and 1B1 together from 6 (to 10); 0B1
  // alone (10-12). Every unit of work is done one at a time: 12 = 2 * (2F + 2B).
  SimOptions o = costs(1, 2);
  o.cores = 1;
  SimResult r = simulate(gpipe(2, 2), 2, o);
  ASSERT_FALSE(r.deadlock);
  EXPECT_DOUBLE_EQ(r.makespan, 12);
  auto at = [&](int rank, const std::string& action) {
    for (const TimedAction& t : r.timeline[rank])
      if (to_string(t.action) == action) return std::pair{t.start, t.end};
    return std::pair{-1.0, -1.0};
  };
  EXPECT_EQ(at(0, "0F1"), (std::pair{1.0, 3.0}));
  EXPECT_EQ(at(1, "1F0"), (std::pair{1.0, 3.0}));
  EXPECT_EQ(at(1, "1F1"), (std::pair{3.0, 4.0}));
  EXPECT_EQ(at(0, "0B0"), (std::pair{6.0, 10.0}));
  EXPECT_EQ(at(1, "1B1"), (std::pair{6.0, 10.0}));
  EXPECT_EQ(at(0, "0B1"), (std::pair{10.0, 12.0}));
  // Busy is wall time: the shared stretches count in full.
  EXPECT_DOUBLE_EQ(r.busy[0], 1 + 2 + 4 + 2);
  // With a core each it is the 9 of the closed form; with 1.5 cores two
  // computing ranks run at 3/4.
  o.cores = 0;
  EXPECT_DOUBLE_EQ(simulate(gpipe(2, 2), 2, o).makespan, 9);
  o.cores = 1.5;
  SimResult h = simulate(gpipe(2, 2), 2, o);
  // 0F0 0-1; 0F1 || 1F0 1-7/3; 1F1 7/3-10/3; 1B0 -16/3; 0B0 || 1B1 -8; 0B1 -10.
  EXPECT_DOUBLE_EQ(h.makespan, 10);
  // Message rank time is work too: the 0.25 per message adds to each
  // action that sends or receives one.
  o.cores = 1;
  o.message_cpu = 0.25;
  EXPECT_DOUBLE_EQ(simulate(gpipe(2, 2), 2, o).makespan, 12 + 8 * 0.25);
}

TEST(Simulator, ABlockingReceiveWaitsWithoutACore) {
  // Lowered GPipe, one micro-batch, 5 in flight per message, blocking
  // receives, one core for two ranks: rank 1 waits in 1RECV_F0 while rank 0
  // computes 0F0 at full speed, and the ranks never compute at once.
  SimOptions o = costs(1, 2);
  o.comm = 5;
  o.blocking_recv = true;
  o.cores = 1;
  SimResult r = simulate(add_communication(gpipe(2, 1), 2), 2, o);
  ASSERT_FALSE(r.deadlock) << r.deadlock_message();
  EXPECT_DOUBLE_EQ(r.makespan, 1 + 5 + 1 + 2 + 5 + 2);
  // Over any schedule and costs, sharing cores costs at least the total work
  // over the cores, and never beats a core per rank.
  for (double cores : {1.0, 1.5, 2.0}) {
    SimOptions c = costs(1.3, 2.2);
    SimResult own = simulate(one_f_one_b(3, 6), 3, c);
    c.cores = cores;
    SimResult shared = simulate(one_f_one_b(3, 6), 3, c);
    EXPECT_GE(shared.makespan + 1e-9, own.makespan);
    EXPECT_GE(shared.makespan + 1e-9, 3 * 6 * (1.3 + 2.2) / cores);
  }
}

TEST(Simulator, GPipeAndOneFOneBMatchTheClosedForms) {
  for (auto [P, M] : {std::pair{2, 4}, {3, 5}, {4, 8}, {4, 4}, {5, 16}}) {
    SCOPED_TRACE("P=" + std::to_string(P) + " M=" + std::to_string(M));
    const double want_bubble = double(P - 1) / (M + P - 1);
    for (bool lowered : {false, true}) {
      Schedule g = gpipe(P, M), o = one_f_one_b(P, M);
      if (lowered) g = add_communication(g, P), o = add_communication(o, P);
      SimResult rg = simulate(g, P, costs(1, 1)), ro = simulate(o, P, costs(1, 1));
      ASSERT_FALSE(rg.deadlock || ro.deadlock);
      EXPECT_EQ(rg.makespan, (M + P - 1) * 2.0);
      EXPECT_EQ(ro.makespan, (M + P - 1) * 2.0);
      EXPECT_DOUBLE_EQ(rg.bubble_fraction, want_bubble);
      EXPECT_DOUBLE_EQ(ro.bubble_fraction, want_bubble);
      EXPECT_EQ(rg.peak_in_flight[0], M);
      EXPECT_EQ(ro.peak_in_flight[0], P);
      for (int r = 0; r < P; ++r) EXPECT_EQ(ro.peak_in_flight[r], P - r);
    }
  }
}

TEST(Simulator, ZbH1IdlesOneThirdOfOneFOneB) {
  // F = I = W = 1, so 1F1B's full backward B = I + W = 2.
  const int P = 4, M = 8;
  SimResult o = simulate(one_f_one_b(P, M), P, costs(1, 2));
  SimResult z = simulate(zb_h1(P, M), P, costs(1, 2, 1, 1));
  ASSERT_FALSE(o.deadlock || z.deadlock);
  EXPECT_EQ(o.makespan, 33);  // (M+P-1)(F+B)
  EXPECT_EQ(z.makespan, 27);  // 3M + (P-1)
  EXPECT_DOUBLE_EQ(o.bubble_fraction, 3.0 / 11);  // (P-1)/(M+P-1)
  EXPECT_DOUBLE_EQ(z.bubble_fraction, 1.0 / 9);   // (P-1)/(3M+P-1)
  for (int r = 0; r < P; ++r) {
    EXPECT_EQ(idle(o, r), 9);  // (P-1)(F+B)
    EXPECT_EQ(idle(z, r), 3);  // (P-1)(F+I-W): exactly one third
    EXPECT_EQ(z.peak_in_flight[r], P);  // never above 1F1B's peak
  }
  for (auto [p, m] : {std::pair{2, 2}, {2, 8}, {3, 4}, {3, 8}, {4, 4}, {4, 16}}) {
    SimResult zz = simulate(zb_h1(p, m), p, costs(1, 2, 1, 1));
    EXPECT_EQ(zz.makespan, 3.0 * m + p - 1) << "P=" << p << " M=" << m;
    EXPECT_EQ(*std::max_element(zz.peak_in_flight.begin(), zz.peak_in_flight.end()), p);
  }
}

TEST(Simulator, ZbVIsValidAndNearlyBubbleFree) {
  // Stage cost F = I = W = 1 for each of the 2P half-size stages (a 1F1B
  // stage costs F = 2, B = 4 in these units).
  for (auto [p, m] : {std::pair{2, 2}, {2, 8}, {3, 6}, {4, 8}, {4, 16}}) {
    SCOPED_TRACE("P=" + std::to_string(p) + " M=" + std::to_string(m));
    Schedule z = zb_v(p, m);
    for (int s = 0; s < 2 * p; ++s) EXPECT_EQ(stage_ranks(z, 2 * p)[s], zb_v_rank(p, s));
    EXPECT_EQ(validate(z, 2 * p, m), "");
    EXPECT_EQ(validate(add_communication(z, 2 * p), 2 * p, m), "");
    SimResult r = simulate(z, 2 * p, costs(1, 2, 1, 1));
    ASSERT_FALSE(r.deadlock) << r.deadlock_message();
    SimResult o = simulate(one_f_one_b(p, m), p, costs(2, 4));
    for (int k = 0; k < p; ++k) EXPECT_LE(r.peak_in_flight[k], 2 * p);  // 1F1B's memory
    EXPECT_LT(r.bubble_fraction, o.bubble_fraction);
    SimResult lowered = simulate(hoist_receives(add_communication(z, 2 * p)), 2 * p, costs(1, 2, 1, 1));
    EXPECT_FALSE(lowered.deadlock) << lowered.deadlock_message();
    EXPECT_EQ(lowered.makespan, r.makespan);
  }
  // P = 4, M = 8: 6 * 8 = 48 units of work per rank.
  SimResult r = simulate(zb_v(4, 8), 8, costs(1, 2, 1, 1));
  EXPECT_LE(r.makespan, 48 + 4);
  EXPECT_LT(r.bubble_fraction, simulate(zb_h1(4, 8), 4, costs(2, 4, 2, 2)).bubble_fraction);
}

TEST(Simulator, InterleavedHasASmallerBubbleThanOneFOneB) {
  // Per-stage costs F = B = 1; the fractions do not depend on the scale.
  SimResult o = simulate(one_f_one_b(4, 8), 4, costs(1, 1));
  SimResult i = simulate(interleaved_1f1b(4, 2, 8), 8, costs(1, 1));
  ASSERT_FALSE(i.deadlock);
  EXPECT_EQ(i.makespan, 38);                      // 2(VM + P-1)
  EXPECT_DOUBLE_EQ(i.bubble_fraction, 3.0 / 19);  // (P-1)/(VM+P-1)
  EXPECT_LT(i.bubble_fraction, o.bubble_fraction);
  EXPECT_EQ(i.peak_in_flight[0], 11);  // warm-up 2(P-1) + (V-1)P forwards, plus one
  for (auto [P, V, M] : {std::tuple{2, 2, 4}, {2, 3, 4}, {4, 3, 8}, {3, 2, 9}}) {
    SimResult r = simulate(interleaved_1f1b(P, V, M), P * V, costs(1, 1));
    EXPECT_EQ(r.makespan, 2.0 * (V * M + P - 1)) << "P=" << P << " V=" << V << " M=" << M;
  }
}

TEST(Simulator, PostedReceivesHideCommunication) {
  SimOptions o = costs(1, 2);
  o.comm = 0.25;
  Schedule s = one_f_one_b(4, 8);
  Schedule low = add_communication(s, 4);
  const double ideal = simulate(s, 4, o).makespan;
  const double late = simulate(low, 4, o).makespan;
  const double early = simulate(hoist_receives(low), 4, o).makespan;
  // Receives posted one compute ahead hide the latency as well as receives
  // posted in time (the compute-only model); receives posted just before
  // their consumer pay it on the critical path.
  EXPECT_EQ(ideal, 37);
  EXPECT_EQ(late, 37.75);
  EXPECT_EQ(early, ideal);
}

TEST(Simulator, ReportsDeadlockNamingRanks) {
  // Two ranks each block on a receive first.
  SimOptions blocking = costs(1, 1);
  blocking.blocking_recv = true;
  Schedule s = sched({"0RECV_B0 0F0 0SEND_F0 0B0", "1RECV_F0 1F0 1B0 1SEND_B0"});
  EXPECT_EQ(validate(s, 2, 1), "");
  SimResult r = simulate(s, 2, blocking);
  ASSERT_TRUE(r.deadlock);
  ASSERT_EQ(r.stuck.size(), 2u);
  EXPECT_EQ(r.stuck[0].rank, 0);
  EXPECT_EQ(r.stuck[0].index, 0);
  EXPECT_EQ(r.deadlock_message(),
            "deadlock: rank 0 is stuck at action 0 (0RECV_B0) waiting for 1SEND_B0 on rank 1; "
            "rank 1 is stuck at action 0 (1RECV_F0) waiting for 0SEND_F0 on rank 0");
  // Posted (non-blocking) receives: the same lists run.
  EXPECT_FALSE(simulate(s, 2, costs(1, 1)).deadlock);

  // Cross-ordered micro-batches deadlock whatever the receive semantics.
  Schedule cyc = sched({"0F0 0SEND_F0 0RECV_B0 0B0 0F1 0SEND_F1 0RECV_B1 0B1",
                        "1RECV_F1 1F1 1B1 1SEND_B1 1RECV_F0 1F0 1B0 1SEND_B0"});
  EXPECT_EQ(validate(cyc, 2, 2), "");
  EXPECT_EQ(simulate(cyc, 2).deadlock_message(),
            "deadlock: rank 0 is stuck at action 3 (0B0) waiting for 1SEND_B0 on rank 1; "
            "rank 1 is stuck at action 1 (1F1) waiting for 0SEND_F1 on rank 0");
  EXPECT_EQ(simulate(strip_communication(cyc), 2).deadlock_message(),
            "deadlock: rank 0 is stuck at action 1 (0B0) waiting for 1B0 on rank 1; "
            "rank 1 is stuck at action 0 (1F1) waiting for 0F1 on rank 0");
  // A dependency no rank has.
  EXPECT_EQ(simulate(sched({"0F0 0SEND_F0 0RECV_B0 0B0", "1RECV_F0 1F0 1B0"}), 2).deadlock_message(),
            "deadlock: rank 0 is stuck at action 3 (0B0) waiting for 1SEND_B0, which no rank has");
  // Hoisted receives are only for engines that post them: blocking, they deadlock.
  Schedule il = add_communication(interleaved_1f1b(2, 2, 4), 4);
  EXPECT_FALSE(simulate(il, 4, blocking).deadlock);
  EXPECT_TRUE(simulate(hoist_receives(il), 4, blocking).deadlock);
  EXPECT_FALSE(simulate(hoist_receives(il), 4, costs(1, 1)).deadlock);
}

TEST(Simulator, PrintsATimeline) {
  SimResult r = simulate(gpipe(2, 2), 2, costs(1, 1));
  EXPECT_EQ(format_timeline(r),
            "rank 0 | 0F0 0F1 .   .   0B0 0B1\n"
            "rank 1 | .   1F0 1F1 1B0 1B1 .\n");
  EXPECT_EQ(format_summary(r),
            "makespan 6, bubble 0.333333\n"
            "rank 0: busy 4, peak in flight 2\n"
            "rank 1: busy 4, peak in flight 2\n");
  EXPECT_EQ(error_of([] { simulate(gpipe(2, 2), 2, SimOptions{{StageCost{}, StageCost{}, StageCost{}}, 0, false}); }),
            "costs given for 3 stages, expected 1 or 2");
}
