// Exact min-bottleneck partition of a topologically ordered DAG into
// contiguous stages, with communication and memory. Pure arithmetic: no IR,
// no model formats (the cost model in cost_model.h builds the problem).
#pragma once

#include <vector>

namespace ppc::analysis {

/// n items (the placeable nodes in topological order) to cut into stages
/// [b_0=0, b_1), [b_1, b_2), ..., [b_{N-1}, n).
struct ChainProblem {
  /// Compute cost of each item (>= 0).
  std::vector<double> compute;

  /// A value produced by item `producer` and read by `consumers` (item
  /// positions > producer; sorted, unique). Sent directly from its producer to
  /// every stage that reads it, so each stage [i,j) with producer < i and a
  /// consumer in [i,j) pays `cost` once (a skip connection costs once per
  /// consumer stage; no relaying through the stages in between).
  struct Transfer {
    int producer = 0;
    std::vector<int> consumers;
    double cost = 0.0;
  };
  std::vector<Transfer> transfers;
  /// Charged once more (>= 0) to every stage that receives at least one
  /// transfer (whatever their costs): a message's latency, when the values a
  /// stage receives travel together (pprun packs those from one stage; values
  /// from two earlier stages still count once).
  double receive_cost = 0.0;

  /// allowed[b] (size n+1, or empty = all): a cut before item b is allowed.
  /// Entries 0 and n are ignored (the chain's ends always bound a stage).
  std::vector<bool> allowed;

  /// Memory, checked only when memory_cap > 0. A stage [i,j) at index k holds
  /// every resident whose readers meet [i,j) (params with their gradients and
  /// optimizer state; a param read by two stages is held by both), plus
  /// inflight[k] x the sum of activation[i..j) (bytes held per micro-batch).
  struct Resident {
    std::vector<int> readers;  ///< sorted, unique item positions
    double bytes = 0.0;
  };
  std::vector<Resident> resident;
  std::vector<double> activation;  ///< per item; empty = none
  std::vector<double> inflight;    ///< per stage index (size = stages); empty = 1 each
  double memory_cap = 0.0;         ///< 0 = no cap
};

/// Cost of stage [i, j): its compute plus every transfer it receives, plus
/// receive_cost if it receives any.
/// Direct O(n + transfers) evaluation, the definition the search optimises.
double stage_cost(const ChainProblem& p, int i, int j);

/// Memory of stage [i, j) at stage index k (see ChainProblem::Resident).
double stage_memory(const ChainProblem& p, int k, int i, int j);

struct ChainPartition {
  bool feasible = false;    ///< false: no partition satisfies the allowed cuts / memory cap
  std::vector<int> starts;  ///< first item of stages 1..N-1 (size N-1)
  double bottleneck = 0.0;  ///< max stage cost
};

/// The partition into exactly `stages` non-empty stages that minimises the
/// largest stage cost, subject to the allowed cuts and the memory cap.
/// Exact (up to a relative 1e-12 of the bottleneck): bisection on the
/// bottleneck B, each step deciding "is there a partition with every stage
/// cost <= B" exactly. For a fixed start i a stage's cost only grows with its
/// end j, so from each start the feasible ends form a prefix; one sweep over
/// the starts with a segment tree (range add, first-exceeding search) finds
/// every start's last feasible end in O((n + E) log n), and stage counts are
/// propagated layer by layer in O(n) per stage. Requires 1 <= stages <= n.
ChainPartition min_bottleneck_partition(const ChainProblem& p, int stages);

}  // namespace ppc::analysis
