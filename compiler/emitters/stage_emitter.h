// Writes one stage artifact in the source model's own format.
#pragma once

#include <string>

#include "compiler/analysis/partition.h"
#include "compiler/frontends/source_model.h"

namespace ppc {

/// Writes stage `stage` of `p` to `path` (the format follows `src`) and
/// verifies it (the ONNX checker with full shape inference, for ONNX). Returns
/// the bytes written so the caller can hash them. Throws ppc::Error when the
/// stage cannot be written or fails verification.
std::string emit_stage(const SourceModel& src, const analysis::Partition& p, int stage, const std::string& path);

}  // namespace ppc
