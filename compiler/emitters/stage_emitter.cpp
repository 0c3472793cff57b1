// Dispatch to the format-specific emitters; this file includes neither ONNX
// nor LibTorch.
#include "compiler/emitters/stage_emitter.h"

#include <cstring>

#include "compiler/emitters/onnx_emitter.h"
#include "compiler/emitters/pt2_emitter.h"
#include "compiler/frontends/torchscript/plugin.h"
#include "schemas/error.h"

namespace ppc {

EmittedStage emit_stage(const SourceModel& src, const analysis::Partition& p, int stage, const std::string& path) {
  if (std::strcmp(src.format(), "onnx") == 0) return emit_onnx_stage(src, p, stage, path);
  if (std::strcmp(src.format(), "pt2") == 0) return emit_pt2_stage(src, p, stage, path);
  if (std::strcmp(src.format(), "torchscript") == 0)
    return {torchscript_frontend::plugin().emit(src, p, stage, path), "", ""};
  throw Error(std::string("no stage emitter for format '") + src.format() + "'");
}

}  // namespace ppc
