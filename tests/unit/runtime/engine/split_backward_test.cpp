// The zero-bubble schedules' split backward (runtime/engine/split_backward.h):
// I then W give the gradients of one autograd backward, and W computes no
// operator on the way to the inputs again.
#include "runtime/engine/split_backward.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace {

using ppc::runtime::SplitBackward;

/// The identity, counting its backward calls: an operator on the way to the inputs.
struct Counted : torch::autograd::Function<Counted> {
  static int calls;
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& x) { return x.clone(); }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list g) {
    ++calls;
    return {g[0]};
  }
};
int Counted::calls = 0;

/// x * w, counting the gradients of x it computes: an operator on the way to
/// the inputs that also reads a weight (a restart of W).
struct ScaleCounted : torch::autograd::Function<ScaleCounted> {
  static int input_grads;
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    ctx->save_for_backward({x, w});
    return x * w;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto saved = ctx->get_saved_variables();
    at::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      ++input_grads;
      gx = g[0] * saved[1];
    }
    if (ctx->needs_input_grad(1)) gw = (g[0] * saved[0]).sum(0);
    return {gx, gw};
  }
};
int ScaleCounted::input_grads = 0;

at::Tensor param(std::vector<int64_t> shape, at::Generator& gen) { return at::randn(shape, gen).requires_grad_(true); }

/// A stage's forward: its outputs (roots) for leaf inputs and params.
using Forward = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&, const std::vector<at::Tensor>&)>;

struct Grads {
  std::vector<at::Tensor> inputs, params;
  bool restarts = false;  ///< W restarted inside the graph
};

/// One backward of everything, as autograd::grad computes it.
Grads full(const Forward& f, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ps,
           const std::vector<at::Tensor>& gs) {
  auto ys = f(xs, ps);
  std::vector<at::Tensor> all = xs;
  all.insert(all.end(), ps.begin(), ps.end());
  auto g = torch::autograd::grad(ys, all, gs, false, false, /*allow_unused=*/true);
  return {{g.begin(), g.begin() + xs.size()}, {g.begin() + xs.size(), g.end()}};
}

Grads split(const Forward& f, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ps,
            const std::vector<at::Tensor>& gs, int* w_calls = nullptr) {
  SplitBackward sb;
  Grads r;
  for (const at::Tensor& p : ps) p.mutable_grad() = at::Tensor();
  r.inputs = sb.input_pass(f(xs, ps), gs, xs, ps);
  r.restarts = sb.restarts();
  for (const at::Tensor& p : ps) EXPECT_FALSE(p.grad().defined()) << "I touched a weight's gradient";
  const int before = Counted::calls;
  sb.weight_pass(ps);
  if (w_calls) *w_calls = Counted::calls - before;
  for (const at::Tensor& p : ps) r.params.push_back(p.grad());
  return r;
}

void expect_equal(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(what + " " + std::to_string(i));
    ASSERT_EQ(got[i].defined(), want[i].defined());
    if (want[i].defined()) { EXPECT_TRUE(at::allclose(got[i], want[i], 1e-6, 1e-7)) << (got[i] - want[i]).abs().max(); }
  }
}

/// I then W against one backward: the same input and param gradients.
Grads split_like_full(const Forward& f, const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ps,
                      const std::vector<at::Tensor>& gs, int* w_calls = nullptr) {
  Grads want = full(f, xs, ps, gs);
  Grads got = split(f, xs, ps, gs, w_calls);
  expect_equal(got.inputs, want.inputs, "input");
  expect_equal(got.params, want.params, "param");
  return got;
}

TEST(SplitBackward, WeightPassRestartsAtEachLayerWithoutRecomputingTheInputPath) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  std::vector<at::Tensor> ps = {param({8, 6}, gen), param({8}, gen), param({8, 8}, gen), param({8}, gen),
                                param({8}, gen),    param({8}, gen), param({5, 8}, gen)};
  Forward f = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& p) {
    at::Tensor h = at::relu(at::linear(Counted::apply(x[0]), p[0], p[1]));
    h = at::linear(Counted::apply(h), p[2], p[3]);
    // layer_norm's backward node has three inputs, of which only the first gets a gradient.
    h = at::layer_norm(Counted::apply(h), {8}, p[4], p[5]);
    return std::vector<at::Tensor>{at::linear(Counted::apply(h), p[6])};
  };
  std::vector<at::Tensor> xs = {at::randn({4, 6}, gen).requires_grad_(true)};
  std::vector<at::Tensor> gs = {at::randn({4, 5}, gen)};
  int w_calls = -1;
  Grads got = split_like_full(f, xs, ps, gs, &w_calls);
  EXPECT_TRUE(got.restarts);
  EXPECT_EQ(w_calls, 0) << "W ran operators on the way to the inputs again";
}

TEST(SplitBackward, WeightPassComputesNoInputGradientAtARestart) {
  // Three layers in a chain: W restarts at each, and must ask none of them
  // for the gradient of its input (I computed those, once each).
  at::Generator gen = at::detail::createCPUGenerator(7);
  std::vector<at::Tensor> ps = {param({6}, gen), param({6}, gen), param({6}, gen)};
  Forward f = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& p) {
    at::Tensor h = at::tanh(ScaleCounted::apply(x[0], p[0]));
    h = at::tanh(ScaleCounted::apply(h, p[1]));
    return std::vector<at::Tensor>{ScaleCounted::apply(h, p[2])};
  };
  std::vector<at::Tensor> xs = {at::randn({4, 6}, gen).requires_grad_(true)};
  std::vector<at::Tensor> gs = {at::randn({4, 6}, gen)};
  Grads want = full(f, xs, ps, gs);
  SplitBackward sb;
  const int before_i = ScaleCounted::input_grads;
  std::vector<at::Tensor> gi = sb.input_pass(f(xs, ps), gs, xs, ps);
  EXPECT_EQ(ScaleCounted::input_grads - before_i, 3);
  ASSERT_TRUE(sb.restarts());
  const int before_w = ScaleCounted::input_grads;
  sb.weight_pass(ps);
  EXPECT_EQ(ScaleCounted::input_grads - before_w, 0) << "W computed input gradients again";
  expect_equal(gi, want.inputs, "input");
  expect_equal({ps[0].grad(), ps[1].grad(), ps[2].grad()}, want.params, "param");
}

TEST(SplitBackward, WeightPassesOfTwoMicroBatchesSumInTheWeightsGradients) {
  // As the schedules run them: both I passes, then both W passes.
  at::Generator gen = at::detail::createCPUGenerator(8);
  std::vector<at::Tensor> ps = {param({6, 5}, gen), param({6}, gen), param({4, 6}, gen)};
  Forward f = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& p) {
    return std::vector<at::Tensor>{at::linear(at::tanh(at::linear(x[0], p[0], p[1])), p[2])};
  };
  std::vector<at::Tensor> x1 = {at::randn({3, 5}, gen).requires_grad_(true)};
  std::vector<at::Tensor> x2 = {at::randn({3, 5}, gen).requires_grad_(true)};
  std::vector<at::Tensor> g1 = {at::randn({3, 4}, gen)}, g2 = {at::randn({3, 4}, gen)};
  Grads w1 = full(f, x1, ps, g1), w2 = full(f, x2, ps, g2);
  SplitBackward s1, s2;
  expect_equal(s1.input_pass(f(x1, ps), g1, x1, ps), w1.inputs, "input 1");
  expect_equal(s2.input_pass(f(x2, ps), g2, x2, ps), w2.inputs, "input 2");
  EXPECT_TRUE(s1.restarts() && s2.restarts());
  s1.weight_pass(ps);
  s2.weight_pass(ps);
  for (size_t k = 0; k < ps.size(); ++k) {
    SCOPED_TRACE(k);
    ASSERT_TRUE(ps[k].grad().defined());
    EXPECT_TRUE(at::allclose(ps[k].grad(), w1.params[k] + w2.params[k], 1e-6, 1e-7));
  }
  EXPECT_FALSE(x1[0].grad().defined()) << "W accumulated into an input";
}

TEST(SplitBackward, WeightBranchesAtAdditionsAndOutputsOfWeightsAlone) {
  // A position table added to the input (the restart is the addition), a
  // second output computed from weights alone, a third computed from the
  // first, a weight read by two layers on parallel branches, and a param no
  // output reads.
  at::Generator gen = at::detail::createCPUGenerator(4);
  std::vector<at::Tensor> ps = {param({4, 6}, gen), param({6, 6}, gen), param({3, 6}, gen), param({2}, gen)};
  Forward f = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& p) {
    at::Tensor h = x[0] + p[0];
    at::Tensor y = at::matmul(h, p[1]) + at::matmul(at::tanh(h), p[1]);
    return std::vector<at::Tensor>{y, at::sin(p[2]) * 3, at::tanh(y)};
  };
  std::vector<at::Tensor> xs = {at::randn({4, 6}, gen).requires_grad_(true)};
  std::vector<at::Tensor> gs = {at::randn({4, 6}, gen), at::randn({3, 6}, gen), at::randn({4, 6}, gen)};
  Grads got = split_like_full(f, xs, ps, gs);
  EXPECT_TRUE(got.restarts);
  EXPECT_FALSE(got.params[3].defined());
}

TEST(SplitBackward, AWeightReadTwiceOnOnePathTakesThePlainWay) {
  // Restarting at the second read would count the first read's share twice.
  at::Generator gen = at::detail::createCPUGenerator(5);
  std::vector<at::Tensor> ps = {param({6, 6}, gen), param({6}, gen)};
  Forward f = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& p) {
    at::Tensor h = at::tanh(at::matmul(x[0], p[0]) + p[1]);
    return std::vector<at::Tensor>{at::matmul(h, p[0])};
  };
  std::vector<at::Tensor> xs = {at::randn({4, 6}, gen).requires_grad_(true)};
  std::vector<at::Tensor> gs = {at::randn({4, 6}, gen)};
  Grads got = split_like_full(f, xs, ps, gs);
  EXPECT_FALSE(got.restarts);
}

TEST(SplitBackward, WithoutInputGradientsWeightPassIsTheWholeBackward) {
  at::Generator gen = at::detail::createCPUGenerator(6);
  std::vector<at::Tensor> ps = {param({6, 6}, gen)};
  Forward f = [](const std::vector<at::Tensor>& x, const std::vector<at::Tensor>& p) {
    return std::vector<at::Tensor>{at::matmul(x[0], p[0])};
  };
  std::vector<at::Tensor> xs = {at::randn({4, 6}, gen)};  // the first stage: data
  std::vector<at::Tensor> gs = {at::randn({4, 6}, gen)};
  Grads got = split(f, xs, ps, gs);
  EXPECT_FALSE(got.restarts);
  ASSERT_EQ(got.inputs.size(), 1u);
  EXPECT_FALSE(got.inputs[0].defined());
  ASSERT_TRUE(got.params[0].defined());
  EXPECT_TRUE(at::allclose(got.params[0], at::matmul(xs[0].t(), gs[0]), 1e-6, 1e-7));
}

}  // namespace
