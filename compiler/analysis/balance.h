// Automatic partitioning: N contiguous stages of the placeable node order
// whose largest cost is minimal under a simple cost model.
#pragma once

#include <string>
#include <vector>

#include "compiler/analysis/cost_model.h"
#include "compiler/analysis/split_points.h"
#include "compiler/ir/graph.h"

namespace ppc::analysis {

/// Splits `costs` (all >= 0) into exactly `parts` non-empty contiguous pieces
/// minimising the maximum piece sum. Returns the start index of pieces 1..parts-1.
/// Requires 1 <= parts <= costs.size().
std::vector<int> min_max_partition(const std::vector<double>& costs, int parts);

/// The result of an automatic partition, with what the summary and the
/// manifest report.
struct AutoPartition {
  std::vector<Cut> cuts;
  std::vector<int> starts;  ///< first item (CostModel::items position) of stages 1..N-1
  CostModel model;
  Evaluation eval;
  /// Measured costs: the simulated step (ms) of this partition and the
  /// schedule simulated (see step_model.h); 0 / "" otherwise.
  double predicted_step_ms = 0;
  std::string predicted_schedule;
};

/// The exact min-bottleneck partition under the cost model (see
/// chain_partition.h). Throws ppc::Error when the graph has fewer placeable
/// nodes (or allowed cuts) than stages need, or no partition fits the memory cap.
AutoPartition auto_partition(const ir::Graph& g, const std::vector<bool>& const_like, int stages,
                             const CostModelOptions& options);

/// The cuts (node positions, labelled as auto cuts) of the partition `starts` of `m`.
std::vector<Cut> cuts_at(const ir::Graph& g, const CostModel& m, const std::vector<int>& starts);

}  // namespace ppc::analysis
