// pprun's engine: interprets one rank's lowered schedule (F/B/SEND/RECV
// actions) over its stages, step after step — micro-batch split and merge,
// loss, gradient accumulation, tied-weight gradient sync, optimizer step,
// checkpoints. It only interprets actions: which action runs when is decided
// by runtime/schedule/.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine/optimizer.h"
#include "runtime/manifest/stage_map.h"
#include "runtime/schedule/action.h"
#include "runtime/schedule/simulator.h"
#include "runtime/transport/transport.h"

namespace ppc::runtime {

struct EngineOptions {
  std::string schedule = "1f1b";
  std::string schedule_file;  ///< compute-only CSV instead of a named schedule
  int chunks = 1;             ///< micro-batches per batch
  int steps = 1;
  // Data: batch files (one per step, cycled), or synthetic batches.
  std::vector<std::string> input_files;
  bool synthetic = false;
  int64_t batch_size = 0;  ///< synthetic only
  uint64_t seed = 0;
  int synthetic_batches = 8;            ///< distinct synthetic batches, cycled
  std::map<std::string, int64_t> dims;  ///< values of symbolic dims (besides the batch dim)
  // Data parallel: `dp` replicas of the pipeline (world = P * dp ranks), each
  // on its shard of every batch (the batch split as micro-batches are: the
  // first shards one sample larger when dp does not divide it); their
  // gradients are summed per stage in buckets of at most `dp_bucket_mb` MiB,
  // each stage's started as soon as its last backward of the step is done.
  int dp = 1;
  std::string dp_layout = "pipeline-major";  ///< or data-major (replicas.h)
  double dp_bucket_mb = 25;
  /// Where the stages compute: "cpu" or a GPU ("cuda:0", as open_device()
  /// resolved --device); messages travel through host memory.
  std::string device = "cpu";
  int64_t int_high = 2;  ///< synthetic integer inputs are drawn from [0, int_high)
  // Training.
  bool train = false;
  std::string loss = "mse";  ///< mse | cross_entropy | model
  std::string target_key = "target";
  OptimizerOptions optimizer;
  // Outputs.
  std::string output_path;  ///< inference: model outputs, micro-batches merged
  std::string save_dir;     ///< training: a complete pipeline again (+ optimizer state, params.pt)
  int save_every = 0;       ///< also save after every this many steps (0: at the end only)
  int keep = 1;             ///< checkpoints kept in save_dir + ".d" (the newest first)
  std::string resume_dir;   ///< continue from a save_dir (the manifest must be loaded from it)
  bool quiet = false;
  // Measurement.
  std::string trace_path;     ///< Chrome trace JSON of every action on every rank (written by rank 0)
  bool trace_memory = false;  ///< the trace also samples each rank's heap in use after every action
  std::string timeline_path;  ///< SVG picture of the last step (written by rank 0)
  std::string profile_path;   ///< measured per-stage F/B/I/W ms per micro-batch, for --costs (rank 0)
};

/// The lowered schedule of every rank (receives hoisted one compute action
/// ahead), for `world_size` ranks over the manifest's stage graph: the named
/// schedule, or the compute-only CSV `schedule_file` (torch.distributed.
/// pipelining's format), which must pass the validator and the simulator's
/// deadlock check (errors name the file, rank and action). Inference keeps
/// only the forward actions.
schedule::Schedule plan_schedule(const manifest::Manifest& manifest, const std::string& name, int world_size,
                                 int chunks, bool train, const std::string& schedule_file = "");

/// Micro-batches a compute-only CSV schedule runs (largest index + 1).
int microbatches_in_schedule_file(const std::string& schedule_file);

/// What the simulator needs besides the schedule: per-stage costs (per
/// micro-batch) from a --profile file when `costs_file` is given, else from
/// the manifest's FLOP estimates (F = flops, B = 2F, I = W = F); and, from the
/// file, each stage edge's message bytes and the rate they travel at (its
/// link's message_bytes_per_second; 0: bytes take no time).
struct SimCosts {
  std::string file;  ///< "" for FLOP estimates
  std::vector<schedule::StageCost> stages;
  std::vector<schedule::StageEdge> edge_bytes;  ///< the edges the file gives bytes for
  /// The file's calibrated message cost (zero for FLOP estimates and
  /// uncalibrated files); its bytes travel at message.bytes_per_second.
  MessageCost message;
  /// The cores the ranks share, in ranks (SimOptions::cores), with `stages`
  /// the profile's work (profile::Profile::as_work and shared_cores); 0: a
  /// core per rank.
  double cores = 0;
};
/// Throws ppc::Error on a malformed file or one for a different stage count.
SimCosts sim_costs(const manifest::Manifest& manifest, const std::string& costs_file);

/// The simulator on `schedule` (lowered) with the manifest's edges, the
/// costs, and `comm` per message in flight (plus its bytes and rank time as
/// costs.message says); with `replicas` > 1 also each stage's gradient
/// all-reduce across them (its trainable parameters' bytes, priced like messages).
/// Throws ppc::Error when the costs give bytes for an edge the manifest does not have.
schedule::SimResult simulate_plan(const manifest::Manifest& manifest, const schedule::Schedule& schedule,
                                  const SimCosts& costs, double comm = 0, int replicas = 1);

/// Checks the data against the manifest before any rank starts: loads the
/// first batch (or makes the first synthetic one) and splits it into
/// micro-batches. Throws ppc::Error naming the file and the problem.
void check_data(const manifest::Manifest& manifest, const EngineOptions& options);

/// The step a checkpoint folder (`--resume DIR`, written by --save) reached.
/// Throws ppc::Error naming its pprun_state.json when the file is missing or
/// malformed, or, when `options.train`, when it was trained with another
/// optimizer than `options.optimizer.kind`.
int64_t read_resume_step(const EngineOptions& options);

/// Runs `options.steps` steps on this rank of `transport`'s world (P ranks
/// per pipeline times options.dp replicas). Rank 0 writes one log line per
/// step to `log` unless options.quiet. Throws ppc::Error for bad input (files,
/// shapes, options) and PeerError when another rank fails.
void run_pipeline(const LoadedManifest& manifest, Transport& transport, const EngineOptions& options,
                  std::ostream& log);

}  // namespace ppc::runtime
