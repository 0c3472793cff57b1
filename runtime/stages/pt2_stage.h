// torch.export stages (.pt2, ExportedProgram): the artifacts ppc emits for
// .pt2 models, run by Pt2Program (every node through LibTorch's dispatcher),
// so they train with LibTorch's autograd like the other formats.
#pragma once

#include "runtime/stages/stage_module.h"

namespace ppc::runtime {

/// Loads .pt2 stage `stage` of a verified manifest: reads and plans it,
/// checks that its inputs, outputs and parameters are the manifest's.
std::unique_ptr<StageModule> load_pt2_stage(const LoadedManifest& manifest, int stage);

/// Reads every .pt2 stage's graph and resolves each node's operator (no
/// weights read): throws the ppc::Error naming the first node pprun cannot
/// run, its name and target. Run before any rank starts.
void check_pt2_stages(const LoadedManifest& manifest);

}  // namespace ppc::runtime
