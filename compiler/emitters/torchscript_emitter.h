// TorchScript stage emitter (see stage_emitter.h for the contract).
#pragma once

#include <string>

#include "compiler/analysis/partition.h"
#include "compiler/frontends/source_model.h"

namespace ppc {

/// Writes stage `stage` of `p` as a TorchScript module (class
/// `__torch__.ppc.Stage<i>`) whose forward takes the stage's inputs in order
/// and returns its outputs (a tuple when several). The params it stores are
/// registered under flat names (dots -> '_'); the archive's extra file
/// `ppc_stage.json` maps them back to the source's dotted names. A `training`
/// attribute drives the cloned nodes' dropout/batch-norm flags. Throws
/// ppc::Error when a non-tensor value would cross a stage boundary.
/// `src` must come from the TorchScript frontend.
std::string emit_torchscript_stage(const SourceModel& src, const analysis::Partition& p, int stage,
                                   const std::string& path);

}  // namespace ppc
