// ONNX's protobuf types under the name `onnx::`, whatever C++ namespace the
// ONNX library was built with. ppc builds its own ONNX under `onnx_ppc`
// (tools/build_onnx.sh): Debian's LibTorch 1.13 links Debian's libonnx 1.12
// under `onnx`, and two libraries under one proto package abort at start-up.
// Header only: the targets that include it link ONNX themselves.
#pragma once

#include <onnx/onnx_pb.h>

#ifdef PPC_ONNX_NAMESPACE_ALIAS
namespace onnx = ONNX_NAMESPACE;
#endif
