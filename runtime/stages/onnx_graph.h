// An ONNX graph executed on ATen: parsed and planned once, then run node by
// node through precomputed kernels. Differentiable (LibTorch's autograd
// records the ATen calls), so ONNX stages train. No ONNX types in this header.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "runtime/stages/node_time.h"

namespace ppc::runtime {

class OnnxGraph {
 public:
  struct Options {
    /// Only parse and check every node against the supported set (no
    /// initializer tensors are built): the check pprun runs before any rank
    /// starts.
    bool check_only = false;
    /// Float initializers that are not to be trained (the manifest's
    /// params[].trainable false: an exporter's constants, buffers).
    std::set<std::string> frozen;
  };

  /// Parses the ONNX model at `path` and plans its execution. Throws
  /// ppc::Error naming the file, and for an unsupported node its name, op
  /// type and opset: "stage1.onnx: node '/h.0/Foo' (Foo, opset 17):
  /// unsupported op".
  static std::unique_ptr<OnnxGraph> load(const std::string& path, const Options& options);
  static std::unique_ptr<OnnxGraph> load(const std::string& path) { return load(path, Options{}); }
  ~OnnxGraph();

  /// Graph inputs (without initializers) and outputs, in graph order.
  const std::vector<std::string>& input_names() const;
  const std::vector<std::string>& output_names() const;
  int opset() const;
  /// Number of nodes executed per run (Constant nodes and nodes computed
  /// from constants only are evaluated once at load time).
  size_t num_steps() const;

  /// Runs the graph: `inputs` in input_names() order, outputs in
  /// output_names() order. Records autograd when grad mode is on. Not
  /// reentrant (one run at a time). Throws ppc::Error naming the failing node.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);

  /// Node timing (for `pprun --profile`): while on, run() adds each step's
  /// wall time to its node, and hooks each output that requires grad so that
  /// a backward through it can be timed per node (end_backward()). Turning
  /// it on clears the totals.
  void set_timing(bool on);
  /// Call after each backward through outputs of timed runs: LibTorch's CPU
  /// autograd runs a step's backward right after the gradient of the step's
  /// output is complete, so the time from that moment to the next such moment
  /// (to now, for the last) is the step's backward.
  void end_backward();
  /// Microseconds spent per node since timing was turned on, in execution
  /// order, under the node's name (its first output's where it has none). A
  /// fused kernel's time is its pattern's last node's; nodes evaluated at
  /// load time (constants) are absent.
  std::vector<NodeTime> node_times_us() const;

  /// Moves the graph to `device` (once, after loading; run() then takes its
  /// inputs there and returns its outputs there). Floating-point initializers
  /// and load-time constants move (parameters keep requires_grad; parameters()
  /// and buffers() return the moved tensors, live as before); integer and bool
  /// ones stay on the host, where shape arithmetic (Shape -> Gather -> Concat
  /// -> Reshape) keeps running without reading the device. While running, a
  /// node that combines a host tensor (not a 0-dim one) with device tensors
  /// gets it on the device: a constant's copy made once, at its first such
  /// use; a computed one's each time. Inputs a kernel reads on the host as
  /// sizes, axes or scalars (onnx_ops::host_inputs) are never moved.
  void to(const c10::Device& device);
  const c10::Device& device() const;
  /// Per graph input (input_names() order): whether it is only read on the
  /// host as sizes, axes or scalars, directly or through arithmetic (a shape
  /// vector an earlier stage computed: Concat -> Reshape's shape). On a device such an input is best given on the host:
  /// one on the device is copied to the host where it is read (a wait for
  /// the device).
  std::vector<char> inputs_read_on_host() const;

  /// Dropout and BatchNormalization (training_mode=1) follow this flag.
  void set_training(bool training);
  bool training() const;

  /// Float initializers that can receive a gradient (some differentiable path
  /// leads from them to a graph output), under their initializer names, in
  /// initializer order; they require grad. Updating them in place updates
  /// the graph.
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;
  /// All other initializers (integer/bool ones, batch-norm running
  /// statistics, float ones no gradient reaches, e.g. masks compared with
  /// Equal), likewise live.
  std::vector<std::pair<std::string, at::Tensor>> buffers() const;

  /// Writes the model with the current initializer values; it is checked by
  /// the ONNX checker first. Identical values give identical bytes.
  void save(const std::string& path) const;

 private:
  struct Impl;
  explicit OnnxGraph(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ppc::runtime
