// The validator: a schedule is run only after it passes. Checks what every
// schedule must satisfy, compute-only or lowered, and names the first
// offending action by rank and position.
#pragma once

#include <string>

#include "runtime/schedule/action.h"
#include "runtime/schedule/stage_graph.h"

namespace ppc::runtime::schedule {

struct ValidateOptions {
  /// Forward-only (inference) schedules: no B, I or W allowed or required.
  bool forward_only = false;
};

/// Returns "" when `schedule` is well-formed for `num_stages` stages and
/// `num_microbatches` micro-batches with activations along `graph`, else the
/// first problem, "rank R, action K (TEXT): what is wrong" (K is 0-based), or
/// "rank R, end of schedule: ..." for something missing. Checks, in order:
///  1. per action, ranks in ascending order, actions in order: stage and
///     micro-batch in range; the stage is on this rank only (its rank is the
///     one with most of its actions, the lowest on a tie); no action occurs twice; B and I
///     come after the F of the same stage and micro-batch; W after the I; a
///     stage and micro-batch has either B or I+W, not both; SEND_F after its F
///     and SEND_B after its B/I; a SEND/RECV only where some peer stage is on
///     another rank; and, if the schedule has any SEND/RECV, a compute action
///     that needs data from another rank comes after its RECV;
///  2. completeness: every stage is on some rank, and every stage and
///     micro-batch has one F and one B or one I and one W;
///  3. pairing, if the schedule has any SEND/RECV: each SEND_F(s,m) has a
///     RECV_F(c,m) for every consumer c of s on another rank, each RECV_F(s,m)
///     a SEND_F(p,m) for every producer p of s on another rank, and likewise
///     SEND_B/RECV_B.
/// Deadlock is not checked here (simulate() finds it).
std::string validate(const Schedule& schedule, int num_stages, int num_microbatches, const StageGraph& graph,
                     const ValidateOptions& options = {});
/// validate() over the chain 0 -> 1 -> ... -> num_stages-1.
std::string validate(const Schedule& schedule, int num_stages, int num_microbatches,
                     const ValidateOptions& options = {});

}  // namespace ppc::runtime::schedule
