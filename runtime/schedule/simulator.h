// The simulator: runs a schedule on paper. Finds deadlocks and predicts the
// step time, bubble fraction and peak activation memory (micro-batches in
// flight) of a schedule from per-stage costs.
#pragma once

#include <string>
#include <vector>

#include "runtime/schedule/action.h"
#include "runtime/schedule/stage_graph.h"
#include "schemas/message_cost.h"

namespace ppc::runtime::schedule {

/// Time one stage takes for one micro-batch, in any unit (all the same unit).
struct StageCost {
  double f = 1;  ///< forward
  double b = 2;  ///< full backward
  double i = 1;  ///< input-gradient backward
  double w = 1;  ///< weight-gradient backward

  /// This cost with what a measurement leaves out filled in, so that it fits
  /// any schedule: without split backward there is no I/W (each taken as half
  /// of B, or, for a stage without input gradients, such as the first one,
  /// which reads model inputs alone: I nothing and W all of B); with only
  /// split backward, no B (I + W).
  StageCost filled(bool input_gradients = true) const {
    StageCost c = *this;
    if (c.i == 0 && c.w == 0) {
      c.i = input_gradients ? c.b / 2 : 0;
      c.w = c.b - c.i;
    }
    if (c.b == 0) c.b = c.i + c.w;
    return c;
  }
};

struct SimOptions;

/// Sets the simulator's message settings (comm, bytes_per_ms, message_cpu,
/// message_cpu_bytes_per_ms) from a message's cost, for stage costs in ms.
void set_message_cost(SimOptions& options, const MessageCost& message);

struct SimOptions {
  /// Per stage; empty: StageCost{} for every stage; one entry: for every stage.
  std::vector<StageCost> costs;
  /// Time one message takes: the tensors a stage edge carries for one
  /// micro-batch travel as one message each way (pprun packs them). In a
  /// lowered schedule it moves once its SEND has run and its RECV is posted
  /// (Gloo's rendezvous: the sender writes when the receiver is ready), and
  /// arrives `comm` later. In a compute-only schedule it starts when the
  /// producer ends (receives posted in time).
  double comm = 0;
  /// The link's bandwidth, in bytes per unit of the costs: a message on an
  /// edge with bytes (StageGraph::bytes) takes comm + its bytes / bytes_per_ms.
  /// 0: bytes take no time (every message takes comm).
  double bytes_per_ms = 0;
  /// What a message costs its two ranks besides its time in flight: each
  /// compute action that sends or receives messages (F: activations in and
  /// out, B and I: gradients in and out; not W) takes this much longer per
  /// message to or from another rank. Where communication threads compete
  /// with compute for cores, a message occupies both ends rather than only
  /// delaying its receiver. 0: messages take no rank time.
  double message_cpu = 0;
  /// Besides message_cpu, each end spends rank time on a message's bytes at
  /// this rate (bytes per unit of the costs; 0: bytes take no rank time):
  /// where the ranks share the cores, copying a message in and out of the
  /// transport takes the cores' time, more for a larger message.
  double message_cpu_bytes_per_ms = 0;
  /// false (pprun's engine, like torch.distributed.pipelining's runtime): a
  /// RECV only posts the receive, taking no time, and the compute that needs
  /// the data waits for it. true: the RECV itself blocks its rank until its
  /// data arrived.
  bool blocking_recv = false;
  /// The cores the ranks share, in units of what one rank's compute uses
  /// (a host's cores / intra-op threads per rank). 0: a core per rank, as on
  /// a GPU per rank. Otherwise time runs event by event, and while k ranks
  /// compute at once (message_cpu included), each progresses at
  /// min(1, cores / k) of the speed its costs give: the costs are then each
  /// action's work (CPU time), and an action's time on the timeline its wall
  /// time. With cores >= ranks the result is the same as with 0.
  double cores = 0;
  /// Data parallel: replicas of the pipeline, and per stage the bytes of its
  /// gradients (empty: none). After a stage's last B or W of the step, its
  /// rank sums them across the replicas as a ring all-reduce does: 2(D-1)
  /// messages of bytes/D, each taking comm plus its bytes at bytes_per_ms;
  /// a rank's stages one after another. SimResult::step is when the last ends.
  int replicas = 1;
  std::vector<double> grad_bytes;
};

/// The time a ring all-reduce of `bytes` takes among `replicas` ranks whose
/// messages take `comm` plus their bytes at `bytes_per_ms` (0: bytes are free).
double ring_all_reduce_time(double bytes, int replicas, double comm, double bytes_per_ms);

/// One executed action. Communication actions take no time on their rank.
struct TimedAction {
  Action action;
  double start = 0;
  double end = 0;
};

/// A rank that cannot go on: its next action and what that action waits for.
struct StuckRank {
  int rank = 0;
  int index = 0;  ///< position of `action` in the rank's list
  Action action;
  std::string waiting_for;  ///< e.g. "1SEND_B0 on rank 1", "0F3, which no rank has"
};

struct SimResult {
  /// True when some rank could not finish its list: every unfinished rank
  /// waits on something that never happens.
  bool deadlock = false;
  std::vector<StuckRank> stuck;  ///< the unfinished ranks, ascending (empty unless deadlock)

  double makespan = 0;  ///< end of the last action (of what ran, on deadlock)
  /// The step: makespan, or with data parallelism (SimOptions::replicas > 1)
  /// the end of the last gradient all-reduce if that is later.
  double step = 0;
  int replicas = 1;
  std::vector<double> busy;         ///< per rank: total compute time
  double bubble_fraction = 0;       ///< 1 - sum(busy) / (ranks * makespan)
  std::vector<int> peak_in_flight;  ///< per rank: most (stage, micro-batch) pairs with F done and B/W not
  std::vector<std::vector<TimedAction>> timeline;  ///< per rank, the actions that ran, in order

  /// "" when no deadlock, else "deadlock: rank 0 is stuck at action 2
  /// (0RECV_B0) waiting for 1SEND_B0 on rank 1; rank 1 ...".
  std::string deadlock_message() const;
};

/// Simulates `schedule` (compute-only or lowered) for stages connected by
/// `graph`. Each rank runs its actions in order; an action starts when its
/// rank is free and its data dependencies are done:
///   F(s,m) needs the forward outputs of every producer of s for m;
///   B/I(s,m) needs F(s,m) and the input gradients (B or I) of every consumer;
///   W(s,m) needs I(s,m); SEND_F needs F, SEND_B needs B or I, of its stage
///   and micro-batch.
/// Within a rank data is ready when its producer ends. Across ranks, in a
/// compute-only schedule (no SEND/RECV anywhere) it arrives `comm` after the
/// producer ends; in a lowered schedule it is a message (see SimOptions::comm)
/// and the consuming compute needs its RECV to have run earlier on its rank.
/// A SEND takes no time; a RECV none either unless blocking_recv. When no rank can go on before all
/// are done, the result reports a deadlock. Throws ppc::Error when stages are
/// out of range, on two ranks, or when costs has neither 0, 1 nor num_stages
/// entries.
SimResult simulate(const Schedule& schedule, int num_stages, const StageGraph& graph, const SimOptions& options = {});
/// simulate() over the chain 0 -> 1 -> ... -> num_stages-1.
SimResult simulate(const Schedule& schedule, int num_stages, const SimOptions& options = {});

/// Per-rank text timeline of the compute actions, one row per rank, one
/// column per `unit` of time (default: the shortest compute action), each
/// cell the action running at the middle of that slot or '.' when idle:
///   rank 0 | 0F0 0F1 .   .   0B0 0B1
std::string format_timeline(const SimResult& result, double unit = 0);

/// Makespan, bubble fraction, and per rank busy time and peak in-flight
/// micro-batches, one line each; plus the deadlock message if any.
std::string format_summary(const SimResult& result);

}  // namespace ppc::runtime::schedule
