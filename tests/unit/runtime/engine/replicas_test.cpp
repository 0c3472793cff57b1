// Pipeline x data parallel rank layouts (runtime/engine/replicas.h).
#include "runtime/engine/replicas.h"

#include <gtest/gtest.h>

#include <set>

#include "schemas/error.h"

namespace ppc::runtime {
namespace {

TEST(ReplicaLayout, PipelineMajorKeepsEachReplicaConsecutive) {
  ReplicaLayout l = replica_layout(6, 3, "pipeline-major");
  EXPECT_EQ(l.pipeline, 2);
  EXPECT_EQ(l.replicas, 3);
  EXPECT_EQ(l.pipeline_ranks(1), (std::vector<int>{2, 3}));
  EXPECT_EQ(l.replica_ranks(1), (std::vector<int>{1, 3, 5}));
  EXPECT_EQ(l.describe(),
            "6 ranks = 3 replicas x 2 pipeline ranks (pipeline-major: rank = d*2 + p): replica 0 on ranks 0,1; "
            "replica 1 on ranks 2,3; replica 2 on ranks 4,5");
}

TEST(ReplicaLayout, DataMajorKeepsEachPositionsReplicasConsecutive) {
  ReplicaLayout l = replica_layout(6, 3, "data-major");
  EXPECT_EQ(l.pipeline_ranks(1), (std::vector<int>{1, 4}));
  EXPECT_EQ(l.replica_ranks(1), (std::vector<int>{3, 4, 5}));
}

TEST(ReplicaLayout, EveryRankHasOnePlaceBothWays) {
  for (const char* order : {"pipeline-major", "data-major"}) {
    for (int dp : {1, 2, 3, 6}) {
      ReplicaLayout l = replica_layout(6, dp, order);
      std::set<int> seen;
      for (int d = 0; d < l.replicas; ++d)
        for (int p = 0; p < l.pipeline; ++p) {
          int r = l.rank_of(d, p);
          EXPECT_EQ(l.replica_of(r), d) << order << " dp " << dp;
          EXPECT_EQ(l.position_of(r), p) << order << " dp " << dp;
          seen.insert(r);
        }
      EXPECT_EQ(seen, (std::set<int>{0, 1, 2, 3, 4, 5})) << order << " dp " << dp;
    }
  }
}

TEST(ReplicaLayout, BadInputIsAnError) {
  EXPECT_THROW(replica_layout(4, 3, "pipeline-major"), ppc::Error);
  EXPECT_THROW(replica_layout(4, 0, "pipeline-major"), ppc::Error);
  EXPECT_THROW(replica_layout(4, 2, "diagonal"), ppc::Error);
  try {
    replica_layout(6, 4, "pipeline-major");
  } catch (const ppc::Error& e) {
    EXPECT_STREQ(e.what(),
                 "--dp 4 does not divide the 6 ranks of the world (each replica needs the same number of pipeline "
                 "ranks)");
  }
}

}  // namespace
}  // namespace ppc::runtime
