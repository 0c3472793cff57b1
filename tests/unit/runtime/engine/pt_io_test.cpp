// runtime/engine/pt_io: dicts of tensors in PyTorch's .pt format.
#include "runtime/engine/pt_io.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;
using namespace ppc::runtime;

namespace {

TEST(PtIo, DictsRoundTripInOrder) {
  const fs::path f = fs::temp_directory_path() / ("ppc_pt_io_test_" + std::to_string(::getpid()) + ".pt");
  save_tensor_dict(f.string(), {{"b", at::arange(6).reshape({2, 3})}, {"a", at::ones({2}, at::kBool)}});
  auto d = load_tensor_dict(f.string());
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].first, "b");
  EXPECT_EQ(d[1].first, "a");
  EXPECT_TRUE(d[0].second.equal(at::arange(6).reshape({2, 3})));
  EXPECT_EQ(d[1].second.scalar_type(), at::kBool);
  fs::remove(f);
}

}  // namespace
