// Optimizers with PyTorch's update rules (torch.optim.SGD / Adam / AdamW,
// 1.13 single-tensor forms), so pipelined training matches a PyTorch run of the
// unsplit model. State is a flat dict of tensors ("<param>.exp_avg", ...), the
// same on every rank for replicated (tied) parameters.
#pragma once

#include "runtime/stages/stage_module.h"

namespace ppc::runtime {

struct OptimizerOptions {
  std::string kind = "sgd";  ///< sgd | adam | adamw
  double lr = 0.01;
  double momentum = 0.0;      ///< sgd only
  double weight_decay = 0.0;  ///< L2 for sgd/adam, decoupled for adamw
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

class Optimizer {
 public:
  /// Throws ppc::Error on an unknown kind or out-of-range hyper-parameters.
  Optimizer(OptimizerOptions options, std::vector<NamedTensor> params);
  /// One update of every parameter whose .grad is defined (as torch.optim,
  /// parameters without a gradient are left alone, their state too).
  void step();
  /// Drops every gradient (set_to_none).
  void zero_grad();
  /// The state: per parameter "<name>.momentum_buffer" (sgd with momentum) or
  /// "<name>.step", "<name>.exp_avg", "<name>.exp_avg_sq" (adam/adamw).
  std::vector<NamedTensor> state() const;
  /// Restores state(); every key must belong to a parameter of this optimizer
  /// with the matching shape. `where` names the source in errors.
  void load_state(const std::vector<NamedTensor>& state, const std::string& where);
  const OptimizerOptions& options() const { return options_; }

 private:
  struct Slot {
    std::string name;
    at::Tensor param;
    at::Tensor momentum_buffer, exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  OptimizerOptions options_;
  std::vector<Slot> slots_;
};

}  // namespace ppc::runtime
