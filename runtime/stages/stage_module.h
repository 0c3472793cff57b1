// A pipeline stage as the engine sees it: tensors in, tensors out, named
// parameters and buffers, a training flag, and a way to write itself back.
// The engine never sees TorchScript or ONNX types, so ONNX stages (executed on
// ATen) plug in behind the same interface.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/manifest/stage_map.h"
#include "runtime/stages/node_time.h"

namespace ppc::runtime {

using NamedTensor = std::pair<std::string, at::Tensor>;

class StageModule {
 public:
  virtual ~StageModule();
  /// The stage's index in the manifest.
  virtual int index() const = 0;
  /// Runs the stage on `inputs` (the manifest's stage input order) and
  /// returns its outputs (the manifest's output order). Records the autograd
  /// graph when grad mode is on, so a backward from the outputs reaches the
  /// parameters and every input that requires grad.
  virtual std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs) = 0;
  /// Moves the parameters and buffers to `device`, once, after loading and
  /// before the engine reads parameters(): forward() then takes its inputs on
  /// that device and returns its outputs there (integer values the stage only
  /// reads as sizes may stay on the host). save() writes host copies.
  virtual void to(const c10::Device& device) = 0;
  /// Per input (the manifest's order): the stage reads it only on the host,
  /// as sizes (a shape vector), so on a GPU it is best given in host memory.
  /// Empty: none.
  virtual std::vector<bool> inputs_on_host() const { return {}; }
  /// Switches dropout / batch-norm behaviour (train() / eval() in PyTorch).
  virtual void set_training(bool training) = 0;
  /// Trainable parameters under their artifact names (the manifest's
  /// params[].name), in a fixed order. The tensors are the live ones: updating
  /// them in place updates the stage.
  virtual std::vector<NamedTensor> parameters() = 0;
  /// Non-trainable state (batch-norm running statistics, masks), likewise.
  virtual std::vector<NamedTensor> buffers() = 0;
  /// Per-node timing (pprun --profile): on clears the totals. Modules that
  /// cannot time their nodes (TorchScript) ignore it.
  virtual void set_node_timing(bool /*on*/) {}
  /// Called by the engine after each backward through this stage's outputs
  /// while timing is on: closes that backward's per-node times.
  virtual void end_backward() {}
  /// Forward and backward microseconds per node since timing was turned on,
  /// by node name; empty where the module cannot say.
  virtual std::vector<NodeTime> node_times_us() const { return {}; }
  /// Writes the stage, with its current parameter and buffer values, as an
  /// artifact of the same format to `path`.
  virtual void save(const std::string& path) = 0;
};

/// Position of each name the manifest lists (`want`) among the artifact's
/// (`have`): inputs or outputs (`what`) matched by name, as a stage saved by
/// another tool may order them differently. Throws ppc::Error naming `path`
/// when the counts differ or a name is missing.
std::vector<size_t> manifest_order(const std::vector<std::string>& want, const std::vector<std::string>& have,
                                   const std::string& path, const char* what);

/// Throws ppc::Error naming `path` when a parameter or buffer that the
/// manifest lists for `stage` is not among the artifact's (`have`).
void check_manifest_params(const manifest::Stage& info, const std::vector<std::string>& have, const std::string& path,
                           int stage);

/// Loads stage `stage` of a verified manifest, in the format the manifest's
/// source names. Throws ppc::Error naming the artifact when it cannot be
/// loaded or does not match the manifest (missing parameters).
std::unique_ptr<StageModule> load_stage(const LoadedManifest& manifest, int stage);

/// Throws the ppc::Error load_stage() would throw for a stage format this
/// build cannot execute, without loading anything (checked before ranks start).
void check_stage_format(const LoadedManifest& manifest);

}  // namespace ppc::runtime
