// Lowering: compute-only schedules -> schedules with SEND/RECV actions.
// Small pure passes, in the style of torch.distributed.pipelining's
// `_add_send_recv`, split by concept.
#pragma once

#include "runtime/schedule/action.h"
#include "runtime/schedule/stage_graph.h"

namespace ppc::runtime::schedule {

/// Adds the communication a compute-only schedule needs, for activations
/// flowing along `graph`'s edges and gradients flowing back. Stages are placed
/// where `compute` runs them (stage_ranks()). On each rank, in order:
///   - before F(s,m), when some producer of s is on another rank: RECV_F(s,m);
///   - after F(s,m), when some consumer of s is on another rank: SEND_F(s,m);
///   - before B/I(s,m), when some consumer of s is on another rank: RECV_B(s,m);
///   - after B/I(s,m), when some producer of s is on another rank: SEND_B(s,m).
/// One SEND_F(s,m) sends all of s's outputs to every consumer rank, and one
/// RECV_F(s,m) receives all of s's inputs (likewise for gradients), as in
/// torch.distributed.pipelining. Stages on the same rank exchange nothing.
/// Receives land right before the compute that needs them; hoist_receives()
/// moves them earlier. W needs no communication. Throws ppc::Error when the
/// graph's stage count differs from num_stages, stage_ranks() fails, or
/// `compute` already has SEND/RECV actions.
Schedule add_communication(const Schedule& compute, int num_stages, const StageGraph& graph);
/// add_communication() over the chain 0 -> 1 -> ... -> num_stages-1.
Schedule add_communication(const Schedule& compute, int num_stages);

/// Posts receives earlier: moves every RECV of micro-batch m ahead of up to
/// `distance` compute actions that precede it on its rank, stopping at any
/// compute action of the same micro-batch m (the received data depends only
/// on work of micro-batch m) and at any earlier receive (receives keep their
/// order). distance 0 returns the schedule unchanged. Posting early lets a
/// transfer overlap the compute before its consumer. Only for engines whose
/// RECV posts a non-blocking receive (pprun's, torch's): where a RECV blocks,
/// an early RECV can deadlock (e.g. interleaved 1F1B; simulate() with
/// SimOptions::blocking_recv shows it).
Schedule hoist_receives(const Schedule& lowered, int distance = 1);

/// `schedule` without its SEND/RECV actions.
Schedule strip_communication(const Schedule& schedule);

}  // namespace ppc::runtime::schedule
