// ONNX external data: initializers whose bytes live in a file beside the
// model (what torch 2.x's exporter writes by default). ppc reads them when it
// splits and writes each stage's own data file; pprun reads a stage's.
#pragma once

#include <string>

#include "schemas/onnx_proto.h"

namespace ppc::onnx_data {

/// Moves the bytes of every initializer of `model`'s main graph that is
/// stored externally into its raw_data, so the model stands alone in memory.
/// Locations are ONNX's: a relative path below `model_dir`, with optional
/// offset and length. Returns whether any initializer was external. Throws
/// ppc::Error ("<display>: initializer 'w': ...") for a missing file, a path
/// leaving the model's folder, or a range past the file's end.
bool internalize(onnx::ModelProto& model, const std::string& model_dir, const std::string& display);

/// The reverse, for writing: every initializer of at least `threshold` bytes
/// gets location `data_file` (a plain file name beside the model) at the next
/// offset; returns the bytes to write to that file (empty if none moved).
std::string externalize(onnx::ModelProto& model, const std::string& data_file, size_t threshold = 1024);

}  // namespace ppc::onnx_data
