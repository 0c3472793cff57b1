// ONNX frontend: an ONNX model file -> the partition IR. The ONNX types stay
// behind OnnxSource (onnx_source.h), which only the ONNX emitter opens.
#pragma once

#include <map>
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
/// `cost_dims` (symbolic input dim -> size): node FLOPs and value sizes for the
/// cost model come from a second shape inference at that size (other symbolic
/// input dims, e.g. the batch, at 1), so sequence-length terms such as
/// attention's T x T are exact; the IR's own shapes stay symbolic.
std::unique_ptr<SourceModel> load_onnx(const std::string& path, const std::string& display_name,
                                       std::vector<std::string>* notes,
                                       const std::map<std::string, int64_t>& cost_dims = {});

}  // namespace ppc::onnx_frontend
