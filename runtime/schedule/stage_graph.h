// Which stages feed which: the edges that carry activations forward (and
// their gradients backward). The default is the chain 0 -> 1 -> ... -> n-1;
// skip connections and multi-consumer values add edges (from the manifest).
#pragma once

#include <map>
#include <utility>
#include <vector>

namespace ppc::runtime::schedule {

/// Stage `producer` sends activations to stage `consumer` (producer < consumer)
/// and receives their gradients back.
struct StageEdge {
  int producer = 0;
  int consumer = 0;
  /// What one micro-batch's message carries: activations forward, their
  /// gradients backward (0: unknown or free; see SimOptions::bytes_per_ms).
  double bytes = 0;
  double grad_bytes = 0;
};

/// The stages and the edges between them, with both directions indexed.
struct StageGraph {
  int num_stages = 0;
  std::vector<std::vector<int>> producers;  ///< producers[s]: stages s reads from, ascending
  std::vector<std::vector<int>> consumers;  ///< consumers[s]: stages reading s, ascending
  /// Per edge (producer, consumer) with bytes: forward and backward bytes of
  /// one micro-batch's message (those of merged edges summed).
  std::map<std::pair<int, int>, std::pair<double, double>> bytes;

  /// The bytes of edge producer -> consumer's message, forward or backward (0 when not given).
  double message_bytes(int producer, int consumer, bool backward) const;

  /// The chain 0 -> 1 -> ... -> num_stages-1.
  static StageGraph chain(int num_stages);
  /// The given edges (e.g. one per tensor that crosses); duplicates are
  /// merged, their bytes summed: however many tensors an edge carries, pprun
  /// sends them as one message per micro-batch each way. Throws ppc::Error on an edge whose stages are out
  /// of range or that does not go forward (producer >= consumer).
  static StageGraph from_edges(int num_stages, const std::vector<StageEdge>& edges);
};

}  // namespace ppc::runtime::schedule
