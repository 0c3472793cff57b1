// Fuzz targets for every parser of untrusted input. Each accepts any bytes:
// ppc::Error (bad input, reported to the user) is fine; anything else —
// a crash, a sanitizer report, another exception type — is a bug.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ppc::fuzz {

void split_spec(const uint8_t* data, size_t size);
void manifest(const uint8_t* data, size_t size);
void onnx_model(const uint8_t* data, size_t size);
void ir_text(const uint8_t* data, size_t size);
void profile(const uint8_t* data, size_t size);       ///< pprun --profile output, read by --costs
void schedule_csv(const uint8_t* data, size_t size);  ///< pprun --schedule-file, torch's CSV

}  // namespace ppc::fuzz
