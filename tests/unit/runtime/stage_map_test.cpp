#include "runtime/manifest/stage_map.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <unistd.h>

#include "compiler/driver/driver.h"
#include "schemas/error.h"

namespace fs = std::filesystem;
using ppc::runtime::load_and_verify;
using ppc::runtime::stages_of_rank;

namespace {

fs::path split_mlp(const std::string& name) {
  fs::path out = fs::temp_directory_path() / ("ppc_stage_map_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(out);
  ppc::driver::SplitOptions o;
  o.model_path = std::string(PPC_SOURCE_DIR) + "/samples/mlp/mlp.onnx";
  o.spec_path = std::string(PPC_SOURCE_DIR) + "/samples/mlp/spec.json";
  o.out_dir = out.string();
  std::ostringstream sink;
  ppc::driver::split(o, sink, sink);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ppc::Error& e) { return e.what(); }
  return "";
}

}  // namespace

TEST(StagesOfRank, OneStagePerRank) {
  EXPECT_EQ(stages_of_rank(3, 3, 0), std::vector<int>({0}));
  EXPECT_EQ(stages_of_rank(3, 3, 2), std::vector<int>({2}));
}

TEST(StagesOfRank, LoopedPlacementForSeveralStagesPerRank) {
  // 8 stages on 4 ranks: rank r holds r and r+4 (interleaved 1F1B placement).
  EXPECT_EQ(stages_of_rank(8, 4, 1), std::vector<int>({1, 5}));
  EXPECT_EQ(stages_of_rank(4, 1, 0), std::vector<int>({0, 1, 2, 3}));
}

TEST(StagesOfRank, RejectsBadWorlds) {
  EXPECT_NE(error_of([] { stages_of_rank(3, 2, 0); }).find("does not divide the 3 stages"), std::string::npos);
  EXPECT_NE(error_of([] { stages_of_rank(4, 2, 2); }).find("rank 2 is outside the world of 2 ranks"),
            std::string::npos);
  EXPECT_NE(error_of([] { stages_of_rank(4, 0, 0); }).find("at least 1"), std::string::npos);
}

TEST(LoadAndVerify, ReadsWhatPpcWrote) {
  fs::path out = split_mlp("ok");
  auto lm = load_and_verify(out.string());
  ASSERT_EQ(lm.manifest.stages.size(), 3u);
  EXPECT_EQ(lm.manifest.model_inputs.at(0).name, "x");
  EXPECT_EQ(lm.manifest.model_outputs.at(0).stage, 2);
  EXPECT_TRUE(fs::exists(lm.artifact_path(1)));
  // Stages chain by name: every edge input of stage s is an output of its from_stage.
  for (const auto& s : lm.manifest.stages)
    for (const auto& in : s.inputs) {
      if (in.source == "model_input") continue;
      const auto& prod = lm.manifest.stages.at(in.from_stage);
      bool found = false;
      for (const auto& o : prod.outputs) found = found || o.name == in.name;
      EXPECT_TRUE(found) << in.name;
    }
  fs::remove_all(out);
}

TEST(LoadAndVerify, DetectsTamperedAndMissingArtifacts) {
  fs::path out = split_mlp("tamper");
  { std::ofstream(out / "stage1.onnx", std::ios::app) << "x"; }
  EXPECT_NE(error_of([&] { load_and_verify(out.string()); }).find("stage1.onnx: sha256 does not match"),
            std::string::npos);
  fs::remove(out / "stage1.onnx");
  EXPECT_NE(error_of([&] { load_and_verify(out.string()); }).find("artifact 'stage1.onnx' is missing"),
            std::string::npos);
  fs::remove_all(out);
  EXPECT_NE(error_of([&] { load_and_verify(out.string()); }).find("no such manifest"), std::string::npos);
}
