// Fuzz targets for every parser of untrusted input. Each accepts any bytes:
// ppc::Error (bad input, reported to the user) is fine; anything else —
// a crash, a sanitizer report, another exception type — is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ppc::fuzz {

/// The bytes in a file of this process, /tmp/ppc_fuzz_<pid><suffix>, removed
/// when the process exits normally.
std::string scratch_file(const uint8_t* data, size_t size, const std::string& suffix);

void split_spec(const uint8_t* data, size_t size);
void manifest(const uint8_t* data, size_t size);
void onnx_model(const uint8_t* data, size_t size);
void ir_text(const uint8_t* data, size_t size);
void profile(const uint8_t* data, size_t size);       ///< pprun --profile output, read by --costs
void schedule_csv(const uint8_t* data, size_t size);  ///< pprun --schedule-file, torch's CSV
/// An ONNX model with its weights in a file beside it: the bytes before the
/// first kExternalDataSeparator are the model, those after it the file
/// "weights.bin" (without a separator, the model alone, no file).
void onnx_external(const uint8_t* data, size_t size);
inline constexpr const char* kExternalDataSeparator = "\n--ppc-external-data--\n";

// LibTorch's readers (fuzz_targets_torch.cpp; linked with LibTorch).
void torchscript(const uint8_t* data, size_t size);  ///< ppc split's TorchScript archive (torch.jit.save)
void pt_inputs(const uint8_t* data, size_t size);    ///< pprun --inputs: a torch.save'd dict of tensors
/// ppc split's torch.export archive (.pt2; no torch): the archive's bytes, or,
/// after kPt2RecordsMagic, its records ("name\n" then the data) separated by
/// kPt2RecordSeparator, which the target writes as a valid zip.
void pt2_archive(const uint8_t* data, size_t size);
inline constexpr const char* kPt2RecordsMagic = "ppc-pt2-records\n";
inline constexpr const char* kPt2RecordSeparator = "\n--ppc-record--\n";

}  // namespace ppc::fuzz
