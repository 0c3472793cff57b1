// Writes one stage artifact in the source model's own format.
#pragma once

#include <string>

#include "compiler/analysis/partition.h"
#include "compiler/frontends/source_model.h"

namespace ppc {

/// What emit_stage wrote: the artifact's bytes and, for an ONNX model whose
/// weights were external data, the data file beside it (name and bytes).
struct EmittedStage {
  std::string bytes;
  std::string data_file, data_bytes;
};

/// Writes stage `stage` of `p` to `path` (the format follows `src`) and
/// verifies it (the ONNX checker with full shape inference, for ONNX). Returns
/// the bytes written so the caller can hash them. Throws ppc::Error when the
/// stage cannot be written or fails verification.
EmittedStage emit_stage(const SourceModel& src, const analysis::Partition& p, int stage, const std::string& path);

}  // namespace ppc
