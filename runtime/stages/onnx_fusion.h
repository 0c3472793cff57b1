// Load-time fusion of the decompositions torch's exporter writes for ops ATen
// has as one kernel: GELU (Div by sqrt 2, Erf, Add 1, Mul, Mul 0.5 -> at::gelu),
// its tanh approximation (GPT-2's gelu_new: Pow 3, Mul, Add, Mul, Tanh, Add 1,
// Mul, Mul 0.5 -> at::gelu(x, "tanh")), LayerNorm before opset 17 (ReduceMean, Sub, Pow 2, ReduceMean, Add eps,
// Sqrt, Div, Mul, Add -> at::layer_norm) and Linear on 3-D inputs (MatMul,
// Add bias -> at::addmm). Same function up to float rounding
// (and the same arithmetic as PyTorch's own modules); fewer, vectorised
// kernels and a smaller autograd graph. Internal to runtime/stages/.
#pragma once

#include "schemas/onnx_proto.h"

#include <map>
#include <string>
#include <vector>

#include "runtime/stages/onnx_ops.h"

namespace ppc::runtime::onnx_fusion {

struct Fused {
  onnx_ops::Kernel kernel;
  std::vector<std::string> inputs;  ///< value names the fused kernel reads
  const char* what;                 ///< "Gelu", "LayerNormalization", "MatMul+Add"
};

struct Fusions {
  std::map<int, Fused> at;     ///< node index (the pattern's last node) -> fused kernel writing its output
  std::vector<char> absorbed;  ///< per node: replaced by a fused kernel (not executed)
};

/// Finds the patterns whose intermediate values have no other use.
/// `constants`: the values of scalar initializers that are constants (not
/// trained: torch 2.x's exporter writes its scalars as initializers), taken
/// like those of Constant nodes.
Fusions find_fusions(const onnx::GraphProto& graph, const std::map<std::string, double>& constants = {});

}  // namespace ppc::runtime::onnx_fusion
