// ONNX stages: ppc's ONNX sub-models executed on ATen (OnnxGraph), so they
// train with LibTorch's autograd like TorchScript stages.
#pragma once

#include "runtime/stages/stage_module.h"

namespace ppc::runtime {

/// Loads ONNX stage `stage` of a verified manifest: parses and plans it,
/// checks that its inputs, outputs and parameters are the manifest's.
std::unique_ptr<StageModule> load_onnx_stage(const LoadedManifest& manifest, int stage);

/// Parses every ONNX stage of the manifest and checks every node against the
/// supported set (no tensors built): throws the ppc::Error naming the first
/// unsupported node, op type and opset. Run before any rank starts.
void check_onnx_stages(const LoadedManifest& manifest);

}  // namespace ppc::runtime
