#include "runtime/stages/onnx_fusion.h"

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <unordered_map>

namespace ppc::runtime::onnx_fusion {

namespace {

class Matcher {
 public:
  Matcher(const onnx::GraphProto& g, const std::map<std::string, double>& constants)
      : g_(g), scalar_(constants.begin(), constants.end()) {
    for (int i = 0; i < g.node_size(); ++i) {
      const auto& n = g.node(i);
      for (const auto& o : n.output()) producer_[o] = i;
      for (const auto& in : n.input()) ++uses_[in];
      if (n.op_type() == "Constant" && n.attribute_size() == 1 && n.attribute(0).name() == "value") {
        try {
          at::Tensor t = onnx_ops::tensor_from_proto(n.attribute(0).t(), "constant");
          if (t.numel() == 1 && at::isFloatingType(t.scalar_type())) scalar_[n.output(0)] = t.item<double>();
        } catch (const std::exception&) {}
      }
    }
    for (const auto& o : g.output()) uses_[o.name()] += 2;  // never fuse away a graph output
  }

  /// The node producing `value` when it has op type `op` and `value` has exactly `uses` uses.
  const onnx::NodeProto* def(const std::string& value, const char* op, int uses, int* index = nullptr) const {
    auto it = producer_.find(value);
    if (it == producer_.end()) return nullptr;
    const auto& n = g_.node(it->second);
    if (n.op_type() != op || use_count(value) != uses) return nullptr;
    if (!n.attribute().empty() && n.op_type() != "ReduceMean") return nullptr;  // checked by last_axis_only
    if (index) *index = it->second;
    return &n;
  }
  int use_count(const std::string& v) const {
    auto it = uses_.find(v);
    return it == uses_.end() ? 0 : it->second;
  }
  std::optional<double> scalar(const std::string& v) const {
    auto it = scalar_.find(v);
    if (it == scalar_.end()) return std::nullopt;
    return it->second;
  }
  bool is(const std::string& v, double want, double tol) const {
    auto s = scalar(v);
    return s && std::abs(*s - want) <= tol;
  }
  /// The other operand of binary node `n` when one of them is the constant
  /// `want` (within tol), else "".
  std::string other_than(const onnx::NodeProto& n, double want, double tol) const {
    for (int k = 0; k < 2; ++k)
      if (is(n.input(k), want, tol)) return n.input(1 - k);
    return {};
  }

 private:
  const onnx::GraphProto& g_;
  std::unordered_map<std::string, int> producer_;
  std::unordered_map<std::string, int> uses_;
  std::unordered_map<std::string, double> scalar_;
};

bool binary(const onnx::NodeProto& n) { return n.input_size() == 2 && n.output_size() == 1; }

// Mul(Mul(x, Add(Erf(Div(x, sqrt2)), 1)), 0.5) -> gelu(x); Mul operands either way round.
bool match_gelu(const Matcher& m, const onnx::GraphProto& g, int last, Fusions& f) {
  const auto& m2 = g.node(last);
  if (m2.op_type() != "Mul" || !binary(m2)) return false;
  const std::string a = m.other_than(m2, 0.5, 1e-7);
  int i_m1 = -1, i_add = -1, i_erf = -1, i_div = -1;
  const auto* m1 = a.empty() ? nullptr : m.def(a, "Mul", 1, &i_m1);
  if (!m1 || !binary(*m1)) return false;
  for (int k = 0; k < 2; ++k) {
    const auto* add = m.def(m1->input(k), "Add", 1, &i_add);
    if (!add || !binary(*add)) continue;
    std::string x = m1->input(1 - k);
    for (int j = 0; j < 2; ++j) {
      if (!m.is(add->input(1 - j), 1.0, 1e-7)) continue;
      const auto* erf = m.def(add->input(j), "Erf", 1, &i_erf);
      if (!erf) continue;
      const auto* div = m.def(erf->input(0), "Div", 1, &i_div);
      if (!div || !binary(*div) || div->input(0) != x || !m.is(div->input(1), std::sqrt(2.0), 1e-6)) continue;
      f.at[last] = Fused{[](const onnx_ops::KernelIO& io) { io.set(0, at::gelu(io[0])); }, {x}, "Gelu"};
      for (int i : {i_m1, i_add, i_erf, i_div}) f.absorbed[i] = 1;
      return true;
    }
  }
  return false;
}

bool last_axis_only(const onnx::NodeProto& n) {
  if (n.input_size() != 1) return false;  // axes as an input (opset 18): not matched
  bool keep = true, axes_ok = false;
  for (const auto& a : n.attribute()) {
    if (a.name() == "keepdims")
      keep = a.i() != 0;
    else if (a.name() == "axes")
      axes_ok = a.ints_size() == 1 && a.ints(0) == -1;
    else
      return false;
  }
  return keep && axes_ok;
}

// Add(Mul(Div(Sub(x, mean), Sqrt(Add(ReduceMean(Pow(Sub, 2)), eps))), w), b) with
// mean = ReduceMean(x) over the last axis -> layer_norm(x, [last dim], w, b, eps).
bool match_layer_norm(const Matcher& m, const onnx::GraphProto& g, int last, Fusions& f) {
  const auto& add_b = g.node(last);
  if (add_b.op_type() != "Add" || !binary(add_b)) return false;
  for (int k = 0; k < 2; ++k) {
    int i_mul = -1, i_div = -1, i_sub = -1, i_sqrt = -1, i_add_eps = -1, i_var = -1, i_pow = -1, i_mean = -1;
    const auto* mul = m.def(add_b.input(k), "Mul", 1, &i_mul);
    if (!mul || !binary(*mul)) continue;
    std::string b = add_b.input(1 - k);
    for (int j = 0; j < 2; ++j) {
      const auto* div = m.def(mul->input(j), "Div", 1, &i_div);
      if (!div || !binary(*div)) continue;
      std::string w = mul->input(1 - j);
      const auto* sub = m.def(div->input(0), "Sub", 2, &i_sub);
      const auto* sq = m.def(div->input(1), "Sqrt", 1, &i_sqrt);
      if (!sub || !binary(*sub) || !sq) continue;
      const auto* add_eps = m.def(sq->input(0), "Add", 1, &i_add_eps);
      if (!add_eps || !binary(*add_eps)) continue;
      int ve = m.scalar(add_eps->input(1)) ? 0 : m.scalar(add_eps->input(0)) ? 1 : -1;
      if (ve < 0) continue;
      double eps = *m.scalar(add_eps->input(1 - ve));
      const auto* var = m.def(add_eps->input(ve), "ReduceMean", 1, &i_var);
      if (!var || !last_axis_only(*var)) continue;
      const auto* pw = m.def(var->input(0), "Pow", 1, &i_pow);
      if (!pw || !binary(*pw) || pw->input(0) != div->input(0) || !m.is(pw->input(1), 2.0, 0)) continue;
      const auto* mean = m.def(sub->input(1), "ReduceMean", 1, &i_mean);
      std::string x = sub->input(0);
      if (!mean || !last_axis_only(*mean) || mean->input(0) != x) continue;
      f.at[last] = Fused{[eps](const onnx_ops::KernelIO& io) {
                           const at::Tensor& x = io[0];
                           const at::Tensor& w = io[1];
                           const at::Tensor& b = io[2];
                           int64_t d = x.size(-1);
                           if (w.dim() == 1 && w.size(0) == d && b.dim() == 1 && b.size(0) == d) {
                             io.set(0, at::layer_norm(x, {d}, w, b, eps));
                             return;
                           }
                           // Weights that only broadcast: the decomposition itself.
                           at::Tensor c = x - x.mean(-1, true);
                           io.set(0, c / at::sqrt(c.pow(2).mean(-1, true) + eps) * w + b);
                         },
                         {x, w, b},
                         "LayerNormalization"};
      for (int i : {i_mul, i_div, i_sub, i_sqrt, i_add_eps, i_var, i_pow, i_mean}) f.absorbed[i] = 1;
      return true;
    }
  }
  return false;
}

// Mul(Mul(x, 0.5), Add(Tanh(Mul(Add(x, Mul(Pow(x, 3), 0.044715)), sqrt(2/pi))), 1))
// -> gelu(x, "tanh"), every Mul and Add either way round: GPT-2's gelu_new as
// torch's exporters write it.
bool match_gelu_tanh(const Matcher& m, const onnx::GraphProto& g, int last, Fusions& f) {
  const auto& out = g.node(last);
  if (out.op_type() != "Mul" || !binary(out)) return false;
  for (int k = 0; k < 2; ++k) {
    int i_half = -1, i_one = -1, i_tanh = -1, i_scale = -1, i_inner = -1, i_cube_mul = -1, i_pow = -1;
    const auto* half = m.def(out.input(k), "Mul", 1, &i_half);
    const auto* one = m.def(out.input(1 - k), "Add", 1, &i_one);
    if (!half || !one || !binary(*half) || !binary(*one)) continue;
    const std::string x = m.other_than(*half, 0.5, 1e-7);
    const std::string t = m.other_than(*one, 1.0, 1e-7);
    if (x.empty() || t.empty()) continue;
    const auto* tanh = m.def(t, "Tanh", 1, &i_tanh);
    const auto* scale = tanh ? m.def(tanh->input(0), "Mul", 1, &i_scale) : nullptr;
    if (!scale || !binary(*scale)) continue;
    const std::string inner_v = m.other_than(*scale, 0.7978845608028654 /* sqrt(2 / pi) */, 1e-6);
    const auto* inner = inner_v.empty() ? nullptr : m.def(inner_v, "Add", 1, &i_inner);
    if (!inner || !binary(*inner)) continue;
    for (int j = 0; j < 2; ++j) {
      if (inner->input(j) != x) continue;
      const auto* cube_mul = m.def(inner->input(1 - j), "Mul", 1, &i_cube_mul);
      if (!cube_mul || !binary(*cube_mul)) continue;
      const std::string cube = m.other_than(*cube_mul, 0.044715, 1e-7);
      const auto* pw = cube.empty() ? nullptr : m.def(cube, "Pow", 1, &i_pow);
      if (!pw || !binary(*pw) || pw->input(0) != x || !m.is(pw->input(1), 3.0, 0)) continue;
      f.at[last] = Fused{[](const onnx_ops::KernelIO& io) { io.set(0, at::gelu(io[0], "tanh")); }, {x}, "Gelu(tanh)"};
      for (int i : {i_half, i_one, i_tanh, i_scale, i_inner, i_cube_mul, i_pow}) f.absorbed[i] = 1;
      return true;
    }
  }
  return false;
}

// Add(MatMul(x, W), b) (either order) -> addmm(b, x as 2-D, W): what
// nn.Linear runs for a contiguous input, bias added inside the GEMM.
bool match_linear(const Matcher& m, const onnx::GraphProto& g, int last, Fusions& f) {
  const auto& add = g.node(last);
  if (add.op_type() != "Add" || !binary(add)) return false;
  for (int k = 0; k < 2; ++k) {
    int i_mm = -1;
    const auto* mm = m.def(add.input(k), "MatMul", 1, &i_mm);
    if (!mm || !binary(*mm)) continue;
    std::string x = mm->input(0), w = mm->input(1), b = add.input(1 - k);
    f.at[last] = Fused{[](const onnx_ops::KernelIO& io) {
                         const at::Tensor& x = io[0];
                         const at::Tensor& w = io[1];
                         const at::Tensor& b = io[2];
                         if (w.dim() == 2 && b.dim() == 1 && b.size(0) == w.size(1) && x.dim() >= 2 &&
                             x.size(-1) == w.size(0) && x.is_contiguous()) {
                           std::vector<int64_t> sizes = x.sizes().vec();
                           at::Tensor y = at::addmm(b, x.reshape({-1, sizes.back()}), w);
                           sizes.back() = w.size(1);
                           io.set(0, y.view(sizes));
                           return;
                         }
                         io.set(0, at::add(at::matmul(x, w), b));
                       },
                       {x, w, b},
                       "MatMul+Add"};
    f.absorbed[i_mm] = 1;
    return true;
  }
  return false;
}

}  // namespace

Fusions find_fusions(const onnx::GraphProto& graph, const std::map<std::string, double>& constants) {
  Fusions f;
  f.absorbed.assign(static_cast<size_t>(graph.node_size()), 0);
  Matcher m(graph, constants);
  for (int i = 0; i < graph.node_size(); ++i) {
    if (match_gelu(m, graph, i, f)) continue;
    if (match_gelu_tanh(m, graph, i, f)) continue;
    if (match_layer_norm(m, graph, i, f)) continue;
    match_linear(m, graph, i, f);
  }
  return f;
}

}  // namespace ppc::runtime::onnx_fusion
