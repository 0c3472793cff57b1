// Which stages feed which: the edges that carry activations forward (and
// their gradients backward). The default is the chain 0 -> 1 -> ... -> n-1;
// skip connections and multi-consumer values add edges (from the manifest).
#pragma once

#include <vector>

namespace ppc::runtime::schedule {

/// Stage `producer` sends activations to stage `consumer` (producer < consumer)
/// and receives their gradients back.
struct StageEdge {
  int producer = 0;
  int consumer = 0;
};

/// The stages and the edges between them, with both directions indexed.
struct StageGraph {
  int num_stages = 0;
  std::vector<std::vector<int>> producers;  ///< producers[s]: stages s reads from, ascending
  std::vector<std::vector<int>> consumers;  ///< consumers[s]: stages reading s, ascending


  /// The chain 0 -> 1 -> ... -> num_stages-1.
  static StageGraph chain(int num_stages);
  /// The given edges (e.g. one per tensor that crosses); duplicates are
  /// merged: however many tensors an edge carries, pprun sends them as one
  /// message per micro-batch each way. Throws ppc::Error on an edge whose stages are out
  /// of range or that does not go forward (producer >= consumer).
  static StageGraph from_edges(int num_stages, const std::vector<StageEdge>& edges);
};

}  // namespace ppc::runtime::schedule
