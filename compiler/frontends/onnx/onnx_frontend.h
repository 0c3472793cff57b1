// ONNX frontend: an ONNX model file -> the partition IR. The ONNX types stay
// behind OnnxSource (onnx_source.h), which only the ONNX emitter opens.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/frontends/source_model.h"

namespace ppc::onnx_frontend {

class OnnxSource;

/// Loads, checks (ONNX checker) and shape-infers (with data propagation) the
/// model at `path`, then lowers it to the IR. `display_name` is used in
/// messages. Problems the user must fix throw ppc::Error naming the file (and
/// node) — unreadable file, not ONNX, checker failure, unsupported features.
/// Notes (e.g. shape inference gaps) go to `notes`.
std::unique_ptr<SourceModel> load_onnx(const std::string& path, const std::string& display_name,
                                       std::vector<std::string>* notes);

}  // namespace ppc::onnx_frontend
