// The cost model behind automatic partitioning: what each node costs to run
// (measured time, FLOPs, parameter bytes or one per node), what each value
// costs to send if a cut separates its producer from a consumer, and what a
// stage holds in memory. Builds the ChainProblem the exact partitioner solves,
// and evaluates any partition (auto, hand-written, baselines) the same way.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "compiler/analysis/chain_partition.h"
#include "compiler/ir/graph.h"
#include "schemas/profile.h"

namespace ppc::analysis {

/// Measured times of an earlier split of the same model, as written by
/// `pprun --profile FILE.json` (every stage with its first and last node).
struct MeasuredCosts {
  /// As read, but as work where its ranks time-shared the host's cores
  /// (profile::Profile::as_work); a split run on the profiled host shares
  /// profile.shared_cores().
  profile::Profile profile;
  double forward_fraction = 1.0 / 3.0;  ///< sum of forward / sum of forward + backward
  /// What a message costs in the running pipeline (zero when not calibrated).
  MessageCost message() const { return profile.message_cost(); }
  /// The step's time outside the pipeline (0 when not measured).
  double overhead_ms() const { return profile.overhead_ms > 0 ? profile.overhead_ms : 0.0; }
};

/// Reads a profile; every problem is a ppc::Error naming the file.
MeasuredCosts load_measured_costs(const std::string& path);

struct CostModelOptions {
  std::string balance = "flops";  ///< time | flops | params | uniform
  double flops_per_second = 5e10;
  double link_bytes_per_second = 2e9;  ///< 0: communication is free
  /// One message's latency, per micro-batch of micro_batch_size samples:
  /// charged once to each stage that receives anything, each way.
  double link_latency_ms = 0;
  /// Bytes per sample of a crossing value whose shape is unknown
  /// (TorchScript records none); 0: one element.
  double unknown_value_bytes = 0;
  double memory_cap_bytes = 0;  ///< per stage; 0: no cap
  int micro_batch_size = 1;
  int optimizer_states = 2;
  std::string cut_at = "node";  ///< node | module
  int module_depth = 1;
  std::string schedule = "1f1b";  ///< activation memory: gpipe holds every micro-batch
  int chunks = 8;
  const MeasuredCosts* measured = nullptr;  ///< required for balance "time"
  /// No cut where a value of unknown rank would cross it (ONNX stage
  /// interfaces need typed shapes).
  bool typed_cuts_only = false;
};

struct CostModel {
  std::string balance;
  std::string unit;               ///< of compute and stage costs: "ms" (per sample), "bytes", "nodes"
  std::vector<ir::NodeId> items;  ///< placeable nodes in graph order; problem positions index this
  ChainProblem problem;
  std::vector<double> param_bytes;  ///< per item: bytes of the params it is first to read
  std::vector<int> unit_of;         ///< per item: its module unit at module_depth (uniform-layer baseline)
  /// Dataflow between items: each value's producer and its later readers
  /// (whatever the link costs), for the stage graph of a partition.
  std::vector<std::pair<int, std::vector<int>>> reads;
  /// Per entry of `reads`: the value's bytes per sample, and those of its
  /// gradient (float values; 0 for others).
  std::vector<std::pair<double, double>> read_bytes;
};

/// Builds the model for `stages` stages. Throws ppc::Error for a time
/// balance without measured costs, or measured costs that do not fit the graph.
CostModel build_cost_model(const ir::Graph& g, const std::vector<bool>& const_like, const CostModelOptions& o,
                           int stages);

/// A partition given by the first item of stages 1..N-1, under the model.
struct Evaluation {
  std::vector<double> stage_costs;  ///< compute + received communication
  std::vector<double> stage_compute;
  std::vector<double> stage_memory;  ///< bytes (params + grads + optimizer state + held activations)
  double bottleneck = 0.0;
  double imbalance = 0.0;  ///< max / mean of stage_costs (1 when all are 0)
};
Evaluation evaluate(const CostModel& m, const std::vector<int>& starts);

/// A lower bound on any partition's bottleneck: max(total compute / stages, largest item).
double lower_bound(const CostModel& m, int stages);

/// Baselines, restricted to the model's allowed cuts:
/// PiPPy's split_into_equal_size (fill stages greedily to 1/N of the
/// parameter bytes each), and DeepSpeed's 'uniform' (an equal number of
/// module units per stage). Each returns stages-1 increasing starts, or an
/// empty vector when the allowed cuts make it impossible.
std::vector<int> equal_params_starts(const CostModel& m, int stages);
std::vector<int> uniform_layers_starts(const CostModel& m, int stages);

}  // namespace ppc::analysis
