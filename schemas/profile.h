// The profile `pprun --profile FILE.json` writes, and `ppc split --costs` and
// `pprun --simulate --costs` read: measured times of one split of a model.
// One reader and one writer for both sides, like the manifest's.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "schemas/message_cost.h"

namespace ppc::profile {

/// One stage, ms per micro-batch, averaged over the profiled steps.
struct StageTimes {
  double f = 0, b = 0, i = 0, w = 0;  ///< forward, full backward, input / weight backward
  std::string first_node, last_node;  ///< the stage's node range ("" in files without it)
  /// Per node, timed inside the stage (ONNX stages; empty otherwise): forward
  /// ms and backward ms (0 in files without it).
  struct Node {
    std::string node;
    double f = 0, b = 0;
    bool operator==(const Node& o) const { return node == o.node && f == o.f && b == o.b; }
  };
  std::vector<Node> nodes;
  /// The CPU time of the thread that ran the stage's forward and backward, ms
  /// per micro-batch (with one intra-op thread per rank, all of their work;
  /// -1: not recorded). Below total_ms() by the time the stage waited for a
  /// core its host's other ranks held.
  double cpu_ms = -1;
  /// Forward + backward ms per micro-batch (B, or I + W where B was not measured).
  double total_ms() const { return f + (b > 0 ? b : i + w); }
};

/// A message between two stages on different ranks: its mean bytes per
/// micro-batch, activations forward and their gradients backward.
struct EdgeBytes {
  int from = 0, to = 0;
  double bytes = 0, grad_bytes = 0;
};

/// Where the profile was measured: rank 0's host. The times are wall times:
/// where the host's ranks and their intra-op threads outnumber its cores,
/// they time-share them, and every time includes waiting for a core. The
/// stages' CPU times (StageTimes::cpu_ms) give the work without the wait
/// (Profile::as_work), which the schedule simulator shares out over the
/// host's cores (SimOptions::cores).
struct Host {
  int cores = 0;        ///< cores rank 0 may run on (0: not recorded)
  int local_ranks = 0;  ///< ranks on that host (LOCAL_WORLD_SIZE; 0: unknown)
  int threads = 0;      ///< intra-op threads per rank
  int ranks = 0;        ///< the profiled run's ranks on all hosts (0: unknown)
  bool oversubscribed() const { return cores > 0 && local_ranks > 0 && threads > 0 && local_ranks * threads > cores; }
  /// Every rank of the run was on this host (as far as the file says).
  bool one_host() const { return local_ranks > 0 && (ranks <= 0 || ranks <= local_ranks); }
  /// The cores in units of one rank's threads (cores / threads), what
  /// schedule::SimOptions::cores takes; 0: not recorded.
  double rank_cores() const { return cores > 0 && threads > 0 ? static_cast<double>(cores) / threads : 0.0; }
  /// "3 ranks x 1 thread on 2 cores".
  std::string summary() const;
};

struct Profile {
  std::string file;  ///< where it was read from (for messages)
  std::string schedule;
  int chunks = 0;
  int steps_measured = 0;
  std::string source_sha256;    ///< of the model the split came from ("" = unknown)
  double micro_batch_size = 1;  ///< samples per micro-batch
  int loss_stage = -1;          ///< the stage computing the loss (training), -1: none
  double loss_ms = 0;           ///< per micro-batch, inside loss_stage's F
  /// The link between ranks 0 and 1 (has_link false: one rank, not measured):
  /// an idle ping-pong's one-way latency and bandwidth, and the calibrated
  /// cost of a message (a stage edge's tensors for one micro-batch) in the
  /// running pipeline, for the simulator: in flight, message_ms (-1: not
  /// calibrated) plus its bytes (`edges`) at message_bytes_per_second (0:
  /// bytes free); and message_cpu_ms of each end's rank time (see
  /// schedule::SimOptions::message_cpu), the part calibrated so that the
  /// simulator reproduces the measured step. Files from before message_cpu_ms
  /// calibrated message_ms instead (message_cpu_ms absent: 0).
  bool has_link = false;
  double latency_ms = 0, bytes_per_second = 0, message_ms = -1, message_bytes_per_second = 0, message_cpu_ms = 0;
  /// Besides message_cpu_ms, each end's rank time for a message's bytes, at
  /// this rate (SimOptions::message_cpu_bytes_per_ms; 0: none).
  double message_cpu_bytes_per_second = 0;
  /// The profiled run's messages between ranks, per stage edge.
  std::vector<EdgeBytes> edges;
  double step_ms = -1,
         simulated_step_ms =
             -1;  ///< measured median step, simulated from the stage times and the messages in flight (-1: none)
  /// Median step time outside the pipeline (-1: none): from the step's start
  /// to the first compute action on any rank (loading and splitting the
  /// batch), and from the last action to the step's end (waiting for sends,
  /// the optimizer step). The simulator's makespan covers the rest.
  double overhead_ms = -1;
  Host host;
  std::vector<StageTimes> stages;

  /// Whether the times need as_work() to be work: an oversubscribed host
  /// whose stages all have cpu_ms.
  bool has_work_times() const;
  /// The times as work, what each stage computes with a core to itself:
  /// where has_work_times(), every stage's times and its nodes' scaled by
  /// cpu_ms / total_ms() (at most 1), and loss_ms by its stage's factor;
  /// otherwise the profile as it is.
  Profile as_work() const;
  /// The calibrated cost of a message, for the simulator: zero where the
  /// file calibrated none (message_ms < 0), as in files of one rank.
  MessageCost message_cost() const;
  /// The cores a run on the profiled host shares, in ranks (what
  /// schedule::SimOptions::cores takes), for the times as_work() gives: the
  /// host's cores over each rank's threads where all the profiled ranks were
  /// on that host; 0 (a core per rank) where not, or where the times include
  /// waiting for a core (oversubscribed without CPU times): sharing them out
  /// again would count the wait twice.
  double shared_cores() const;
};

/// Reads a profile. Every problem is a ppc::Error naming the file: cannot
/// open, not JSON, a missing or mistyped field, a negative or non-finite time.
Profile read_profile(const std::string& path);

/// The JSON text pprun writes (keys in a fixed order, ending in a newline).
std::string profile_json(const Profile& p);

}  // namespace ppc::profile
