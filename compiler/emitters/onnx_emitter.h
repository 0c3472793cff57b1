// ONNX stage emitter (see stage_emitter.h for the contract).
#pragma once

#include <string>

#include "compiler/analysis/partition.h"
#include "compiler/emitters/stage_emitter.h"
#include "compiler/frontends/source_model.h"

namespace ppc {

/// Writes stage `stage` of `p` as a standalone ONNX model that passes the ONNX
/// checker with full shape inference. `src` must come from the ONNX frontend.
/// Where the source's weights were external data, the stage's initializers of
/// 1 KiB or more go to "<artifact>.data" beside it.
EmittedStage emit_onnx_stage(const SourceModel& src, const analysis::Partition& p, int stage, const std::string& path);

}  // namespace ppc
