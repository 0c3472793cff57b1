// Pipeline x data parallel: which global rank runs which pipeline position
// of which replica. P ranks run one pipeline (its stages, as the schedule
// places them on ranks 0..P-1); D replicas of it train on shards of the
// global batch and sum their gradients. Standard library only.
#pragma once

#include <string>
#include <vector>

namespace ppc::runtime {

struct ReplicaLayout {
  int pipeline = 1;  ///< P: ranks per replica
  int replicas = 1;  ///< D
  /// false (pipeline-major, the default): rank = d * P + p, each replica's
  /// ranks consecutive. true (data-major): rank = p * D + d, the replicas of
  /// a pipeline position consecutive.
  bool data_major = false;

  int rank_of(int replica, int position) const {
    return data_major ? position * replicas + replica : replica * pipeline + position;
  }
  int replica_of(int rank) const { return data_major ? rank % replicas : rank / pipeline; }
  int position_of(int rank) const { return data_major ? rank / replicas : rank % pipeline; }
  /// The ranks of replica d, by pipeline position.
  std::vector<int> pipeline_ranks(int replica) const;
  /// The ranks that run pipeline position p, by replica: they sum their gradients.
  std::vector<int> replica_ranks(int position) const;
  /// "4 ranks = 2 replicas x 2 pipeline ranks (pipeline-major: rank = d*2 + p);
  /// replica 0: ranks 0,1; replica 1: ranks 2,3".
  std::string describe() const;
};

/// The layout of `world` ranks with `dp` replicas; `order` is
/// "pipeline-major" or "data-major". Throws ppc::Error when dp < 1, dp does
/// not divide world, or the order is unknown.
ReplicaLayout replica_layout(int world, int dp, const std::string& order);

/// The layout names --dp-layout accepts.
const std::vector<std::string>& replica_layout_names();

}  // namespace ppc::runtime
