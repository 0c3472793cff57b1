#include "schemas/suggest.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ppc {
namespace {

using Names = std::vector<std::string>;

TEST(EditDistance, Basics) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", "abc"), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("sitting", "kitten"), 3u);
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2u);
  EXPECT_EQ(edit_distance("abc", "acb"), 2u);  // no transpositions
  EXPECT_EQ(edit_distance("a", "b"), 1u);
  EXPECT_EQ(edit_distance("ab", "a"), 1u);
  EXPECT_EQ(edit_distance("intention", "execution"), 5u);
}

TEST(EditDistance, CaseSensitive) {
  EXPECT_EQ(edit_distance("Conv", "conv"), 1u);
  EXPECT_EQ(edit_distance("ABC", "abc"), 3u);
}

TEST(EditDistance, Symmetric) {
  const Names words = {"", "a", "layer1", "layer1.0.conv1", "fc", "conv2d", "xyzzy"};
  for (const auto& a : words)
    for (const auto& b : words) EXPECT_EQ(edit_distance(a, b), edit_distance(b, a)) << a << " " << b;
}

TEST(NearestNames, ClosestFirstTiesByName) {
  const Names cands = {"rank", "ranks", "bank", "tank", "frank", "unrelated"};
  // "rank" d=0; "bank","frank","ranks","tank" d=1 (sorted by name).
  EXPECT_EQ(nearest_names("rank", cands, 10), (Names{"rank", "bank", "frank", "ranks", "tank"}));
  EXPECT_EQ(nearest_names("rank", cands), (Names{"rank", "bank", "frank"}));
  EXPECT_EQ(nearest_names("rank", cands, 1), (Names{"rank"}));
  EXPECT_TRUE(nearest_names("rank", cands, 0).empty());
}

TEST(NearestNames, Threshold) {
  // Short queries allow distance 2.
  EXPECT_EQ(nearest_names("modle", {"module"}), (Names{"module"}));
  EXPECT_EQ(nearest_names("mdle", {"module"}), (Names{"module"}));
  EXPECT_TRUE(nearest_names("mde", {"module"}).empty());
  // Long queries allow len/3: 12 chars -> 4.
  EXPECT_EQ(nearest_names("split_pnts__", {"split_points"}), (Names{"split_points"}));
  EXPECT_EQ(nearest_names("spli_pnts___", {"split_points"}), Names{});
  // A short query is not matched by something sharing nothing with it.
  EXPECT_TRUE(nearest_names("a", {"xy", "b"}).empty());
  EXPECT_TRUE(nearest_names("ab", {"xy"}).empty());
  EXPECT_EQ(nearest_names("ab", {"xb"}), (Names{"xb"}));
}

TEST(NearestNames, DottedComponents) {
  const Names modules = {"layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "fc", "conv"};
  // Spelling match "conv" (d=1) first, then suffix matches by distance/name.
  EXPECT_EQ(nearest_names("conv1", modules, 5), (Names{"conv", "layer1.0.conv1", "layer2.0.conv1"}));
  // Prefix component match.
  EXPECT_EQ(nearest_names("layer1", {"layer1.0.conv1", "layer10.conv", "stem"}), (Names{"layer1.0.conv1"}));
  // Multi-component suffix.
  EXPECT_EQ(nearest_names("0.conv2", modules), (Names{"layer1.0.conv2"}));
  // The boundary must be a dot: "onv1" is not a component.
  EXPECT_TRUE(nearest_names("onv1", {"layer1.0.conv1xx"}).empty());
  EXPECT_EQ(nearest_names("conv", {"layer1.0.conv1", "layer1.0.myconv"}), Names{});
}

TEST(NearestNames, DeterministicAndDeduplicated) {
  const Names a = {"beta", "alpha", "alphb", "alpha", "alphc"};
  const Names b = {"alphc", "alpha", "beta", "alphb", "alpha"};
  EXPECT_EQ(nearest_names("alphx", a), nearest_names("alphx", b));
  EXPECT_EQ(nearest_names("alphx", a), (Names{"alpha", "alphb", "alphc"}));
  EXPECT_EQ(nearest_names("alpha", {"alpha", "alpha"}), (Names{"alpha"}));
}

TEST(NearestNames, EmptyInputs) {
  EXPECT_TRUE(nearest_names("", {"a", "b"}).empty());
  EXPECT_TRUE(nearest_names("abc", {}).empty());
}

TEST(DidYouMean, Formatting) {
  EXPECT_EQ(did_you_mean("zzzzzz", {"alpha", "beta"}), "");
  EXPECT_EQ(did_you_mean("alpah", {"alpha", "omega"}), " (did you mean 'alpha'?)");
  EXPECT_EQ(did_you_mean("alphx", {"alpha", "alphb"}), " (did you mean 'alpha' or 'alphb'?)");
  EXPECT_EQ(did_you_mean("alphx", {"alphc", "alpha", "alphb", "alphd"}),
            " (did you mean 'alpha', 'alphb' or 'alphc'?)");
  EXPECT_EQ(did_you_mean("conv1", {"layer1.0.conv1"}), " (did you mean 'layer1.0.conv1'?)");
  EXPECT_EQ(did_you_mean("x", {}), "");
}

}  // namespace
}  // namespace ppc
