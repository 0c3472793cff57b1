// ONNX operators as ATen calls: the kernel table behind OnnxGraph. Internal
// to runtime/stages/ (it includes the ONNX protobuf types).
//
// A kernel is built once per node at load time from the node's attributes
// (parsed into captured values, so running it does no string lookups), and
// runs on tensors addressed by slot indices. Every kernel is written with
// differentiable ATen operations, so LibTorch's autograd gives the backward.
#pragma once

#include <ATen/core/Tensor.h>
#include "schemas/onnx_proto.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace ppc::runtime::onnx_ops {

/// The tensors a kernel reads and writes while it runs: slots of the
/// executor's value table, addressed through the step's index lists.
struct KernelIO {
  std::vector<at::Tensor>& slots;
  const std::vector<int>& in;   ///< slot per node input; -1 for an absent optional input
  const std::vector<int>& out;  ///< slot per node output; -1 for an unused output
  bool training;                ///< the stage's training flag (Dropout, BatchNormalization)

  size_t num_inputs() const { return in.size(); }
  bool has(size_t i) const { return i < in.size() && in[i] >= 0; }
  const at::Tensor& operator[](size_t i) const { return slots[in[i]]; }
  bool wants(size_t j) const { return j < out.size() && out[j] >= 0; }
  void set(size_t j, at::Tensor t) const {
    if (wants(j)) slots[out[j]] = std::move(t);
  }
};

using Kernel = std::function<void(const KernelIO&)>;

/// Thrown while building a kernel: the node cannot be executed (unsupported
/// attribute value, missing input, ...). OnnxGraph adds the node's place.
struct Unsupported : std::runtime_error {
  explicit Unsupported(const std::string& m) : std::runtime_error(m) {}
};

/// Attribute access for a kernel builder. Every attribute a builder reads is
/// marked; one it never reads is an unsupported attribute (checked after the
/// builder returns), so a new attribute cannot be silently ignored.
class NodeCtx {
 public:
  NodeCtx(const onnx::NodeProto& node, int opset, std::vector<const at::Tensor*> const_inputs);
  const onnx::NodeProto& node() const { return node_; }
  int opset() const { return opset_; }
  size_t num_inputs() const { return static_cast<size_t>(node_.input_size()); }
  bool has_input(size_t i) const { return i < num_inputs() && !node_.input(static_cast<int>(i)).empty(); }
  size_t num_outputs() const { return static_cast<size_t>(node_.output_size()); }
  bool has_output(size_t j) const { return j < num_outputs() && !node_.output(static_cast<int>(j)).empty(); }
  /// The input's value when it is known at load time (an initializer that
  /// never changes or a Constant), else nullptr.
  const at::Tensor* const_input(size_t i) const { return i < const_inputs_.size() ? const_inputs_[i] : nullptr; }

  bool has(const std::string& name) const;
  int64_t i(const std::string& name, int64_t dflt);
  float f(const std::string& name, float dflt);
  std::string s(const std::string& name, const std::string& dflt);
  std::optional<std::vector<int64_t>> ints(const std::string& name);
  std::optional<std::vector<float>> floats(const std::string& name);
  /// A tensor attribute (Constant's value, ConstantOfShape's value).
  std::optional<at::Tensor> t(const std::string& name);
  /// Throws Unsupported naming the first attribute no builder call read.
  void check_all_read() const;

  void require_inputs(size_t min, size_t max) const;
  void require_outputs(size_t max) const;

 private:
  const onnx::AttributeProto* find(const std::string& name, onnx::AttributeProto_AttributeType type);
  const onnx::NodeProto& node_;
  int opset_;
  std::vector<const at::Tensor*> const_inputs_;
  std::set<std::string> read_;
};

/// Builds the kernel of a node of the default domain, or throws Unsupported.
Kernel build_kernel(NodeCtx& ctx);

/// True when the op type is in the supported set (at any opset).
bool is_supported(const std::string& op_type);

/// The inputs of an op that its kernel reads on the host as sizes, axes or
/// scalars (Reshape's shape, Slice's starts/ends/axes/steps, Clip's bounds,
/// ...): bit i for input i. On a device the executor leaves them where they
/// are (shape arithmetic stays on the host) and moves only the others.
uint32_t host_inputs(const std::string& op_type);

/// Ops whose outputs never carry gradient (shapes, comparisons, indices):
/// used to find the initializers that need no gradient.
bool is_nondifferentiable(const std::string& op_type);

/// ONNX TensorProto <-> ATen.
at::Tensor tensor_from_proto(const onnx::TensorProto& t, const std::string& where);
void tensor_to_proto(const at::Tensor& value, onnx::TensorProto& t);
at::ScalarType scalar_type_of(int onnx_elem_type, const std::string& where);

}  // namespace ppc::runtime::onnx_ops
