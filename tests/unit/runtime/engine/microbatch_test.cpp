// runtime/engine/microbatch: the sizes of a batch's micro-batches.
#include "runtime/engine/microbatch.h"

#include <gtest/gtest.h>

#include "schemas/error.h"

using namespace ppc::runtime;

namespace {

TEST(MicroBatch, SizesFollowTensorSplit) {
  EXPECT_EQ(micro_sizes(10, 4), (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(micro_sizes(8, 4), (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(micro_sizes(3, 3), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_THROW(micro_sizes(2, 3), ppc::Error);
}

}  // namespace
