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

/// The serialized size from which a model keeps its weights in external data:
/// protobuf cannot write or read a message of 2 GiB or more, so the default is
/// 2 GiB - 1 byte less a margin of 64 MiB for the graph itself. The environment
/// variable PPC_ONNX_MAX_PROTO_BYTES (a positive number of bytes) lowers it,
/// so tests need not write 2 GB; a bad value is a ppc::Error naming it.
size_t max_proto_bytes();

/// Whether `model`, weights included, is at least max_proto_bytes() serialized.
bool too_large(const onnx::ModelProto& model);

}  // namespace ppc::onnx_data
