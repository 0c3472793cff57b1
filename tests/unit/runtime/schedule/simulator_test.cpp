// runtime/schedule/simulator: stage costs, messages (latency, bytes, rank time),
// ranks sharing cores, the known closed forms for GPipe, 1F1B, interleaved 1F1B,
// ZB-H1, interleaved ZB and DualPipeV, deadlocks, and the printed timeline.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "runtime/schedule/generators.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/stage_graph.h"
#include "runtime/schedule/validator.h"
#include "tests/unit/runtime/schedule/test_schedules.h"

using namespace ppc::runtime::schedule;
using namespace ppc::runtime::schedule::test_schedules;

namespace {

double idle(const SimResult& r, int rank) { return r.makespan - r.busy[rank]; }

}  // namespace

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
  // A stage without input gradients (the first): its W is its whole backward.
  StageCost first = StageCost{1, 3, 0, 0}.filled(false);
  EXPECT_DOUBLE_EQ(first.i, 0);
  EXPECT_DOUBLE_EQ(first.w, 3);
  EXPECT_DOUBLE_EQ(first.b, 3);
  EXPECT_DOUBLE_EQ(StageCost({1, 0, 0.5, 2}).filled(false).i, 0.5);  // measured: kept
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

TEST(Simulator, DataParallelSumsEachStagesGradientsAfterItsLastBackward) {
  // A ring all-reduce of B bytes among D ranks: 2(D-1) messages of B/D.
  EXPECT_DOUBLE_EQ(ring_all_reduce_time(1000, 4, 0.5, 100), 6 * (0.5 + 250.0 / 100));
  EXPECT_DOUBLE_EQ(ring_all_reduce_time(1000, 1, 0.5, 100), 0);
  EXPECT_DOUBLE_EQ(ring_all_reduce_time(1000, 2, 0.5, 0), 2 * 0.5);  // bytes free
  // GPipe, 2 stages, 2 micro-batches, F = 1, B = 2, no comm: rank 1 (the
  // last stage) finishes its backwards before rank 0 does.
  auto last_backward = [](const SimResult& r, int rank, int stage) {
    double end = 0;
    for (const TimedAction& t : r.timeline[rank])
      if (t.action.kind == Action::B && t.action.stage == stage) end = std::max(end, t.end);
    return end;
  };
  Schedule g = gpipe(2, 2);
  SimOptions o = costs(1, 2);
  const SimResult plain = simulate(g, 2, o);
  EXPECT_EQ(plain.replicas, 1);
  EXPECT_DOUBLE_EQ(plain.step, plain.makespan);
  const double last1 = last_backward(plain, 1, 1);
  ASSERT_LT(last1, plain.makespan);
  // 3 replicas: rank 1's larger reduction, started at its last B, outlasts
  // rank 0's small one started at the makespan.
  o.replicas = 3;
  o.bytes_per_ms = 100;
  o.grad_bytes = {30, 3000};
  const SimResult dp = simulate(g, 2, o);
  EXPECT_DOUBLE_EQ(dp.makespan, plain.makespan);  // the pipeline itself is unchanged
  const double r1 = last1 + ring_all_reduce_time(3000, 3, 0, 100);
  const double r0 = plain.makespan + ring_all_reduce_time(30, 3, 0, 100);
  ASSERT_GT(r1, r0);
  EXPECT_DOUBLE_EQ(dp.step, r1);
  EXPECT_NE(format_summary(dp).find("step "), std::string::npos);
  EXPECT_NE(format_summary(dp).find("with the gradient all-reduce across 3 replicas"), std::string::npos);
  // Two stages on one rank: stage 1's reduction first, stage 0's after it.
  Schedule looped = looped_bfs(1, 2, 1);
  SimOptions one = costs(1, 2);
  one.replicas = 2;
  one.bytes_per_ms = 1;
  one.grad_bytes = {10, 10};
  const SimResult serial = simulate(looped, 2, one);
  const double r = ring_all_reduce_time(10, 2, 0, 1);
  EXPECT_DOUBLE_EQ(serial.step, std::max(serial.makespan, last_backward(serial, 0, 1) + r) + r);
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
  Schedule one_rank = {
      {Action{Action::F, 0, 0}, Action{Action::F, 1, 0}, Action{Action::B, 1, 0}, Action{Action::B, 0, 0}}};
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
  Schedule one_rank = {
      {Action{Action::F, 0, 0}, Action{Action::F, 1, 0}, Action{Action::B, 1, 0}, Action{Action::B, 0, 0}}};
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
      {gpipe(P, M), P},        {one_f_one_b(P, M), P}, {interleaved_1f1b(P, 2, 6), 2 * P},
      {zb_h1(P, M), P},        {zb_v(P, 6), 2 * P},    {interleaved_zb(P, 2, M), 2 * P},
      {dualpipev(P, 6), 2 * P}};
  for (const auto& [compute, stages] : all)
    for (int variant = 0; variant < 4; ++variant) {
      SCOPED_TRACE("variant " + std::to_string(variant));
      // Compute-only; lowered; receives hoisted; lowered with blocking receives.
      Schedule s = variant == 0   ? compute
                   : variant == 2 ? hoist_receives(add_communication(compute, stages))
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
  EXPECT_EQ(o.makespan, 33);                      // (M+P-1)(F+B)
  EXPECT_EQ(z.makespan, 27);                      // 3M + (P-1)
  EXPECT_DOUBLE_EQ(o.bubble_fraction, 3.0 / 11);  // (P-1)/(M+P-1)
  EXPECT_DOUBLE_EQ(z.bubble_fraction, 1.0 / 9);   // (P-1)/(3M+P-1)
  for (int r = 0; r < P; ++r) {
    EXPECT_EQ(idle(o, r), 9);           // (P-1)(F+B)
    EXPECT_EQ(idle(z, r), 3);           // (P-1)(F+I-W): exactly one third
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

TEST(Simulator, InterleavedZbAndDualPipeVIdleOnlyTheWarmUp) {
  // F = I = W = 1 per stage (B = I + W = 2). Each rank does 3 units of work per
  // stage and micro-batch and, with at least P micro-batches, idles only the
  // P-1 units the first forward takes to reach the last rank: the deferred W
  // fill the rest. Makespan 3VM + (P-1) (DualPipeV: V = 2).
  const int P = 4, M = 8;
  SimResult iz = simulate(interleaved_zb(P, 2, M), 2 * P, costs(1, 2, 1, 1));
  SimResult il = simulate(interleaved_1f1b(P, 2, M), 2 * P, costs(1, 2, 1, 1));
  SimResult dv = simulate(dualpipev(P, M), 2 * P, costs(1, 2, 1, 1));
  SimResult o = simulate(one_f_one_b(P, M), P, costs(2, 4));  // a 1F1B stage is two of these
  ASSERT_FALSE(iz.deadlock || il.deadlock || dv.deadlock);
  EXPECT_EQ(iz.makespan, 51);
  EXPECT_EQ(dv.makespan, 51);
  EXPECT_EQ(il.makespan, 57);                      // 3(VM + P-1)
  EXPECT_DOUBLE_EQ(iz.bubble_fraction, 3.0 / 51);  // (P-1)/(3VM + P-1)
  EXPECT_DOUBLE_EQ(dv.bubble_fraction, 3.0 / 51);
  EXPECT_DOUBLE_EQ(il.bubble_fraction, 3.0 / 19);  // (P-1)/(VM + P-1)
  EXPECT_DOUBLE_EQ(o.bubble_fraction, 3.0 / 11);
  EXPECT_LT(iz.bubble_fraction, simulate(zb_h1(P, M), P, costs(1, 2, 1, 1)).bubble_fraction);  // 1/9
  for (int r = 0; r < P; ++r) {
    EXPECT_EQ(idle(iz, r), 3);
    EXPECT_EQ(idle(dv, r), 3);
    EXPECT_EQ(iz.peak_in_flight[r], 8);  // (V-1)P + P; interleaved 1F1B's rank 0: 11
    EXPECT_EQ(dv.peak_in_flight[r], 9);  // 2P + 1, in half-size stages: 1F1B's first rank holds 2P
  }
  EXPECT_EQ(il.peak_in_flight[0], 11);
  for (int p = 1; p <= 5; ++p)
    for (int m = p; m <= 16; ++m) {
      SCOPED_TRACE("P=" + std::to_string(p) + " M=" + std::to_string(m));
      if (m % std::max(1, m / p) == 0)
        for (int v : {1, 2, 3}) {
          SimResult r = simulate(interleaved_zb(p, v, m), v * p, costs(1, 2, 1, 1));
          EXPECT_EQ(r.makespan, 3.0 * v * m + p - 1) << "V=" << v;
          if (m % p == 0 && p > 1) {
            EXPECT_LT(r.bubble_fraction, simulate(interleaved_1f1b(p, v, m), v * p, costs(1, 2, 1, 1)).bubble_fraction);
          }
        }
      if (m < 2 * p) continue;
      SimResult d = simulate(dualpipev(p, m), 2 * p, costs(1, 2, 1, 1));
      EXPECT_EQ(d.makespan, 6.0 * m + p - 1);
      EXPECT_LE(d.makespan, simulate(zb_v(p, m), 2 * p, costs(1, 2, 1, 1)).makespan);
      if (p > 1) { EXPECT_LT(d.bubble_fraction, simulate(one_f_one_b(p, m), p, costs(2, 4)).bubble_fraction); }
    }
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
  Schedule cyc = sched(
      {"0F0 0SEND_F0 0RECV_B0 0B0 0F1 0SEND_F1 0RECV_B1 0B1", "1RECV_F1 1F1 1B1 1SEND_B1 1RECV_F0 1F0 1B0 1SEND_B0"});
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
  EXPECT_EQ(error_of([] {
              simulate(gpipe(2, 2), 2, SimOptions{{StageCost{}, StageCost{}, StageCost{}}, 0, false});
            }),
            "costs given for 3 stages, expected 1 or 2");
}
