// The step time a partition predicts: its stage costs under the cost model
// (per micro-batch) run through the schedule simulator, with the message
// latency measured in a running pipeline. And the partition search that uses
// it to account for latency, which is not a per-stage cost.
#pragma once

#include <string>
#include <vector>

#include "compiler/analysis/balance.h"
#include "runtime/schedule/stage_graph.h"
#include "schemas/message_cost.h"

namespace ppc::analysis {

struct StepOptions {
  std::string schedule = "1f1b";  ///< one stage per rank; others fall back to 1f1b
  int chunks = 8;                 ///< micro-batches per step
  double micro_batch_size = 1;    ///< samples per micro-batch (stage costs are per sample)
  double forward_fraction = 1.0 / 3.0;
  /// One message's cost in the running pipeline (per edge, micro-batch and
  /// direction): in flight and at both ends' ranks.
  MessageCost message;
  double overhead_ms = 0;  ///< per step, outside the pipeline (batch loading, optimizer)
  /// The cores the ranks share, in ranks (SimOptions::cores; 0: a core per
  /// rank): fewer than the stages, and the simulator shares them out.
  double cores = 0;
  /// Data-parallel replicas of the pipeline: each stage's gradients (its
  /// parameters' bytes) are summed across them after its last backward,
  /// priced like messages (SimOptions::replicas).
  int replicas = 1;
  /// The search leaves the min-bottleneck split only for one predicted at
  /// least this much (relative) faster: where a message's latency dominates,
  /// the predictions of most splits lie within a few percent of each other,
  /// closer than the prediction's error, and balance is the safer choice.
  double min_gain = 0.01;
  /// Where a model has at most this many splits, the search simulates every
  /// one (search_by_step).
  double enumerate_splits = 4096;
  /// Whether a message costs anything (latency, bytes or rank time).
  bool prices_messages() const { return message.priced(); }
};

/// The stage edges of the partition given by `starts` under `m`, one per
/// stage pair: the bytes per sample of the values crossing it (and of their
/// gradients).
std::vector<runtime::schedule::StageEdge> stage_edges(const CostModel& m, const std::vector<int>& starts);

/// The simulated step (ms) of the partition given by `starts` under `m`
/// (unit "ms"), one stage per rank, plus the per-step overhead. Where
/// `options` price a message (latency, bytes or rank time), the simulator
/// charges every message and the stages run their compute alone; otherwise
/// the stages run their whole cost (compute and the communication the model
/// charges them).
/// `schedule_used` gets the schedule simulated (options.schedule, or 1f1b
/// when that one needs several stages per rank).
/// `evaluation` (optional) gets evaluate(m, starts).
double predict_step_ms(const CostModel& m, const std::vector<int>& starts, const StepOptions& options,
                       std::string* schedule_used = nullptr, Evaluation* evaluation = nullptr);

/// With a message latency, the min-bottleneck partition is not always the
/// fastest: when a message's latency is of the order of a stage's time per
/// micro-batch, the pipeline stalls on it, and where the compute sits
/// relative to the messages matters. So the exact search runs once per
/// candidate charge of the latency to each receiving stage (0, 1/4, 1/2, 1,
/// 2, 4 times it, per micro-batch each way; where a message's bytes take
/// rank time at its ends, its bytes' share of that as well), and once on
/// compute alone (no communication in the objective), and the simulator
/// picks the fastest step; ties go to the earlier candidate. Then single
/// cuts move (1, 2, 4, ... allowed places either way) while the simulated
/// step shortens. Each
/// replacement of the split must gain min_gain. The result is evaluated under the
/// uncharged model (the manifest's stage costs), with predicted_step_ms set.
/// Without a latency it is auto_partition() plus the prediction.
/// The search above on a built model, from its min-bottleneck split
/// `starts`: returns the split chosen, and its simulated step in *predicted_ms.
/// Where there are at most step.enumerate_splits splits (allowed cut places
/// choose stages - 1: module boundaries, small graphs), the refinement is
/// replaced by every split through the simulator: the fastest one.
std::vector<int> search_by_step(const CostModel& m, std::vector<int> starts, const StepOptions& step,
                                double* predicted_ms = nullptr);

AutoPartition auto_partition_by_step(const ir::Graph& g, const std::vector<bool>& const_like, int stages,
                                     const CostModelOptions& options, const StepOptions& step);

}  // namespace ppc::analysis
