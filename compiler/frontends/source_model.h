// The format-agnostic handle a frontend returns: the IR plus whatever the
// matching emitter needs to write stages in the source's own format.
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace ppc {

class SourceModel {
 public:
  virtual ~SourceModel() = default;
  /// The IR lowered from the source (topologically sorted, verified).
  virtual const ir::Graph& graph() const = 0;
  /// The same graph, for passes that refine it (declared input types).
  virtual ir::Graph& mutable_graph() = 0;
  /// "onnx" | "torchscript" | "pt2"
  virtual const char* format() const = 0;
  /// File extension of stage artifacts, with the dot (".onnx", ".pt").
  virtual const char* artifact_extension() const = 0;
  /// ONNX default-domain opset (0 for other formats).
  virtual int64_t opset() const { return 0; }
  /// Name under which param `index` is stored in a stage artifact. ONNX keeps
  /// the source name; TorchScript attributes cannot contain dots, so
  /// "layer0.lin.weight" is stored as "layer0_lin_weight". Unique per model.
  virtual std::string artifact_param_name(int index) const {
    return graph().params.at(static_cast<size_t>(index)).name;
  }
};

}  // namespace ppc
