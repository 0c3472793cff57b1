// A backward pass split in two for the zero-bubble schedules: the input
// gradients first (I, which the previous stage is waiting for), the weight
// gradients later (W), with nothing computed twice.
//
// Asking autograd for the weights' gradients from the stage's outputs again
// would run most of the backward a second time: a weight's gradient needs the
// gradient of the output of the operator that reads it, and that gradient
// is only reached through every later operator. Instead, the I pass also
// keeps, for every operator on the way to the inputs that reads weights
// through a branch of its own (a MatMul reading x and W: the branch to W),
// the gradient arriving at that operator; the W pass restarts autograd at
// those operators, on their weight branches alone: I cuts their edges to the
// inputs' side, so W is one autograd call that computes no input gradient.
//
// Where a weight reaches such an operator also along its input side (a
// weight read twice on one path, as a tie inside a stage can be), restarting
// there would count that weight's gradient twice: such a graph takes the
// plain way (W from the outputs again), as do stages without input gradients.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/edge.h>

#include <memory>
#include <utility>
#include <vector>

namespace ppc::runtime {

class SplitBackward {
 public:
  /// I: the gradients of `inputs` (leaves; undefined where unused) for the
  /// gradients `grads` of `roots`, keeping the graph and what W needs.
  /// `params`: the stage's trainable tensors, the list W is asked for.
  std::vector<at::Tensor> input_pass(std::vector<at::Tensor> roots, std::vector<at::Tensor> grads,
                                     const std::vector<at::Tensor>& inputs, const std::vector<at::Tensor>& params);
  /// W: adds the gradients of `params` (the same list as for input_pass) to
  /// their .grad, as a backward does; then the graph is let go.
  void weight_pass(const std::vector<at::Tensor>& params);

  /// Between input_pass and weight_pass: whether W restarts inside the graph
  /// (false: W runs from the outputs again). For tests.
  bool restarts() const { return !fallback_; }

 private:
  /// One restart point of W: gradients arriving at some edges, what they reach.
  struct Restart {
    torch::autograd::edge_list edges;
    std::vector<at::Tensor> grads;
    std::vector<size_t> params;  ///< indices into the params list
  };
  std::vector<Restart> restarts_;
  /// The edges from restarts to their input side, cut once I is done.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, size_t>> cuts_;
  std::vector<at::Tensor> roots_, grads_;
  bool fallback_ = true;
};

}  // namespace ppc::runtime
