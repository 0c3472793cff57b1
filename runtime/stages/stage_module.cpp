#include "runtime/stages/stage_module.h"

#include "runtime/stages/onnx_stage.h"
#include "runtime/stages/pt2_stage.h"
#include "runtime/stages/torchscript_stage.h"
#include "schemas/error.h"

namespace ppc::runtime {

StageModule::~StageModule() = default;

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
