// A torch.export program (.pt2 archive, ExportedProgram schema major 8)
// executed through LibTorch's dispatcher: each ATen node's operator is resolved
// once at load (c10::Dispatcher::findSchema) and called boxed with the
// arguments built in the schema's order, so every ATen op runs through one
// path and LibTorch's autograd records the graph (the stages train). Symbolic
// ints (aten.sym_size, _operator arithmetic on them) are plain int64 at run
// time, so a batch size other than the export's works. No torch::jit types in
// this header.
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

class Pt2Program {
 public:
  struct Options {
    /// Only read the archive's graph and resolve every node's operator (no
    /// weights read): the check pprun runs before any rank starts.
    bool check_only = false;
    /// Parameters not to be trained (the manifest's params[].trainable false).
    std::set<std::string> frozen;
    /// Names to report a tied parameter under (the manifest's params[].name):
    /// of the fully qualified names that share one tensor, the one listed here.
    std::set<std::string> preferred;
  };

  /// Reads and plans the archive at `path`. Throws ppc::Error naming the file
  /// and the problem: not a readable archive, a schema major version other
  /// than 8, and for a node the executor cannot run its name and target:
  /// "stage1.pt2: node 'cond' (torch.ops.higher_order.cond): unsupported op: ...".
  static std::unique_ptr<Pt2Program> load(const std::string& path, const Options& options);
  static std::unique_ptr<Pt2Program> load(const std::string& path) { return load(path, Options{}); }
  ~Pt2Program();

  /// The user inputs and user outputs (graph value names), in signature order.
  const std::vector<std::string>& input_names() const;
  const std::vector<std::string>& output_names() const;
  /// Number of nodes executed per run.
  size_t num_nodes() const;

  /// Runs the program: `inputs` in input_names() order, outputs in
  /// output_names() order. Records autograd when grad mode is on. Inputs the
  /// program writes in place (directly or through a view) are copied first.
  /// Not reentrant. Throws ppc::Error naming the failing node.
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);

  /// Node timing (pprun --profile), as OnnxGraph's: while on, run() adds each
  /// node's wall time to it and hooks its first output that requires grad;
  /// end_backward() after each backward through timed runs splits the
  /// backward's time between the nodes. Turning it on clears the totals.
  void set_timing(bool on);
  void end_backward();
  /// Forward and backward microseconds per node (by node name), in order.
  std::vector<NodeTime> node_times_us() const;

  /// Moves the state (parameters, buffers, constants) to `device`, keeping
  /// ties and the tensors parameters() and buffers() return; factory
  /// operators then create their tensors there. save() writes host copies.
  void to(const c10::Device& device);

  /// The exported graph has the mode it was exported in baked into its
  /// arguments. Once this is called, every boolean operator argument named
  /// `train` or `training` (dropout, batch norm, ...) takes this flag instead;
  /// until then the program runs as exported. Python control flow on
  /// `self.training` was resolved at export and stays as it was.
  void set_training(bool training);

  /// Trainable parameters (each tensor once, tied names merged), under their
  /// fully qualified names, in signature order; they require grad. Live:
  /// updating them in place updates the program.
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;
  /// Buffers (persistent or not) and frozen parameters, likewise live.
  std::vector<std::pair<std::string, at::Tensor>> buffers() const;
  /// Every fully qualified name of a parameter, buffer or constant the
  /// archive holds (tied aliases included).
  std::vector<std::string> state_names() const;

  /// Writes the archive again with the current parameter, buffer and constant
  /// values: every record copied, the weight files' bytes replaced.
  void save(const std::string& path) const;

 private:
  struct Impl;
  explicit Pt2Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ppc::runtime
