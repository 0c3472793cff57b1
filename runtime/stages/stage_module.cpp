#include "runtime/stages/stage_module.h"

#include "runtime/stages/torchscript_stage.h"
#include "schemas/error.h"

namespace ppc::runtime {

StageModule::~StageModule() = default;

void check_stage_format(const LoadedManifest& manifest) {
  const std::string& format = manifest.manifest.source.format;
  if (format == "torchscript") return;
  if (format == "onnx")
    throw Error(manifest.dir + "/manifest.json: pprun cannot execute ONNX stages yet; split the TorchScript export of "
                "the model (torch.jit.trace(...).save(...)) instead");
  throw Error(manifest.dir + "/manifest.json: unknown source format '" + format + "'");
}

std::unique_ptr<StageModule> load_stage(const LoadedManifest& manifest, int stage) {
  const std::string& format = manifest.manifest.source.format;
  if (format == "torchscript") return load_torchscript_stage(manifest, stage);
  check_stage_format(manifest);
  if (format == "onnx")
    throw Error(manifest.artifact_path(stage) +
                ": pprun cannot execute ONNX stages yet; split the TorchScript export of the model "
                "(torch.jit.trace(...).save(...)) instead");
  throw Error(manifest.dir + "/manifest.json: unknown source format '" + format + "'");
}

}  // namespace ppc::runtime
