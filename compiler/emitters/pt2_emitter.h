// .pt2 stage emitter (see stage_emitter.h for the contract).
#pragma once

#include <string>

#include "compiler/analysis/partition.h"
#include "compiler/emitters/stage_emitter.h"
#include "compiler/frontends/source_model.h"

namespace ppc {

/// Writes stage `stage` of `p` as a torch.export archive that
/// torch.export.load opens: an ExportedProgram whose user inputs are the
/// stage's inputs (the manifest's order, the source's tensor names), whose
/// outputs are the stage's outputs (a tuple), with the stage's parameters,
/// buffers and constants under their state names (weights as raw bytes, as
/// torch.export.save writes them), the source's nodes verbatim, and the
/// symbolic sizes the stage uses recomputed from its own input tensors.
/// Sample inputs are zeros at the export's example sizes. Throws ppc::Error
/// for what a stage cannot express (a symbolic size no input of the stage
/// carries; a tie transmitted between stages). `src` must come from the .pt2
/// frontend.
EmittedStage emit_pt2_stage(const SourceModel& src, const analysis::Partition& p, int stage, const std::string& path);

}  // namespace ppc
