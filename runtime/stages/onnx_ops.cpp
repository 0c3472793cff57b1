// The ONNX operators pprun executes, each as a few ATen calls. Builders parse
// attributes once (load time) into values the kernel lambda captures; kernels
// only touch tensors. Semantics follow the ONNX operator spec (opsets 7-17,
// with the opset-13 move of axes/split from attributes to inputs), broadcasting
// is numpy's (ATen's), negative axes count from the end.
#include "runtime/stages/onnx_ops.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>

namespace ppc::runtime::onnx_ops {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// Values a kernel reads on the host (sizes, axes, bounds). The executor keeps
// the inputs it reads so on the host (host_inputs()); one computed on a
// device is copied explicitly (never read through data_ptr: a segfault on CUDA).
at::Tensor on_host(const at::Tensor& t) { return t.is_cpu() ? t : t.to(at::kCPU); }

std::vector<int64_t> to_ints(const at::Tensor& t) {
  at::Tensor c = on_host(t).to(at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

at::Scalar host_item(const at::Tensor& t) { return on_host(t).item(); }

int64_t scalar_int(const at::Tensor& t) {
  if (t.numel() != 1) fail("expected a single value, got shape " + std::to_string(t.numel()) + " elements");
  return host_item(t).toLong();
}

int64_t norm_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    if (!(rank == 0 && axis == 0))
      fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> norm_axes(std::vector<int64_t> axes, int64_t rank) {
  for (auto& a : axes) a = norm_axis(a, rank);
  std::sort(axes.begin(), axes.end());
  return axes;
}

std::vector<int64_t> all_dims(int64_t rank) {
  std::vector<int64_t> d(static_cast<size_t>(rank));
  std::iota(d.begin(), d.end(), 0);
  return d;
}

bool is_float(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

std::string shape_str(at::IntArrayRef dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}
std::string shape_str(const at::Tensor& t) { return shape_str(t.sizes()); }

// --- padding helpers shared by Conv / pooling --------------------------------

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

AutoPad parse_auto_pad(NodeCtx& c) {
  std::string s = c.s("auto_pad", "NOTSET");
  if (s == "NOTSET") return AutoPad::NotSet;
  if (s == "SAME_UPPER") return AutoPad::SameUpper;
  if (s == "SAME_LOWER") return AutoPad::SameLower;
  if (s == "VALID") return AutoPad::Valid;
  throw Unsupported("auto_pad '" + s + "'");
}

// Spatial geometry of a sliding-window op: kernel, strides, dilations and the
// begin/end pads (resolved per call when auto_pad depends on the input size).
struct Window {
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  AutoPad auto_pad = AutoPad::NotSet;
  bool ceil_mode = false;

  void parse(NodeCtx& c, size_t spatial_from_kernel_attr) {
    auto_pad = parse_auto_pad(c);
    kernel = c.ints("kernel_shape").value_or(std::vector<int64_t>{});
    strides = c.ints("strides").value_or(std::vector<int64_t>{});
    dilations = c.ints("dilations").value_or(std::vector<int64_t>{});
    pads = c.ints("pads").value_or(std::vector<int64_t>{});
  }
  // Pads for an input of spatial sizes `in` (kernel sizes `k` resolved).
  std::vector<int64_t> resolve(const std::vector<int64_t>& in, const std::vector<int64_t>& k, std::vector<int64_t>& s,
                               std::vector<int64_t>& d) const {
    size_t n = in.size();
    s = strides.empty() ? std::vector<int64_t>(n, 1) : strides;
    d = dilations.empty() ? std::vector<int64_t>(n, 1) : dilations;
    if (s.size() != n || d.size() != n)
      fail("strides/dilations do not match the " + std::to_string(n) + " spatial dims");
    std::vector<int64_t> p(2 * n, 0);
    if (auto_pad == AutoPad::NotSet) {
      if (!pads.empty()) {
        if (pads.size() != 2 * n)
          fail("pads has " + std::to_string(pads.size()) + " values for " + std::to_string(n) + " spatial dims");
        p = pads;
      }
    } else if (auto_pad != AutoPad::Valid) {
      for (size_t i = 0; i < n; ++i) {
        int64_t out = (in[i] + s[i] - 1) / s[i];
        int64_t total = std::max<int64_t>(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in[i]);
        int64_t small = total / 2, big = total - small;
        p[i] = auto_pad == AutoPad::SameUpper ? small : big;
        p[i + n] = auto_pad == AutoPad::SameUpper ? big : small;
      }
    }
    return p;
  }
};

std::vector<int64_t> spatial_sizes(const at::Tensor& x) {
  if (x.dim() < 3) fail("expected an input of rank >= 3 (N, C, spatial...), got rank " + std::to_string(x.dim()));
  return std::vector<int64_t>(x.sizes().begin() + 2, x.sizes().end());
}

bool symmetric(const std::vector<int64_t>& p) {
  size_t n = p.size() / 2;
  for (size_t i = 0; i < n; ++i)
    if (p[i] != p[i + n]) return false;
  return true;
}

// at::constant_pad_nd's pad list (last dim first) for ONNX begin/end spatial pads.
std::vector<int64_t> torch_pads(const std::vector<int64_t>& p) {
  size_t n = p.size() / 2;
  std::vector<int64_t> out;
  for (size_t i = n; i-- > 0;) {
    out.push_back(p[i]);
    out.push_back(p[i + n]);
  }
  return out;
}

// --- builders ----------------------------------------------------------------

using Builder = Kernel (*)(NodeCtx&);

template <at::Tensor (*F)(const at::Tensor&)>
Kernel unary(NodeCtx& c) {
  c.require_inputs(1, 1);
  return [](const KernelIO& io) { io.set(0, F(io[0])); };
}

template <at::Tensor (*F)(const at::Tensor&, const at::Tensor&)>
Kernel binary(NodeCtx& c) {
  c.require_inputs(2, 2);
  return [](const KernelIO& io) { io.set(0, F(io[0], io[1])); };
}

at::Tensor add_(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
at::Tensor sub_(const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }
at::Tensor mul_(const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }
at::Tensor div_(const at::Tensor& a, const at::Tensor& b) {
  // Integer Div truncates (C semantics, as ONNX Runtime does).
  if (!is_float(a) && !is_float(b) && a.scalar_type() != at::kBool) return at::div(a, b, "trunc");
  return at::div(a, b);
}
at::Tensor pow_(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor y = at::pow(a, b);
  return y.scalar_type() == a.scalar_type() ? y : y.to(a.scalar_type());  // ONNX: the base's type
}
at::Tensor matmul_(const at::Tensor& a, const at::Tensor& b) { return at::matmul(a, b); }
at::Tensor eq_(const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }
at::Tensor lt_(const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }
at::Tensor gt_(const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }
at::Tensor le_(const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }
at::Tensor ge_(const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }
at::Tensor and_(const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }
at::Tensor or_(const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }
at::Tensor xor_(const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }

at::Tensor sqrt_(const at::Tensor& x) { return at::sqrt(x); }
at::Tensor neg_(const at::Tensor& x) { return at::neg(x); }
at::Tensor exp_(const at::Tensor& x) { return at::exp(x); }
at::Tensor log_(const at::Tensor& x) { return at::log(x); }
at::Tensor erf_(const at::Tensor& x) { return at::erf(x); }
at::Tensor tanh_(const at::Tensor& x) { return at::tanh(x); }
at::Tensor sigmoid_(const at::Tensor& x) { return at::sigmoid(x); }
at::Tensor relu_(const at::Tensor& x) { return at::relu(x); }
at::Tensor abs_(const at::Tensor& x) { return at::abs(x); }
at::Tensor reciprocal_(const at::Tensor& x) { return at::reciprocal(x); }
at::Tensor floor_(const at::Tensor& x) { return at::floor(x); }
at::Tensor ceil_(const at::Tensor& x) { return at::ceil(x); }
at::Tensor sin_(const at::Tensor& x) { return at::sin(x); }
at::Tensor cos_(const at::Tensor& x) { return at::cos(x); }
at::Tensor not_(const at::Tensor& x) { return at::logical_not(x); }
at::Tensor isnan_(const at::Tensor& x) { return at::isnan(x); }
at::Tensor softplus_(const at::Tensor& x) { return at::log1p(at::exp(-at::abs(x))) + at::relu(x); }
at::Tensor hardswish_(const at::Tensor& x) { return at::hardswish(x); }
at::Tensor sign_(const at::Tensor& x) { return at::sign(x); }

Kernel b_identity(NodeCtx& c) {
  c.require_inputs(1, 1);
  return [](const KernelIO& io) { io.set(0, io[0]); };
}

Kernel b_leaky_relu(NodeCtx& c) {
  c.require_inputs(1, 1);
  double alpha = c.f("alpha", 0.01f);
  return [alpha](const KernelIO& io) { io.set(0, at::leaky_relu(io[0], alpha)); };
}

Kernel b_elu(NodeCtx& c) {
  c.require_inputs(1, 1);
  double alpha = c.f("alpha", 1.0f);
  return [alpha](const KernelIO& io) { io.set(0, at::elu(io[0], alpha)); };
}

// Mod: fmod=0 takes the sign of the divisor (Python's %, integers only in
// ONNX), fmod=1 that of the dividend (C's fmod; required for floats). A float
// Mod with fmod=0 is invalid ONNX; it gets the divisor's sign like integers.
Kernel b_mod(NodeCtx& c) {
  c.require_inputs(2, 2);
  bool c_fmod = c.i("fmod", 0) != 0;
  if (c_fmod) return [](const KernelIO& io) { io.set(0, at::fmod(io[0], io[1])); };
  return [](const KernelIO& io) { io.set(0, at::remainder(io[0], io[1])); };
}

Kernel b_hard_sigmoid(NodeCtx& c) {
  c.require_inputs(1, 1);
  double alpha = c.f("alpha", 0.2f), beta = c.f("beta", 0.5f);
  return [alpha, beta](const KernelIO& io) { io.set(0, at::clamp(io[0] * alpha + beta, 0.0, 1.0)); };
}

Kernel b_gelu(NodeCtx& c) {
  c.require_inputs(1, 1);
  std::string approx = c.s("approximate", "none");
  if (approx != "none" && approx != "tanh") throw Unsupported("approximate '" + approx + "'");
  return [approx](const KernelIO& io) { io.set(0, at::gelu(io[0], approx)); };
}

Kernel b_softmax_like(NodeCtx& c, bool log) {
  c.require_inputs(1, 1);
  bool legacy = c.opset() < 13;  // before 13: coerced to 2-D at `axis`
  int64_t axis = c.i("axis", legacy ? 1 : -1);
  return [axis, legacy, log](const KernelIO& io) {
    const at::Tensor& x = io[0];
    int64_t a = norm_axis(axis, x.dim());
    if (!legacy) {
      io.set(0, log ? at::log_softmax(x, a) : at::softmax(x, a));
      return;
    }
    auto sizes = x.sizes();
    int64_t outer = 1;
    for (int64_t i = 0; i < a; ++i) outer *= sizes[i];
    at::Tensor flat = x.reshape({outer, -1});
    at::Tensor y = log ? at::log_softmax(flat, 1) : at::softmax(flat, 1);
    io.set(0, y.reshape(sizes));
  };
}
Kernel b_softmax(NodeCtx& c) { return b_softmax_like(c, false); }
Kernel b_log_softmax(NodeCtx& c) { return b_softmax_like(c, true); }

Kernel b_gemm(NodeCtx& c) {
  c.require_inputs(2, 3);
  double alpha = c.f("alpha", 1.0f), beta = c.f("beta", 1.0f);
  bool ta = c.i("transA", 0) != 0, tb = c.i("transB", 0) != 0;
  return [=](const KernelIO& io) {
    const at::Tensor& a = io[0];
    const at::Tensor& b = io[1];
    bool has_c = io.has(2);
    if (!ta && tb && alpha == 1.0 && (beta == 1.0 || !has_c)) {
      // What torch.nn.Linear runs: the same rounding as PyTorch.
      io.set(0, has_c ? at::linear(a, b, io[2]) : at::linear(a, b));
      return;
    }
    at::Tensor A = ta ? a.t() : a, B = tb ? b.t() : b;
    at::Tensor y;
    if (has_c && alpha == 1.0 && beta == 1.0) {
      y = at::addmm(io[2], A, B);
    } else {
      y = at::mm(A, B);
      if (alpha != 1.0) y = y * alpha;
      if (has_c) y = beta == 1.0 ? y + io[2] : y + io[2] * beta;
    }
    io.set(0, y);
  };
}

Kernel b_variadic(NodeCtx& c, int kind) {  // 0 Max, 1 Min, 2 Sum, 3 Mean
  if (c.num_inputs() < 1) throw Unsupported("needs at least one input");
  return [kind](const KernelIO& io) {
    at::Tensor y = io[0];
    for (size_t i = 1; i < io.num_inputs(); ++i) {
      if (kind == 0)
        y = at::maximum(y, io[i]);
      else if (kind == 1)
        y = at::minimum(y, io[i]);
      else
        y = y + io[i];
    }
    if (kind == 3 && io.num_inputs() > 1) y = y / static_cast<double>(io.num_inputs());
    io.set(0, y);
  };
}
Kernel b_max(NodeCtx& c) { return b_variadic(c, 0); }
Kernel b_min(NodeCtx& c) { return b_variadic(c, 1); }
Kernel b_sum(NodeCtx& c) { return b_variadic(c, 2); }
Kernel b_mean(NodeCtx& c) { return b_variadic(c, 3); }

Kernel b_clip(NodeCtx& c) {
  if (c.opset() < 11) {
    c.require_inputs(1, 1);
    double lo = c.f("min", std::numeric_limits<float>::lowest()), hi = c.f("max", std::numeric_limits<float>::max());
    return [lo, hi](const KernelIO& io) { io.set(0, at::clamp(io[0], lo, hi)); };
  }
  c.require_inputs(1, 3);
  return [](const KernelIO& io) {
    c10::optional<at::Scalar> lo, hi;
    if (io.has(1)) lo = host_item(io[1]);
    if (io.has(2)) hi = host_item(io[2]);
    if (!lo && !hi) {
      io.set(0, io[0]);
      return;
    }
    io.set(0, at::clamp(io[0], lo, hi));
  };
}

Kernel b_where(NodeCtx& c) {
  c.require_inputs(3, 3);
  return [](const KernelIO& io) {
    const at::Tensor& cond = io[0];
    io.set(0, at::where(cond.scalar_type() == at::kBool ? cond : cond.to(at::kBool), io[1], io[2]));
  };
}

Kernel b_layer_norm(NodeCtx& c) {
  c.require_inputs(2, 3);
  c.require_outputs(3);
  int64_t axis = c.i("axis", -1);
  double eps = c.f("epsilon", 1e-5f);
  int64_t stash = c.i("stash_type", 1);
  if (stash != 1) throw Unsupported("stash_type " + std::to_string(stash) + " (only 1, float32, is supported)");
  bool stats = c.has_output(1) || c.has_output(2);
  return [=](const KernelIO& io) {
    const at::Tensor& x = io[0];
    int64_t a = norm_axis(axis, x.dim());
    std::vector<int64_t> norm(x.sizes().begin() + a, x.sizes().end());
    at::Tensor scale = io[1];
    at::Tensor bias = io.has(2) ? io[2] : at::Tensor();
    bool exact = scale.sizes().vec() == norm && (!bias.defined() || bias.sizes().vec() == norm);
    if (exact && !stats) {
      io.set(0, at::layer_norm(x, norm, scale, bias, eps));
      return;
    }
    if (exact) {
      auto r = at::native_layer_norm(x, norm, scale, bias, eps);
      io.set(0, std::get<0>(r));
      io.set(1, std::get<1>(r));
      io.set(2, std::get<2>(r));
      return;
    }
    // Scale/bias that broadcast but differ from the normalized shape.
    std::vector<int64_t> dims;
    for (int64_t d = a; d < x.dim(); ++d) dims.push_back(d);
    at::Tensor mean = x.mean(dims, true);
    at::Tensor centered = x - mean;
    at::Tensor inv = at::rsqrt(centered.pow(2).mean(dims, true) + eps);
    at::Tensor y = centered * inv * scale;
    if (bias.defined()) y = y + bias;
    io.set(0, y);
    io.set(1, mean);
    io.set(2, inv);
  };
}

Kernel b_batch_norm(NodeCtx& c) {
  c.require_inputs(5, 5);
  double eps = c.f("epsilon", 1e-5f);
  double momentum = c.f("momentum", 0.9f);
  if (c.opset() < 9 && c.i("spatial", 1) != 1) throw Unsupported("spatial=0");
  bool training_mode = c.opset() >= 14 && c.i("training_mode", 0) != 0;
  if (c.opset() < 14)
    c.require_outputs(1);
  else
    c.require_outputs(3);
  if (!training_mode && (c.has_output(1) || c.has_output(2)))
    throw Unsupported("running statistics outputs need training_mode=1");
  // ONNX: running = running * momentum + batch * (1 - momentum); PyTorch's
  // momentum is the weight of the batch. Batch statistics are used only when
  // the export says training_mode=1 AND the stage trains (PyTorch's train()),
  // and then the running statistics (buffers) are updated in place.
  return [=](const KernelIO& io) {
    bool batch_stats = training_mode && io.training;
    at::Tensor mean = io[3], var = io[4];
    at::Tensor y = at::batch_norm(io[0], io[1], io[2], mean, var, batch_stats, 1.0 - momentum, eps, false);
    io.set(0, y);
    io.set(1, mean);
    io.set(2, var);
  };
}

Kernel b_instance_norm(NodeCtx& c) {
  c.require_inputs(3, 3);
  double eps = c.f("epsilon", 1e-5f);
  return
      [eps](const KernelIO& io) { io.set(0, at::instance_norm(io[0], io[1], io[2], {}, {}, true, 0.0, eps, false)); };
}

Kernel b_conv(NodeCtx& c) {
  c.require_inputs(2, 3);
  Window w;
  w.parse(c, 0);
  int64_t group = c.i("group", 1);
  return [w, group](const KernelIO& io) {
    const at::Tensor& x = io[0];
    const at::Tensor& weight = io[1];
    at::Tensor bias = io.has(2) ? io[2] : at::Tensor();
    auto in = spatial_sizes(x);
    std::vector<int64_t> k(weight.sizes().begin() + 2, weight.sizes().end());
    std::vector<int64_t> s, d;
    auto p = w.resolve(in, k, s, d);
    size_t n = in.size();
    if (symmetric(p)) {
      std::vector<int64_t> pad(p.begin(), p.begin() + static_cast<long>(n));
      io.set(0, at::convolution(x, weight, bias, s, pad, d, false, std::vector<int64_t>(n, 0), group));
      return;
    }
    at::Tensor xp = at::constant_pad_nd(x, torch_pads(p), 0);
    io.set(0, at::convolution(xp, weight, bias, s, std::vector<int64_t>(n, 0), d, false, std::vector<int64_t>(n, 0),
                              group));
  };
}

Kernel b_conv_transpose(NodeCtx& c) {
  c.require_inputs(2, 3);
  Window w;
  w.parse(c, 0);
  int64_t group = c.i("group", 1);
  auto out_pad_attr = c.ints("output_padding");
  auto out_shape_attr = c.ints("output_shape");
  return [=](const KernelIO& io) {
    const at::Tensor& x = io[0];
    const at::Tensor& weight = io[1];
    at::Tensor bias = io.has(2) ? io[2] : at::Tensor();
    auto in = spatial_sizes(x);
    size_t n = in.size();
    std::vector<int64_t> k(weight.sizes().begin() + 2, weight.sizes().end());
    std::vector<int64_t> s = w.strides.empty() ? std::vector<int64_t>(n, 1) : w.strides;
    std::vector<int64_t> d = w.dilations.empty() ? std::vector<int64_t>(n, 1) : w.dilations;
    std::vector<int64_t> op = out_pad_attr.value_or(std::vector<int64_t>(n, 0));
    if (s.size() != n || d.size() != n || op.size() != n)
      fail("strides/dilations/output_padding do not match the spatial dims");
    std::vector<int64_t> p(2 * n, 0);
    bool derived = out_shape_attr.has_value() || w.auto_pad == AutoPad::SameUpper || w.auto_pad == AutoPad::SameLower;
    if (derived) {
      std::vector<int64_t> target;
      if (out_shape_attr) {
        target = *out_shape_attr;
        if (target.size() == n + 2) target.erase(target.begin(), target.begin() + 2);
        if (target.size() != n) fail("output_shape does not match the spatial dims");
      } else {
        for (size_t i = 0; i < n; ++i) target.push_back(in[i] * s[i]);
      }
      for (size_t i = 0; i < n; ++i) {
        int64_t total = s[i] * (in[i] - 1) + op[i] + ((k[i] - 1) * d[i] + 1) - target[i];
        int64_t half = total / 2;
        if (w.auto_pad == AutoPad::SameUpper) {
          p[i] = half;
          p[i + n] = total - half;
        } else {
          p[i] = total - half;
          p[i + n] = half;
        }
      }
    } else if (w.auto_pad == AutoPad::NotSet && !w.pads.empty()) {
      if (w.pads.size() != 2 * n) fail("pads does not match the spatial dims");
      p = w.pads;
    }
    bool fast = symmetric(p);
    for (size_t i = 0; i < n && fast; ++i) fast = p[i] >= 0 && op[i] < std::max(s[i], d[i]);
    if (fast) {
      std::vector<int64_t> pad(p.begin(), p.begin() + static_cast<long>(n));
      io.set(0, at::convolution(x, weight, bias, s, pad, d, true, op, group));
      return;
    }
    // General case: the full transposed convolution, then crop/extend each
    // spatial dim to [begin, full + output_padding - end), then the bias.
    at::Tensor y =
        at::convolution(x, weight, {}, s, std::vector<int64_t>(n, 0), d, true, std::vector<int64_t>(n, 0), group);
    std::vector<int64_t> adj(2 * n);
    for (size_t i = 0; i < n; ++i) {
      int64_t full = (in[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1;
      int64_t out = full + op[i] - p[i] - p[i + n];
      adj[i] = -p[i];
      adj[i + n] = out - (full - p[i]);
    }
    y = at::constant_pad_nd(y, torch_pads(adj), 0);
    if (bias.defined()) {
      std::vector<int64_t> shape(n + 2, 1);
      shape[1] = -1;
      y = y + bias.reshape(shape);
    }
    io.set(0, y);
  };
}

Kernel b_pool(NodeCtx& c, bool is_max) {
  c.require_inputs(1, 1);
  c.require_outputs(1);
  Window w;
  w.parse(c, 0);
  if (w.kernel.empty()) throw Unsupported("kernel_shape is required");
  w.ceil_mode = c.i("ceil_mode", 0) != 0;
  bool include_pad = !is_max && c.i("count_include_pad", 0) != 0;
  if (is_max && c.i("storage_order", 0) != 0) throw Unsupported("storage_order=1");
  if (!is_max && w.dilations.size() &&
      std::any_of(w.dilations.begin(), w.dilations.end(), [](int64_t v) { return v != 1; }))
    throw Unsupported("dilations in AveragePool");
  return [w, is_max, include_pad](const KernelIO& io) {
    at::Tensor x = io[0];
    auto in = spatial_sizes(x);
    size_t n = in.size();
    if (w.kernel.size() != n) fail("kernel_shape does not match the spatial dims");
    if (n > 3) fail("pooling over more than 3 spatial dims");
    std::vector<int64_t> s, d;
    auto p = w.resolve(in, w.kernel, s, d);
    bool native = symmetric(p);
    for (size_t i = 0; i < n && native; ++i) native = p[i] >= 0 && p[i] * 2 <= w.kernel[i];
    std::vector<int64_t> pad(n, 0);
    at::Tensor mask;
    if (native) {
      pad.assign(p.begin(), p.begin() + static_cast<long>(n));
    } else {
      auto tp = torch_pads(p);
      if (is_max) {
        x = at::constant_pad_nd(x, tp, -std::numeric_limits<double>::infinity());
      } else {
        if (!include_pad) {
          std::vector<int64_t> ms(x.dim(), 1);
          for (size_t i = 0; i < n; ++i) ms[i + 2] = in[i];
          mask = at::constant_pad_nd(at::ones(ms, x.options()), tp, 0);
        }
        x = at::constant_pad_nd(x, tp, 0);
      }
    }
    at::Tensor y;
    if (is_max) {
      if (n == 1)
        y = at::max_pool1d(x, w.kernel, s, pad, d, w.ceil_mode);
      else if (n == 2)
        y = at::max_pool2d(x, w.kernel, s, pad, d, w.ceil_mode);
      else
        y = at::max_pool3d(x, w.kernel, s, pad, d, w.ceil_mode);
    } else {
      auto avg = [&](const at::Tensor& t, bool inc) {
        if (n == 1) return at::avg_pool1d(t, w.kernel, s, pad, w.ceil_mode, inc);
        if (n == 2) return at::avg_pool2d(t, w.kernel, s, pad, w.ceil_mode, inc);
        return at::avg_pool3d(t, w.kernel, s, pad, w.ceil_mode, inc);
      };
      y = avg(x, native ? include_pad : true);
      if (mask.defined()) y = y / avg(mask, true);
    }
    io.set(0, y);
  };
}
Kernel b_max_pool(NodeCtx& c) { return b_pool(c, true); }
Kernel b_avg_pool(NodeCtx& c) { return b_pool(c, false); }

Kernel b_global_pool(NodeCtx& c, bool is_max) {
  c.require_inputs(1, 1);
  return [is_max](const KernelIO& io) {
    const at::Tensor& x = io[0];
    std::vector<int64_t> dims;
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    io.set(0, is_max ? at::amax(x, dims, true) : x.mean(dims, true));
  };
}
Kernel b_global_avg_pool(NodeCtx& c) { return b_global_pool(c, false); }
Kernel b_global_max_pool(NodeCtx& c) { return b_global_pool(c, true); }

Kernel b_flatten(NodeCtx& c) {
  c.require_inputs(1, 1);
  int64_t axis = c.i("axis", 1);
  return [axis](const KernelIO& io) {
    const at::Tensor& x = io[0];
    int64_t a = axis < 0 ? axis + x.dim() : axis;
    if (a < 0 || a > x.dim())
      fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(x.dim()));
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < x.dim(); ++d) (d < a ? outer : inner) *= x.size(d);
    io.set(0, x.reshape({outer, inner}));
  };
}

Kernel b_reshape(NodeCtx& c) {
  c.require_inputs(2, 2);
  bool allowzero = c.i("allowzero", 0) != 0;
  return [allowzero](const KernelIO& io) {
    const at::Tensor& x = io[0];
    std::vector<int64_t> shape = to_ints(io[1]);
    if (!allowzero)
      for (size_t i = 0; i < shape.size(); ++i)
        if (shape[i] == 0) {
          if (static_cast<int64_t>(i) >= x.dim())
            fail("shape has 0 at dim " + std::to_string(i) + " beyond the input's rank");
          shape[i] = x.size(static_cast<int64_t>(i));
        }
    io.set(0, x.reshape(shape));
  };
}

Kernel b_transpose(NodeCtx& c) {
  c.require_inputs(1, 1);
  auto perm = c.ints("perm");
  return [perm](const KernelIO& io) {
    const at::Tensor& x = io[0];
    std::vector<int64_t> p;
    if (perm) {
      p = *perm;
      if (static_cast<int64_t>(p.size()) != x.dim())
        fail("perm has " + std::to_string(p.size()) + " entries for rank " + std::to_string(x.dim()));
      for (auto& v : p) v = norm_axis(v, x.dim());
    } else {
      for (int64_t d = x.dim(); d-- > 0;) p.push_back(d);
    }
    io.set(0, x.permute(p));
  };
}

// Axes from input 1 (opset >= `input_since`) or the `axes` attribute.
struct Axes {
  std::optional<std::vector<int64_t>> attr;
  bool from_input = false;
  std::optional<std::vector<int64_t>> get(const KernelIO& io) const {
    if (from_input) {
      if (io.has(1)) return to_ints(io[1]);
      return std::nullopt;
    }
    return attr;
  }
};
Axes parse_axes(NodeCtx& c, int input_since) {
  Axes a;
  if (c.opset() >= input_since) {
    a.from_input = true;
  } else {
    a.attr = c.ints("axes");
  }
  return a;
}

Kernel b_squeeze(NodeCtx& c) {
  Axes ax = parse_axes(c, 13);
  c.require_inputs(1, ax.from_input ? 2 : 1);
  return [ax](const KernelIO& io) {
    const at::Tensor& x = io[0];
    auto axes = ax.get(io);
    if (!axes) {
      io.set(0, x.squeeze());
      return;
    }
    auto a = norm_axes(*axes, x.dim());
    std::vector<int64_t> shape;
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (std::binary_search(a.begin(), a.end(), d)) {
        if (x.size(d) != 1) fail("cannot squeeze dim " + std::to_string(d) + " of size " + std::to_string(x.size(d)));
        continue;
      }
      shape.push_back(x.size(d));
    }
    io.set(0, x.reshape(shape));
  };
}

Kernel b_unsqueeze(NodeCtx& c) {
  Axes ax = parse_axes(c, 13);
  c.require_inputs(ax.from_input ? 2 : 1, ax.from_input ? 2 : 1);
  if (!ax.from_input && !ax.attr) throw Unsupported("axes is required");
  return [ax](const KernelIO& io) {
    const at::Tensor& x = io[0];
    auto axes = *ax.get(io);
    int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
    auto a = norm_axes(axes, rank);
    std::vector<int64_t> shape;
    int64_t src = 0;
    for (int64_t d = 0; d < rank; ++d) {
      if (std::binary_search(a.begin(), a.end(), d))
        shape.push_back(1);
      else
        shape.push_back(x.size(src++));
    }
    io.set(0, x.reshape(shape));
  };
}

Kernel b_concat(NodeCtx& c) {
  if (c.num_inputs() < 1) throw Unsupported("needs at least one input");
  int64_t axis = c.i("axis", 0);
  if (!c.has("axis") && c.opset() >= 4) throw Unsupported("axis is required");
  return [axis](const KernelIO& io) {
    // Shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape):
    // small int64 vectors, built directly rather than through at::cat.
    bool small = true;
    size_t total = 0;
    for (size_t i = 0; i < io.num_inputs() && small; ++i) {
      const at::Tensor& t = io[i];
      small = t.scalar_type() == at::kLong && t.dim() == 1 && t.is_contiguous() && t.is_cpu();
      total += static_cast<size_t>(t.numel());
    }
    if (small && total <= 16) {
      std::vector<int64_t> v;
      v.reserve(total);
      for (size_t i = 0; i < io.num_inputs(); ++i) {
        const int64_t* p = io[i].data_ptr<int64_t>();
        v.insert(v.end(), p, p + io[i].numel());
      }
      io.set(0, at::tensor(v, at::TensorOptions().dtype(at::kLong)));
      return;
    }
    std::vector<at::Tensor> ts;
    ts.reserve(io.num_inputs());
    for (size_t i = 0; i < io.num_inputs(); ++i) ts.push_back(io[i]);
    io.set(0, at::cat(ts, norm_axis(axis, ts[0].dim())));
  };
}

Kernel b_split(NodeCtx& c) {
  int64_t axis = c.i("axis", 0);
  bool from_input = c.opset() >= 13;
  c.require_inputs(1, from_input ? 2 : 1);
  auto attr = from_input ? std::nullopt : c.ints("split");
  int64_t num_outputs = c.opset() >= 18 ? c.i("num_outputs", 0) : 0;
  size_t nout = c.num_outputs();
  return [=](const KernelIO& io) {
    const at::Tensor& x = io[0];
    int64_t a = norm_axis(axis, x.dim());
    std::vector<int64_t> sizes;
    if (from_input && io.has(1))
      sizes = to_ints(io[1]);
    else if (attr)
      sizes = *attr;
    else {
      int64_t n = num_outputs ? num_outputs : static_cast<int64_t>(nout);
      int64_t dim = x.size(a), each = (dim + n - 1) / n;
      for (int64_t i = 0; i < n; ++i) sizes.push_back(std::max<int64_t>(0, std::min(each, dim - i * each)));
    }
    auto parts = at::split_with_sizes(x, sizes, a);
    if (parts.size() != nout)
      fail("split into " + std::to_string(parts.size()) + " parts for " + std::to_string(nout) + " outputs");
    for (size_t j = 0; j < parts.size(); ++j) io.set(j, parts[j]);
  };
}

at::Tensor slice_axis(const at::Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  int64_t dim = x.size(axis);
  if (step == 0) fail("slice step 0");
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    if (start == 0 && end == dim && step == 1) return x;
    return x.slice(axis, start, std::max(start, end), step);
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  int64_t count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
  at::Tensor idx = at::arange(start, start + step * count, step, x.options().dtype(at::kLong));
  if (count == 0) idx = at::empty({0}, x.options().dtype(at::kLong));
  return x.index_select(axis, idx);
}

Kernel b_slice(NodeCtx& c) {
  if (c.opset() < 10) {
    c.require_inputs(1, 1);
    auto starts = c.ints("starts"), ends = c.ints("ends"), axes = c.ints("axes");
    if (!starts || !ends) throw Unsupported("starts and ends are required");
    return [=](const KernelIO& io) {
      at::Tensor x = io[0];
      for (size_t i = 0; i < starts->size(); ++i) {
        int64_t a = norm_axis(axes ? (*axes)[i] : static_cast<int64_t>(i), x.dim());
        x = slice_axis(x, a, (*starts)[i], (*ends)[i], 1);
      }
      io.set(0, x);
    };
  }
  c.require_inputs(3, 5);
  return [](const KernelIO& io) {
    at::Tensor x = io[0];
    auto starts = to_ints(io[1]), ends = to_ints(io[2]);
    if (starts.size() != ends.size()) fail("starts and ends differ in length");
    std::vector<int64_t> axes, steps;
    if (io.has(3))
      axes = to_ints(io[3]);
    else
      axes = all_dims(static_cast<int64_t>(starts.size()));
    if (io.has(4))
      steps = to_ints(io[4]);
    else
      steps.assign(starts.size(), 1);
    if (axes.size() != starts.size() || steps.size() != starts.size()) fail("axes/steps differ in length from starts");
    for (size_t i = 0; i < starts.size(); ++i)
      x = slice_axis(x, norm_axis(axes[i], x.dim()), starts[i], ends[i], steps[i]);
    io.set(0, x);
  };
}

// Gather's general case: x's slices along `a` at idx (of any shape).
at::Tensor gather_rows(const at::Tensor& x, int64_t a, const at::Tensor& idx) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + a);
  for (int64_t s : idx.sizes()) shape.push_back(s);
  for (int64_t d = a + 1; d < x.dim(); ++d) shape.push_back(x.size(d));
  return x.index_select(a, idx.reshape({-1})).reshape(shape);
}

Kernel b_gather(NodeCtx& c) {
  c.require_inputs(2, 2);
  int64_t axis = c.i("axis", 0);
  return [axis](const KernelIO& io) {
    const at::Tensor& x = io[0];
    at::Tensor idx = io[1];
    int64_t a = norm_axis(axis, x.dim());
    int64_t dim = x.size(a);
    if (x.dim() == 1 && idx.dim() == 0 && x.scalar_type() == at::kLong && idx.scalar_type() == at::kLong &&
        x.is_contiguous() && x.is_cpu() && idx.is_cpu()) {
      // One entry of a shape vector: a new scalar, no view machinery.
      int64_t i = idx.item<int64_t>();
      if (i < -dim || i >= dim)
        fail("index " + std::to_string(i) + " out of range for a dim of size " + std::to_string(dim));
      io.set(0, at::scalar_tensor(x.data_ptr<int64_t>()[i < 0 ? i + dim : i], at::TensorOptions().dtype(at::kLong)));
      return;
    }
    if (idx.scalar_type() != at::kLong) idx = idx.to(at::kLong);
    if (!idx.is_cpu()) {
      // Indices on a device (token ids): no host scan; the device kernel
      // checks the bounds, negative indices are wrapped by a device op.
      idx = at::where(idx.lt(0), idx + dim, idx);
      if (idx.dim() == 0) {
        io.set(0, x.index_select(a, idx.reshape({1})).squeeze(a));
        return;
      }
      io.set(0, a == 0 && x.dim() == 2 ? at::embedding(x, idx) : gather_rows(x, a, idx));
      return;
    }
    // Negative indices count from the end (scan on the host: indices are small).
    at::Tensor ci = idx.contiguous();
    const int64_t* p = ci.data_ptr<int64_t>();
    bool negative = false;
    for (int64_t i = 0, n = ci.numel(); i < n; ++i) {
      if (p[i] < -dim || p[i] >= dim)
        fail("index " + std::to_string(p[i]) + " out of range for a dim of size " + std::to_string(dim));
      negative |= p[i] < 0;
    }
    if (negative) idx = at::where(idx.lt(0), idx + dim, idx);
    if (idx.dim() == 0) {
      io.set(0, x.select(a, idx.item<int64_t>()));
      return;
    }
    if (a == 0 && x.dim() == 2) {
      io.set(0, at::embedding(x, idx));  // what nn.Embedding runs
      return;
    }
    io.set(0, gather_rows(x, a, idx));
  };
}

Kernel b_shape(NodeCtx& c) {
  c.require_inputs(1, 1);
  int64_t start = c.i("start", 0);
  std::optional<int64_t> end;
  if (c.has("end")) end = c.i("end", 0);
  return [start, end](const KernelIO& io) {
    auto sizes = io[0].sizes();
    int64_t r = static_cast<int64_t>(sizes.size());
    int64_t s = start < 0 ? start + r : start, e = end ? (*end < 0 ? *end + r : *end) : r;
    s = std::clamp<int64_t>(s, 0, r);
    e = std::clamp<int64_t>(e, 0, r);
    std::vector<int64_t> v(sizes.begin() + s, sizes.begin() + std::max(s, e));
    io.set(0, at::tensor(v, at::TensorOptions().dtype(at::kLong)));
  };
}

Kernel b_size(NodeCtx& c) {
  c.require_inputs(1, 1);
  return [](const KernelIO& io) { io.set(0, at::scalar_tensor(io[0].numel(), at::TensorOptions().dtype(at::kLong))); };
}

Kernel b_cast(NodeCtx& c) {
  c.require_inputs(1, 1);
  if (!c.has("to")) throw Unsupported("attribute 'to' is required");
  at::ScalarType to = scalar_type_of(static_cast<int>(c.i("to", 0)), "Cast");
  if (c.has("saturate")) c.i("saturate", 1);  // float8 only
  return [to](const KernelIO& io) { io.set(0, io[0].scalar_type() == to ? io[0] : io[0].to(to)); };
}

// CastLike (opset 15): to the element type of the second input.
Kernel b_cast_like(NodeCtx& c) {
  c.require_inputs(2, 2);
  if (c.has("saturate")) c.i("saturate", 1);  // float8 only
  return [](const KernelIO& io) {
    const at::ScalarType to = io[1].scalar_type();
    io.set(0, io[0].scalar_type() == to ? io[0] : io[0].to(to));
  };
}

// GatherElements: out[i][j][k] = data[index[i][j][k]][j][k] along `axis`
// (at::gather, with negative indices counted from the end).
Kernel b_gather_elements(NodeCtx& c) {
  c.require_inputs(2, 2);
  const int64_t axis = c.i("axis", 0);
  return [axis](const KernelIO& io) {
    const at::Tensor& x = io[0];
    const int64_t a = norm_axis(axis, x.dim());
    at::Tensor idx = io[1].scalar_type() == at::kLong ? io[1] : io[1].to(at::kLong);
    idx = at::where(idx.lt(0), idx + x.size(a), idx);
    io.set(0, at::gather(x, a, idx));
  };
}

Kernel b_constant(NodeCtx& c) {
  c.require_inputs(0, 0);
  at::Tensor v;
  if (auto t = c.t("value"))
    v = *t;
  else if (c.has("value_float"))
    v = at::scalar_tensor(c.f("value_float", 0), at::kFloat);
  else if (auto fs = c.floats("value_floats"))
    v = at::tensor(*fs, at::TensorOptions().dtype(at::kFloat));
  else if (c.has("value_int"))
    v = at::scalar_tensor(c.i("value_int", 0), at::TensorOptions().dtype(at::kLong));
  else if (auto is = c.ints("value_ints"))
    v = at::tensor(*is, at::TensorOptions().dtype(at::kLong));
  else
    throw Unsupported("Constant without a value, value_float(s) or value_int(s) attribute");
  return [v](const KernelIO& io) { io.set(0, v); };
}

Kernel b_constant_of_shape(NodeCtx& c) {
  c.require_inputs(1, 1);
  at::Tensor value = c.t("value").value_or(at::zeros({1}, at::kFloat));
  if (value.numel() != 1) throw Unsupported("value must hold one element");
  at::Scalar v = value.reshape({}).item();
  at::ScalarType dt = value.scalar_type();
  return [v, dt](const KernelIO& io) { io.set(0, at::full(to_ints(io[0]), v, at::TensorOptions().dtype(dt))); };
}

Kernel b_range(NodeCtx& c) {
  c.require_inputs(3, 3);
  return [](const KernelIO& io) {
    at::ScalarType dt = io[0].scalar_type();
    at::Scalar s = host_item(io[0]), l = host_item(io[1]), d = host_item(io[2]);
    if (d.toDouble() == 0) fail("Range with delta 0");
    if ((d.toDouble() > 0 && l.toDouble() <= s.toDouble()) || (d.toDouble() < 0 && l.toDouble() >= s.toDouble())) {
      io.set(0, at::empty({0}, at::TensorOptions().dtype(dt)));
      return;
    }
    io.set(0, at::arange(s, l, d, at::TensorOptions().dtype(dt)));
  };
}

Kernel b_expand(NodeCtx& c) {
  c.require_inputs(2, 2);
  return [](const KernelIO& io) {
    const at::Tensor& x = io[0];
    auto shape = to_ints(io[1]);
    // Bidirectional broadcast of x's shape and `shape`.
    size_t r = std::max(shape.size(), static_cast<size_t>(x.dim()));
    std::vector<int64_t> out(r);
    for (size_t i = 0; i < r; ++i) {
      int64_t a = i + x.dim() >= r ? x.size(static_cast<int64_t>(i + x.dim() - r)) : 1;
      int64_t b = i + shape.size() >= r ? shape[i + shape.size() - r] : 1;
      if (a != b && a != 1 && b != 1) fail("cannot broadcast " + std::to_string(a) + " against " + std::to_string(b));
      out[i] = a == 1 ? b : a;
    }
    io.set(0, x.expand(out));
  };
}

Kernel b_trilu(NodeCtx& c) {
  c.require_inputs(1, 2);
  bool upper = c.i("upper", 1) != 0;
  return [upper](const KernelIO& io) {
    int64_t k = io.has(1) ? scalar_int(io[1]) : 0;
    io.set(0, upper ? at::triu(io[0], k) : at::tril(io[0], k));
  };
}

Kernel b_reduce(NodeCtx& c, int kind) {  // 0 mean 1 sum 2 max 3 min 4 prod 5 l2 6 sumsquare 7 logsumexp
  bool keep = c.i("keepdims", 1) != 0;
  // ReduceSum takes axes as an input from opset 13, the others from 18.
  Axes ax = parse_axes(c, kind == 1 ? 13 : 18);
  bool noop = c.i("noop_with_empty_axes", 0) != 0;
  c.require_inputs(1, ax.from_input ? 2 : 1);
  return [=](const KernelIO& io) {
    const at::Tensor& x = io[0];
    auto axes = ax.get(io);
    if ((!axes || axes->empty()) && noop) {
      io.set(0, x);
      return;
    }
    std::vector<int64_t> dims = (axes && !axes->empty()) ? norm_axes(*axes, x.dim()) : all_dims(x.dim());
    at::Tensor y;
    switch (kind) {
      case 0: y = x.mean(dims, keep); break;
      case 1: y = x.sum(dims, keep); break;
      case 2: y = at::amax(x, dims, keep); break;
      case 3: y = at::amin(x, dims, keep); break;
      case 4:
        y = x;
        for (auto it = dims.rbegin(); it != dims.rend(); ++it) y = y.prod(*it, keep);
        break;
      case 5: y = at::sqrt((x * x).sum(dims, keep)); break;
      case 6: y = (x * x).sum(dims, keep); break;
      default: y = at::logsumexp(x, dims, keep); break;
    }
    io.set(0, y);
  };
}
Kernel b_reduce_mean(NodeCtx& c) { return b_reduce(c, 0); }
Kernel b_reduce_sum(NodeCtx& c) { return b_reduce(c, 1); }
Kernel b_reduce_max(NodeCtx& c) { return b_reduce(c, 2); }
Kernel b_reduce_min(NodeCtx& c) { return b_reduce(c, 3); }
Kernel b_reduce_prod(NodeCtx& c) { return b_reduce(c, 4); }
Kernel b_reduce_l2(NodeCtx& c) { return b_reduce(c, 5); }
Kernel b_reduce_sum_square(NodeCtx& c) { return b_reduce(c, 6); }
Kernel b_reduce_log_sum_exp(NodeCtx& c) { return b_reduce(c, 7); }

Kernel b_arg(NodeCtx& c, bool is_max) {
  c.require_inputs(1, 1);
  int64_t axis = c.i("axis", 0);
  bool keep = c.i("keepdims", 1) != 0;
  if (c.i("select_last_index", 0) != 0) throw Unsupported("select_last_index=1");
  return [=](const KernelIO& io) {
    int64_t a = norm_axis(axis, io[0].dim());
    io.set(0, is_max ? at::argmax(io[0], a, keep) : at::argmin(io[0], a, keep));
  };
}
Kernel b_argmax(NodeCtx& c) { return b_arg(c, true); }
Kernel b_argmin(NodeCtx& c) { return b_arg(c, false); }

Kernel b_dropout(NodeCtx& c) {
  c.require_outputs(2);
  std::optional<double> ratio_attr;
  if (c.opset() < 12) {
    c.require_inputs(1, 1);
    ratio_attr = c.f("ratio", 0.5f);
    if (c.opset() < 7 && c.has("is_test")) c.i("is_test", 0);
  } else {
    c.require_inputs(1, 3);
    if (c.has("seed")) c.i("seed", 0);  // not reproducible across runtimes anyway
  }
  // Training mode: the training_mode input when the export carries one (the
  // ONNX rule); otherwise the stage's training flag (PyTorch's train()/eval()).
  return [ratio_attr](const KernelIO& io) {
    const at::Tensor& x = io[0];
    double ratio = ratio_attr ? *ratio_attr : (io.has(1) ? host_item(io[1]).toDouble() : 0.5);
    bool train = io.has(2) ? host_item(io[2]).toBool() : io.training;
    if (!train || ratio == 0) {
      io.set(0, x);
      if (io.wants(1)) io.set(1, at::ones(x.sizes(), x.options().dtype(at::kBool)));
      return;
    }
    auto r = at::native_dropout(x, ratio, true);
    io.set(0, std::get<0>(r));
    io.set(1, std::get<1>(r));
  };
}

Kernel b_pad(NodeCtx& c) {
  std::string mode = c.s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") throw Unsupported("mode '" + mode + "'");
  std::optional<std::vector<int64_t>> pads_attr;
  double value_attr = 0;
  bool legacy = c.opset() < 11;
  if (legacy) {
    c.require_inputs(1, 1);
    pads_attr = c.ints(c.opset() < 2 ? "paddings" : "pads");
    value_attr = c.f("value", 0.f);
    if (!pads_attr) throw Unsupported("pads is required");
  } else {
    c.require_inputs(2, 4);
  }
  return [=](const KernelIO& io) {
    const at::Tensor& x = io[0];
    int64_t r = x.dim();
    std::vector<int64_t> raw = legacy ? *pads_attr : to_ints(io[1]);
    std::vector<int64_t> axes = (!legacy && io.has(3)) ? norm_axes(to_ints(io[3]), r) : all_dims(r);
    if (!legacy && io.has(3)) {  // norm_axes sorted them: keep the given order
      axes = to_ints(io[3]);
      for (auto& a : axes) a = norm_axis(a, r);
    }
    if (raw.size() != 2 * axes.size())
      fail("pads has " + std::to_string(raw.size()) + " values for " + std::to_string(axes.size()) + " axes");
    std::vector<int64_t> p(2 * static_cast<size_t>(r), 0);
    for (size_t i = 0; i < axes.size(); ++i) {
      p[static_cast<size_t>(axes[i])] = raw[i];
      p[static_cast<size_t>(axes[i] + r)] = raw[i + axes.size()];
    }
    if (mode == "constant") {
      double v = legacy ? value_attr : (io.has(2) ? host_item(io[2]).toDouble() : 0.0);
      io.set(0, at::constant_pad_nd(x, torch_pads(p), v));
      return;
    }
    // reflect / edge: only trailing dims may be padded, at most 3 of them.
    int64_t first = r;
    for (int64_t d = 0; d < r; ++d)
      if (p[d] != 0 || p[d + r] != 0) {
        first = d;
        break;
      }
    if (first == r) {
      io.set(0, x);
      return;
    }
    int64_t k = r - first;
    if (k > 3) fail(mode + " padding of more than 3 dims");
    std::vector<int64_t> batched{1, -1};
    for (int64_t d = first; d < r; ++d) batched.push_back(x.size(d));
    at::Tensor xb = x.reshape(batched);
    std::vector<int64_t> tp;
    for (int64_t d = r; d-- > first;) {
      tp.push_back(p[d]);
      tp.push_back(p[d + r]);
    }
    at::Tensor y;
    if (mode == "reflect") {
      y = k == 1 ? at::reflection_pad1d(xb, tp) : k == 2 ? at::reflection_pad2d(xb, tp) : at::reflection_pad3d(xb, tp);
    } else {
      y = k == 1   ? at::replication_pad1d(xb, tp)
          : k == 2 ? at::replication_pad2d(xb, tp)
                   : at::replication_pad3d(xb, tp);
    }
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().begin() + first);
    for (int64_t d = 2; d < y.dim(); ++d) shape.push_back(y.size(d));
    io.set(0, y.reshape(shape));
  };
}

Kernel b_tile(NodeCtx& c) {
  c.require_inputs(2, 2);
  return [](const KernelIO& io) { io.set(0, io[0].repeat(to_ints(io[1]))); };
}

Kernel b_einsum(NodeCtx& c) {
  if (c.num_inputs() < 1) throw Unsupported("needs at least one input");
  std::string eq = c.s("equation", "");
  if (eq.empty()) throw Unsupported("equation is required");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  return [eq](const KernelIO& io) {
    std::vector<at::Tensor> ts;
    for (size_t i = 0; i < io.num_inputs(); ++i) ts.push_back(io[i]);
    io.set(0, at::einsum(eq, ts));
  };
}

Kernel b_cumsum(NodeCtx& c) {
  c.require_inputs(2, 2);
  bool exclusive = c.i("exclusive", 0) != 0, reverse = c.i("reverse", 0) != 0;
  return [=](const KernelIO& io) {
    at::Tensor x = io[0];
    int64_t a = norm_axis(scalar_int(io[1]), x.dim());
    if (reverse) x = x.flip(a);
    at::Tensor y = x.cumsum(a);
    if (exclusive) {
      // Shift by one: [0, y_0, ..., y_{n-2}].
      std::vector<int64_t> pads(2 * static_cast<size_t>(x.dim()), 0);
      pads[2 * static_cast<size_t>(x.dim() - 1 - a)] = 1;
      y = at::constant_pad_nd(y.narrow(a, 0, std::max<int64_t>(0, y.size(a) - 1)), pads, 0);
    }
    if (reverse) y = y.flip(a);
    io.set(0, y);
  };
}

// GatherND: the slices of data that the last dim of indices addresses, after
// batch_dims leading dims that data and indices share. One index_select on
// data viewed as [batches * addressed, rest...], so autograd gives the
// scatter-add backward.
Kernel b_gather_nd(NodeCtx& c) {
  c.require_inputs(2, 2);
  const int64_t b = c.i("batch_dims", 0);
  if (b < 0) throw Unsupported("batch_dims " + std::to_string(b));
  return [b](const KernelIO& io) {
    const at::Tensor& data = io[0];
    at::Tensor idx = io[1].scalar_type() == at::kLong ? io[1] : io[1].to(at::kLong);
    if (idx.dim() < 1 || idx.dim() <= b || data.dim() <= b)
      fail("indices of rank " + std::to_string(idx.dim()) + " with batch_dims " + std::to_string(b));
    const int64_t k = idx.size(-1);
    if (b + k > data.dim())
      fail("indices address " + std::to_string(k) + " dims of data of rank " + std::to_string(data.dim()) + " after " +
           std::to_string(b) + " batch dims");
    int64_t batches = 1, addressed = 1;
    for (int64_t d = 0; d < b; ++d) {
      if (data.size(d) != idx.size(d)) fail("batch dim " + std::to_string(d) + " differs between data and indices");
      batches *= data.size(d);
    }
    std::vector<int64_t> rest(data.sizes().begin() + b + k, data.sizes().end());
    at::Tensor dims = at::empty({k}, at::kLong), strides = at::empty({k}, at::kLong);
    for (int64_t j = k - 1; j >= 0; --j) {
      dims[j] = data.size(b + j);
      strides[j] = addressed;
      addressed *= data.size(b + j);
    }
    if (!idx.is_cpu()) {
      dims = dims.to(idx.device());
      strides = strides.to(idx.device());
    }
    at::Tensor i = idx.reshape({batches, -1, k});
    i = at::where(i.lt(0), i + dims, i);
    // Bounds checked on the host for host indices; a device's kernel checks its own.
    if (i.is_cpu() && i.numel() > 0 && (i.lt(0).any().item<bool>() || i.ge(dims).any().item<bool>()))
      fail("index out of range");
    at::Tensor linear = (i * strides).sum(-1) + at::arange(batches, idx.options()).unsqueeze(1) * addressed;
    std::vector<int64_t> flat{batches * addressed};
    flat.insert(flat.end(), rest.begin(), rest.end());
    std::vector<int64_t> out(idx.sizes().begin(), idx.sizes().end() - 1);
    out.insert(out.end(), rest.begin(), rest.end());
    io.set(0, data.reshape(flat).index_select(0, linear.reshape({-1})).reshape(out));
  };
}

// The reduction attribute of ScatterND / ScatterElements (opset 16+; "mul",
// "max", "min" since 16 and 18) as at::scatter_reduce / index_reduce's name;
// "" for none (plain overwrite), "add" kept apart (index_add / scatter_add).
std::string scatter_reduction(NodeCtx& c) {
  std::string r = c.s("reduction", "none");
  if (r == "none") return "";
  if (r == "add") return "add";
  if (r == "mul") return "prod";
  if (r == "max") return "amax";
  if (r == "min") return "amin";
  throw Unsupported("reduction '" + r + "'");
}

// ScatterND: data with updates written (or reduced) at the index tuples of
// the last dim of indices. Out of place, so autograd reaches data (except the
// overwritten slots) and updates.
Kernel b_scatter_nd(NodeCtx& c) {
  c.require_inputs(3, 3);
  std::string red = scatter_reduction(c);
  return [red](const KernelIO& io) {
    const at::Tensor& data = io[0];
    at::Tensor idx = io[1].scalar_type() == at::kLong ? io[1] : io[1].to(at::kLong);
    const at::Tensor& upd = io[2];
    if (idx.dim() < 1) fail("indices must have rank >= 1");
    const int64_t k = idx.size(-1);
    if (k > data.dim())
      fail("indices address " + std::to_string(k) + " dims of data of rank " + std::to_string(data.dim()));
    std::vector<int64_t> rest(data.sizes().begin() + k, data.sizes().end());
    std::vector<int64_t> want(idx.sizes().begin(), idx.sizes().end() - 1);
    want.insert(want.end(), rest.begin(), rest.end());
    if (upd.sizes() != at::IntArrayRef(want))
      fail("updates have shape " + shape_str(upd) + ", expected " + shape_str(want));
    int64_t addressed = 1;
    at::Tensor dims = at::empty({k}, at::kLong), strides = at::empty({k}, at::kLong);
    for (int64_t j = k - 1; j >= 0; --j) {
      dims[j] = data.size(j);
      strides[j] = addressed;
      addressed *= data.size(j);
    }
    if (!idx.is_cpu()) {
      dims = dims.to(idx.device());
      strides = strides.to(idx.device());
    }
    at::Tensor i = idx.reshape({-1, k});
    i = at::where(i.lt(0), i + dims, i);
    // Bounds checked on the host for host indices; a device's kernel checks its own.
    if (i.is_cpu() && i.numel() > 0 && (i.lt(0).any().item<bool>() || i.ge(dims).any().item<bool>()))
      fail("index out of range");
    at::Tensor linear = (i * strides).sum(-1);
    std::vector<int64_t> flat{addressed};
    flat.insert(flat.end(), rest.begin(), rest.end());
    std::vector<int64_t> uflat{linear.size(0)};
    uflat.insert(uflat.end(), rest.begin(), rest.end());
    at::Tensor d = data.reshape(flat), u = upd.reshape(uflat);
    at::Tensor out = red.empty()    ? d.index_copy(0, linear, u)
                     : red == "add" ? d.index_add(0, linear, u)
                                    : d.index_reduce(0, linear, u, red, /*include_self=*/true);
    io.set(0, out.reshape(data.sizes()));
  };
}

// ScatterElements (and the deprecated Scatter): data with updates[i][j]...
// written at data[indices[i][j]...] along axis, the other coordinates kept.
Kernel b_scatter_elements(NodeCtx& c) {
  c.require_inputs(3, 3);
  int64_t axis = c.i("axis", 0);
  std::string red = scatter_reduction(c);
  return [axis, red](const KernelIO& io) {
    const at::Tensor& data = io[0];
    int64_t ax = axis < 0 ? axis + data.dim() : axis;
    if (ax < 0 || ax >= data.dim())
      fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(data.dim()));
    at::Tensor idx = io[1].scalar_type() == at::kLong ? io[1] : io[1].to(at::kLong);
    if (idx.sizes() != io[2].sizes())
      fail("indices " + shape_str(idx) + " and updates " + shape_str(io[2]) + " differ in shape");
    idx = at::where(idx.lt(0), idx + data.size(ax), idx);
    if (idx.is_cpu() && idx.numel() > 0 && (idx.lt(0).any().item<bool>() || idx.ge(data.size(ax)).any().item<bool>()))
      fail("index out of range");
    at::Tensor out = red.empty()    ? data.scatter(ax, idx, io[2])
                     : red == "add" ? data.scatter_add(ax, idx, io[2])
                                    : data.scatter_reduce(ax, idx, io[2], red, /*include_self=*/true);
    io.set(0, out);
  };
}

const std::map<std::string, Builder>& table() {
  static const std::map<std::string, Builder> t = {
      {"Abs", unary<abs_>},
      {"Add", binary<add_>},
      {"And", binary<and_>},
      {"ArgMax", b_argmax},
      {"ArgMin", b_argmin},
      {"AveragePool", b_avg_pool},
      {"BatchNormalization", b_batch_norm},
      {"Cast", b_cast},
      {"CastLike", b_cast_like},
      {"Ceil", unary<ceil_>},
      {"Clip", b_clip},
      {"Concat", b_concat},
      {"Constant", b_constant},
      {"ConstantOfShape", b_constant_of_shape},
      {"Conv", b_conv},
      {"ConvTranspose", b_conv_transpose},
      {"Cos", unary<cos_>},
      {"CumSum", b_cumsum},
      {"Div", binary<div_>},
      {"Dropout", b_dropout},
      {"Einsum", b_einsum},
      {"Elu", b_elu},
      {"Equal", binary<eq_>},
      {"Erf", unary<erf_>},
      {"Exp", unary<exp_>},
      {"Expand", b_expand},
      {"Flatten", b_flatten},
      {"Floor", unary<floor_>},
      {"Gather", b_gather},
      {"GatherElements", b_gather_elements},
      {"GatherND", b_gather_nd},
      {"Gelu", b_gelu},
      {"Gemm", b_gemm},
      {"GlobalAveragePool", b_global_avg_pool},
      {"GlobalMaxPool", b_global_max_pool},
      {"Greater", binary<gt_>},
      {"GreaterOrEqual", binary<ge_>},
      {"HardSigmoid", b_hard_sigmoid},
      {"HardSwish", unary<hardswish_>},
      {"Identity", b_identity},
      {"InstanceNormalization", b_instance_norm},
      {"IsNaN", unary<isnan_>},
      {"LayerNormalization", b_layer_norm},
      {"LeakyRelu", b_leaky_relu},
      {"Less", binary<lt_>},
      {"LessOrEqual", binary<le_>},
      {"Log", unary<log_>},
      {"LogSoftmax", b_log_softmax},
      {"MatMul", binary<matmul_>},
      {"Max", b_max},
      {"MaxPool", b_max_pool},
      {"Mean", b_mean},
      {"Min", b_min},
      {"Mod", b_mod},
      {"Mul", binary<mul_>},
      {"Neg", unary<neg_>},
      {"Not", unary<not_>},
      {"Or", binary<or_>},
      {"Pad", b_pad},
      {"Pow", binary<pow_>},
      {"Range", b_range},
      {"Reciprocal", unary<reciprocal_>},
      {"ReduceL2", b_reduce_l2},
      {"ReduceLogSumExp", b_reduce_log_sum_exp},
      {"ReduceMax", b_reduce_max},
      {"ReduceMean", b_reduce_mean},
      {"ReduceMin", b_reduce_min},
      {"ReduceProd", b_reduce_prod},
      {"ReduceSum", b_reduce_sum},
      {"ReduceSumSquare", b_reduce_sum_square},
      {"Relu", unary<relu_>},
      {"Reshape", b_reshape},
      {"Scatter", b_scatter_elements},
      {"ScatterElements", b_scatter_elements},
      {"ScatterND", b_scatter_nd},
      {"Shape", b_shape},
      {"Sigmoid", unary<sigmoid_>},
      {"Sign", unary<sign_>},
      {"Sin", unary<sin_>},
      {"Size", b_size},
      {"Slice", b_slice},
      {"Softmax", b_softmax},
      {"Softplus", unary<softplus_>},
      {"Split", b_split},
      {"Sqrt", unary<sqrt_>},
      {"Squeeze", b_squeeze},
      {"Sub", binary<sub_>},
      {"Sum", b_sum},
      {"Tanh", unary<tanh_>},
      {"Tile", b_tile},
      {"Transpose", b_transpose},
      {"Trilu", b_trilu},
      {"Unsqueeze", b_unsqueeze},
      {"Where", b_where},
      {"Xor", binary<xor_>},
  };
  return t;
}

}  // namespace

// --- NodeCtx -----------------------------------------------------------------

NodeCtx::NodeCtx(const onnx::NodeProto& node, int opset, std::vector<const at::Tensor*> const_inputs)
    : node_(node), opset_(opset), const_inputs_(std::move(const_inputs)) {}

bool NodeCtx::has(const std::string& name) const {
  for (const auto& a : node_.attribute())
    if (a.name() == name) return true;
  return false;
}

const onnx::AttributeProto* NodeCtx::find(const std::string& name, onnx::AttributeProto_AttributeType type) {
  for (const auto& a : node_.attribute()) {
    if (a.name() != name) continue;
    read_.insert(name);
    if (!a.ref_attr_name().empty()) throw Unsupported("attribute '" + name + "' refers to a function attribute");
    if (a.type() != type && a.type() != onnx::AttributeProto::UNDEFINED)
      throw Unsupported("attribute '" + name + "' has type " + onnx::AttributeProto_AttributeType_Name(a.type()) +
                        ", expected " + onnx::AttributeProto_AttributeType_Name(type));
    return &a;
  }
  return nullptr;
}

int64_t NodeCtx::i(const std::string& name, int64_t dflt) {
  const auto* a = find(name, onnx::AttributeProto::INT);
  return a ? a->i() : dflt;
}
float NodeCtx::f(const std::string& name, float dflt) {
  const auto* a = find(name, onnx::AttributeProto::FLOAT);
  return a ? a->f() : dflt;
}
std::string NodeCtx::s(const std::string& name, const std::string& dflt) {
  const auto* a = find(name, onnx::AttributeProto::STRING);
  return a ? a->s() : dflt;
}
std::optional<std::vector<int64_t>> NodeCtx::ints(const std::string& name) {
  const auto* a = find(name, onnx::AttributeProto::INTS);
  if (!a) return std::nullopt;
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}
std::optional<std::vector<float>> NodeCtx::floats(const std::string& name) {
  const auto* a = find(name, onnx::AttributeProto::FLOATS);
  if (!a) return std::nullopt;
  return std::vector<float>(a->floats().begin(), a->floats().end());
}
std::optional<at::Tensor> NodeCtx::t(const std::string& name) {
  const auto* a = find(name, onnx::AttributeProto::TENSOR);
  if (!a) return std::nullopt;
  try {
    return tensor_from_proto(a->t(), "attribute '" + name + "'");
  } catch (const std::exception& e) { throw Unsupported(e.what()); }
}

void NodeCtx::check_all_read() const {
  for (const auto& a : node_.attribute())
    if (!read_.count(a.name())) throw Unsupported("unsupported attribute '" + a.name() + "'");
}

void NodeCtx::require_inputs(size_t min, size_t max) const {
  size_t n = num_inputs();
  while (n > 0 && node_.input(static_cast<int>(n - 1)).empty()) --n;  // trailing absent optionals
  if (n < min || n > max)
    throw Unsupported("has " + std::to_string(n) + " inputs, expected " +
                      (min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max)));
  for (size_t i = 0; i < min; ++i)
    if (!has_input(i)) throw Unsupported("required input " + std::to_string(i) + " is missing");
}

void NodeCtx::require_outputs(size_t max) const {
  for (size_t j = max; j < num_outputs(); ++j)
    if (has_output(j))
      throw Unsupported("output " + std::to_string(j) + " ('" + node_.output(static_cast<int>(j)) +
                        "') is not supported");
}

Kernel build_kernel(NodeCtx& ctx) {
  const auto& t = table();
  auto it = t.find(ctx.node().op_type());
  if (it == t.end()) throw Unsupported("unsupported op");
  Kernel k = it->second(ctx);
  ctx.check_all_read();
  return k;
}

bool is_supported(const std::string& op_type) { return table().count(op_type) != 0; }

uint32_t host_inputs(const std::string& op) {
  static const std::map<std::string, uint32_t> t = {
      {"Clip", 0b110},           {"ConstantOfShape", 0b1}, {"CumSum", 0b10},          {"Dropout", 0b110},
      {"Expand", 0b10},          {"Pad", 0b1110},          {"Range", 0b111},          {"ReduceL2", 0b10},
      {"ReduceLogSumExp", 0b10}, {"ReduceMax", 0b10},      {"ReduceMean", 0b10},      {"ReduceMin", 0b10},
      {"ReduceProd", 0b10},      {"ReduceSum", 0b10},      {"ReduceSumSquare", 0b10}, {"Reshape", 0b10},
      {"Slice", 0b11110},        {"Split", 0b10},          {"Squeeze", 0b10},         {"Tile", 0b10},
      {"Trilu", 0b10},           {"Unsqueeze", 0b10}};
  auto it = t.find(op);
  return it == t.end() ? 0 : it->second;
}

bool is_nondifferentiable(const std::string& op) {
  static const std::set<std::string> s = {
      "Shape", "Size",     "Equal", "Less",  "Greater", "LessOrEqual", "GreaterOrEqual",
      "Not",   "And",      "Or",    "Xor",   "ArgMax",  "ArgMin",      "ConstantOfShape",
      "Range", "Constant", "Sign",  "Floor", "Ceil"};
  return s.count(op) != 0;
}

// --- tensors -----------------------------------------------------------------

at::ScalarType scalar_type_of(int t, const std::string& where) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return at::kFloat;
    case onnx::TensorProto::DOUBLE: return at::kDouble;
    case onnx::TensorProto::FLOAT16: return at::kHalf;
    case onnx::TensorProto::BFLOAT16: return at::kBFloat16;
    case onnx::TensorProto::INT64: return at::kLong;
    case onnx::TensorProto::INT32: return at::kInt;
    case onnx::TensorProto::INT16: return at::kShort;
    case onnx::TensorProto::INT8: return at::kChar;
    case onnx::TensorProto::UINT8: return at::kByte;
    case onnx::TensorProto::BOOL: return at::kBool;
    default:
      throw std::runtime_error(where + ": element type " +
                               onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t)) +
                               " is not supported");
  }
}

static int onnx_type_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return onnx::TensorProto::FLOAT;
    case at::kDouble: return onnx::TensorProto::DOUBLE;
    case at::kHalf: return onnx::TensorProto::FLOAT16;
    case at::kBFloat16: return onnx::TensorProto::BFLOAT16;
    case at::kLong: return onnx::TensorProto::INT64;
    case at::kInt: return onnx::TensorProto::INT32;
    case at::kShort: return onnx::TensorProto::INT16;
    case at::kChar: return onnx::TensorProto::INT8;
    case at::kByte: return onnx::TensorProto::UINT8;
    case at::kBool: return onnx::TensorProto::BOOL;
    default: throw std::runtime_error(std::string("cannot write element type ") + c10::toString(t) + " to ONNX");
  }
}

at::Tensor tensor_from_proto(const onnx::TensorProto& t, const std::string& where) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw std::runtime_error(where + ": tensors stored in external data files are not supported");
  if (t.has_segment()) throw std::runtime_error(where + ": segmented tensors are not supported");
  at::ScalarType st = scalar_type_of(t.data_type(), where);
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  at::Tensor out = at::empty(dims, at::TensorOptions().dtype(st));
  int64_t n = out.numel();
  size_t bytes = static_cast<size_t>(n) * out.element_size();
  auto count_error = [&](int64_t have) {
    return std::runtime_error(where + ": holds " + std::to_string(have) + " values for shape of " + std::to_string(n) +
                              " elements");
  };
  if (!t.raw_data().empty() || n == 0) {
    if (t.raw_data().size() != bytes)
      throw count_error(static_cast<int64_t>(t.raw_data().size() / std::max<size_t>(1, out.element_size())));
    if (bytes)
      std::memcpy(out.data_ptr(), t.raw_data().data(), bytes);  // ONNX raw data is little-endian, as is this host
    return out;
  }
  auto fill = [&](const auto& field, auto cast) {
    if (field.size() != n) throw count_error(field.size());
    for (int64_t i = 0; i < n; ++i) cast(i, field.Get(static_cast<int>(i)));
  };
  switch (st) {
    case at::kFloat: fill(t.float_data(), [&](int64_t i, float v) { out.data_ptr<float>()[i] = v; }); break;
    case at::kDouble: fill(t.double_data(), [&](int64_t i, double v) { out.data_ptr<double>()[i] = v; }); break;
    case at::kLong: fill(t.int64_data(), [&](int64_t i, int64_t v) { out.data_ptr<int64_t>()[i] = v; }); break;
    case at::kInt: fill(t.int32_data(), [&](int64_t i, int32_t v) { out.data_ptr<int32_t>()[i] = v; }); break;
    case at::kShort:
      fill(t.int32_data(), [&](int64_t i, int32_t v) { out.data_ptr<int16_t>()[i] = static_cast<int16_t>(v); });
      break;
    case at::kChar:
      fill(t.int32_data(), [&](int64_t i, int32_t v) { out.data_ptr<int8_t>()[i] = static_cast<int8_t>(v); });
      break;
    case at::kByte:
      fill(t.int32_data(), [&](int64_t i, int32_t v) { out.data_ptr<uint8_t>()[i] = static_cast<uint8_t>(v); });
      break;
    case at::kBool: fill(t.int32_data(), [&](int64_t i, int32_t v) { out.data_ptr<bool>()[i] = v != 0; }); break;
    case at::kHalf:
    case at::kBFloat16:
      fill(t.int32_data(),
           [&](int64_t i, int32_t v) { reinterpret_cast<uint16_t*>(out.data_ptr())[i] = static_cast<uint16_t>(v); });
      break;
    default: throw std::runtime_error(where + ": unsupported element type");
  }
  return out;
}

void tensor_to_proto(const at::Tensor& value, onnx::TensorProto& t) {
  at::Tensor c = value.detach().to(at::kCPU).contiguous();  // a host copy of a device tensor
  t.set_data_type(onnx_type_of(c.scalar_type()));
  t.clear_dims();
  for (int64_t d : c.sizes()) t.add_dims(d);
  t.clear_float_data();
  t.clear_double_data();
  t.clear_int32_data();
  t.clear_int64_data();
  t.clear_uint64_data();
  t.set_raw_data(
      std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel()) * c.element_size()));
}

}  // namespace ppc::runtime::onnx_ops
