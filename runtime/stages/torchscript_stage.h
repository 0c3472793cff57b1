// TorchScript stages (LibTorch's jit): the artifacts ppc emits for .pt models.
#pragma once

#include "runtime/stages/stage_module.h"

namespace ppc::runtime {

/// Loads a TorchScript stage written by ppc (or by pprun --save). Checks that
/// every parameter the manifest lists for the stage exists in the module.
std::unique_ptr<StageModule> load_torchscript_stage(const LoadedManifest& manifest, int stage);

}  // namespace ppc::runtime
