#include "runtime/stages/stage_module.h"

#include <algorithm>

#include "runtime/stages/onnx_stage.h"
#include "runtime/stages/pt2_stage.h"
#include "runtime/stages/torchscript_stage.h"
#include "schemas/error.h"

namespace ppc::runtime {

StageModule::~StageModule() = default;

std::vector<size_t> manifest_order(const std::vector<std::string>& want, const std::vector<std::string>& have,
                                   const std::string& path, const char* what) {
  if (want.size() != have.size())
    throw Error(path + ": the stage has " + std::to_string(have.size()) + " " + what + "s, the manifest lists " +
                std::to_string(want.size()));
  std::vector<size_t> order;
  for (const auto& w : want) {
    auto it = std::find(have.begin(), have.end(), w);
    if (it == have.end()) throw Error(path + ": the stage has no " + what + " '" + w + "' that the manifest lists");
    order.push_back(static_cast<size_t>(it - have.begin()));
  }
  return order;
}

void check_manifest_params(const manifest::Stage& info, const std::vector<std::string>& have, const std::string& path,
                           int stage) {
  for (const auto& p : info.params)
    if (std::find(have.begin(), have.end(), p.name) == have.end())
      throw Error(path + ": stage " + std::to_string(stage) + " has no parameter or buffer '" + p.name +
                  "' that the manifest lists");
}

void check_stage_format(const LoadedManifest& manifest) {
  const std::string& format = manifest.manifest.source.format;
  if (format == "torchscript") return;
  if (format == "onnx") {
    check_onnx_stages(manifest);  // every node supported, before any rank starts
    return;
  }
  if (format == "pt2") {
    check_pt2_stages(manifest);  // every node's operator resolved, before any rank starts
    return;
  }
  throw Error(manifest.dir + "/manifest.json: unknown source format '" + format + "'");
}

std::unique_ptr<StageModule> load_stage(const LoadedManifest& manifest, int stage) {
  const std::string& format = manifest.manifest.source.format;
  if (format == "torchscript") return load_torchscript_stage(manifest, stage);
  if (format == "onnx") return load_onnx_stage(manifest, stage);
  if (format == "pt2") return load_pt2_stage(manifest, stage);
  throw Error(manifest.dir + "/manifest.json: unknown source format '" + format + "'");
}

}  // namespace ppc::runtime
