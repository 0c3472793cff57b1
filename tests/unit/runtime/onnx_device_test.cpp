// ONNX stages on a device, checked without one: the `meta` device stands in
// for CUDA. It refuses every mix of devices ("Tensor on device cpu is not on
// the expected device meta") and every read of data (item(), a copy to the
// host), so a stage that runs forward and backward with its parameters and
// inputs on meta never mixed devices and never read device values on the
// host. Every ONNX sample is split by ppc at test time (as engine_test does),
// each stage runs on the CPU for the reference shapes, then on meta.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/library.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "compiler/driver/driver.h"
#include "runtime/engine/pt_io.h"
#include "runtime/manifest/stage_map.h"
#include "runtime/stages/onnx_graph.h"
#include "tests/unit/runtime/scratch.h"

namespace fs = std::filesystem;
using namespace ppc::runtime;

namespace {

// --- meta kernels LibTorch's C++ lacks ---------------------------------------
// Many ops have their Meta kernels only in Python (torch._meta_registrations),
// not in LibTorch. For those (an aten op with a CPU kernel and no Meta or
// composite one) and the convolutions (whose meta path is the throwing
// *_overrideable): a Meta kernel that first checks the devices as a device
// kernel does (every tensor on meta; a 0-dim CPU tensor passes, as ATen takes
// it as a scalar), then runs the CPU kernel on zero-filled stand-ins of the
// same shapes and returns meta tensors of its results' shapes. No value is
// read from a meta tensor (it has none), so a host read still fails.

void check_on_meta_device(const c10::IValue& v) {
  auto check = [](const at::Tensor& t) {
    if (t.defined() && !t.is_meta() && !(t.is_cpu() && t.dim() == 0))
      TORCH_CHECK(false, "Tensor on device ", t.device(), " is not on the expected device meta!");
  };
  if (v.isTensor()) check(v.toTensor());
  if (v.isTensorList())
    for (const at::Tensor& t : v.toTensorVector()) check(t);
  if (v.isList())
    for (const c10::IValue& e : v.toListRef())
      if (e.isTensor()) check(e.toTensor());
}

c10::IValue stand_in(const c10::IValue& v) {
  auto cpu = [](const at::Tensor& t) {
    return t.defined() && t.is_meta() ? at::zeros(t.sizes(), t.options().device(at::kCPU)) : t;
  };
  if (v.isTensor()) return cpu(v.toTensor());
  if (v.isTensorList()) {
    std::vector<at::Tensor> ts;
    for (const at::Tensor& t : v.toTensorVector()) ts.push_back(cpu(t));
    return ts;
  }
  if (v.isList()) {
    c10::List<c10::IValue> l(v.toList().elementType());
    for (const c10::IValue& e : v.toListRef()) l.push_back(e.isTensor() ? c10::IValue(cpu(e.toTensor())) : e);
    return l;
  }
  return v;
}

c10::IValue to_meta(const c10::IValue& v) {
  auto meta = [](const at::Tensor& t) {
    return t.defined() ? at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kMeta)) : t;
  };
  if (v.isTensor()) return meta(v.toTensor());
  if (v.isTensorList()) {
    std::vector<at::Tensor> ts;
    for (const at::Tensor& t : v.toTensorVector()) ts.push_back(meta(t));
    return ts;
  }
  return v;
}

// Checks and replaces the op's arguments on the stack; runs `cpu` on them.
// An argument the op writes (an out= tensor, self of an in-place op) is
// resized like its stand-in, and returned where the op returns the stand-in.
template <typename F>
void meta_via_cpu(const c10::OperatorHandle& op, torch::jit::Stack* stack, F cpu) {
  const auto& args = op.schema().arguments();
  const size_t n = args.size(), first = stack->size() - n;
  std::vector<std::pair<at::Tensor, at::Tensor>> written;  // (stand-in, meta tensor)
  for (size_t i = first; i < stack->size(); ++i) check_on_meta_device((*stack)[i]);
  for (size_t i = first; i < stack->size(); ++i) {
    c10::IValue original = (*stack)[i];
    (*stack)[i] = stand_in(original);
    const auto* alias = args[i - first].alias_info();
    if (alias && alias->isWrite() && original.isTensor() && original.toTensor().defined())
      written.emplace_back((*stack)[i].toTensor(), original.toTensor());
  }
  cpu(stack);
  for (auto& [standin, meta] : written)
    if (meta.is_meta() && meta.sizes() != standin.sizes()) meta.resize_(standin.sizes());
  const size_t r = op.schema().returns().size();
  for (size_t i = stack->size() - r; i < stack->size(); ++i) {
    c10::IValue& v = (*stack)[i];
    auto it = std::find_if(written.begin(), written.end(),
                           [&](const auto& w) { return v.isTensor() && v.toTensor().is_same(w.first); });
    v = it != written.end() ? c10::IValue(it->second) : to_meta(v);
  }
}

void meta_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  meta_via_cpu(op, stack,
               [&](torch::jit::Stack* s) { op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), s); });
}

std::vector<int64_t> ints(const c10::IValue& v) { return v.toIntVector(); }

// convolution_overrideable(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
void meta_convolution(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  meta_via_cpu(op, stack, [](torch::jit::Stack* s) {
    auto a = torch::jit::pop(*s, 9);
    auto bias = a[2].isNone() ? at::Tensor() : a[2].toTensor();
    s->emplace_back(at::convolution(a[0].toTensor(), a[1].toTensor(), bias, ints(a[3]), ints(a[4]), ints(a[5]),
                                    a[6].toBool(), ints(a[7]), a[8].toInt()));
  });
}

// convolution_backward_overrideable(grad_output, input, weight, stride, padding, dilation, transposed,
// output_padding, groups, output_mask) -> (grad_input, grad_weight, grad_bias)
void meta_convolution_backward(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  meta_via_cpu(op, stack, [](torch::jit::Stack* s) {
    auto a = torch::jit::pop(*s, 10);
    const at::Tensor& w = a[2].toTensor();
    std::vector<int64_t> bias_sizes{a[6].toBool() ? w.size(1) * a[8].toInt() : w.size(0)};
    auto mask = a[9].toBoolList();
    auto r = at::convolution_backward(a[0].toTensor(), a[1].toTensor(), w, bias_sizes, ints(a[3]), ints(a[4]),
                                      ints(a[5]), a[6].toBool(), ints(a[7]), a[8].toInt(), {mask[0], mask[1], mask[2]});
    s->emplace_back(std::get<0>(r));
    s->emplace_back(std::get<1>(r));
    s->emplace_back(std::get<2>(r));
  });
}

class MetaKernels : public ::testing::Environment {
 public:
  void SetUp() override {
    lib_ = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", c10::DispatchKey::Meta, __FILE__, __LINE__);
    auto& d = c10::Dispatcher::singleton();
    for (const auto& name : d.getAllOpNames()) {
      if (name.name.rfind("aten::", 0) != 0) continue;
      auto op = d.findOp(name);
      if (!op) continue;
      using K = c10::DispatchKey;
      std::string full = name.overload_name.empty() ? name.name : name.name + "." + name.overload_name;
      if (name.name == "aten::convolution_overrideable") {
        lib_->impl(full.substr(6).c_str(), torch::CppFunction::makeFromBoxedFunction<&meta_convolution>());
        continue;
      }
      if (name.name == "aten::convolution_backward_overrideable") {
        lib_->impl(full.substr(6).c_str(), torch::CppFunction::makeFromBoxedFunction<&meta_convolution_backward>());
        continue;
      }
      if (!op->hasKernelForDispatchKey(K::CPU) || op->hasKernelForDispatchKey(K::Meta) ||
          op->hasKernelForDispatchKey(K::CompositeImplicitAutograd) ||
          op->hasKernelForDispatchKey(K::CompositeExplicitAutograd) ||
          op->hasKernelForDispatchKey(K::CompositeExplicitAutogradNonFunctional))
        continue;
      lib_->impl(full.substr(6).c_str(), torch::CppFunction::makeFromBoxedFunction<&meta_fallback>());
    }
  }
  void TearDown() override { lib_.reset(); }

 private:
  std::unique_ptr<torch::Library> lib_;
};
::testing::Environment* const kMetaKernels = ::testing::AddGlobalTestEnvironment(new MetaKernels);

fs::path scratch_root() { return ppc::test::scratch_root("ppc_onnx_device_test_"); }
const bool kRemoveScratch = ppc::test::remove_scratch_at_exit("ppc_onnx_device_test_");

fs::path split_onnx(const std::string& sample, const std::string& file, int stages) {
  fs::path out = scratch_root() / (file + "_" + std::to_string(stages));
  fs::remove_all(out);
  fs::create_directories(out.parent_path());
  ppc::driver::SplitOptions o;
  o.model_path = std::string(PPC_SOURCE_DIR) + "/samples/" + sample + "/" + file;
  o.stages = stages;
  o.out_dir = out.string();
  std::ostringstream sink;
  ppc::driver::split(o, sink, sink);
  return out;
}

at::ScalarType dtype_of(const std::string& d) {
  if (d == "float32") return at::kFloat;
  if (d == "int64") return at::kLong;
  if (d == "int32") return at::kInt;
  if (d == "bool") return at::kBool;
  ADD_FAILURE() << "dtype " << d << " not handled by the test";
  return at::kFloat;
}

// A model input: batch 3, other symbolic dims 5; token ids 0 or 1.
at::Tensor model_input(const ppc::manifest::ModelInput& in) {
  std::vector<int64_t> shape;
  for (const auto& d : *in.shape) shape.push_back(d.value ? *d.value : d.symbol == "batch" ? 3 : 5);
  at::ScalarType t = dtype_of(in.dtype);
  if (at::isFloatingType(t)) return at::randn(shape, at::TensorOptions().dtype(t));
  return at::randint(0, 2, shape, at::TensorOptions().dtype(t));
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes() << " " << t.scalar_type() << " on " << t.device();
  return s.str();
}

// Runs every stage of `dir` on the CPU (inputs chained by name), then each
// stage again on meta with meta inputs of the CPU inputs' shapes and dtypes:
// forward, outputs' shapes and device, and a backward reaching the parameters.
void check_on_meta(const fs::path& dir) {
  LoadedManifest lm = load_and_verify(dir.string());
  std::map<std::string, at::Tensor> values;
  for (const auto& in : lm.manifest.model_inputs) values[in.name] = model_input(in);
  const at::Device meta(at::kMeta);
  for (size_t s = 0; s < lm.manifest.stages.size(); ++s) {
    const auto& info = lm.manifest.stages[s];
    SCOPED_TRACE(dir.filename().string() + " stage " + std::to_string(s));
    OnnxGraph::Options options;
    for (const auto& p : info.params)
      if (!p.trainable) options.frozen.insert(p.name);
    auto cpu = OnnxGraph::load(lm.artifact_path(static_cast<int>(s)), options);
    auto dev = OnnxGraph::load(lm.artifact_path(static_cast<int>(s)), options);
    std::vector<at::Tensor> cpu_in, meta_in;
    const std::vector<char> on_host = dev->inputs_read_on_host();
    for (size_t i = 0; i < cpu->input_names().size(); ++i) {
      const std::string& name = cpu->input_names()[i];
      ASSERT_TRUE(values.count(name)) << name;
      const at::Tensor& v = values[name];
      cpu_in.push_back(v);
      if (on_host[i]) {  // a shape an earlier stage computed: given on the host
        meta_in.push_back(v);
        continue;
      }
      at::Tensor m = at::empty(v.sizes(), v.options().device(meta));
      if (at::isFloatingType(v.scalar_type())) m.requires_grad_(true);
      meta_in.push_back(m);
    }
    cpu->to(at::Device(at::kCPU));  // nothing moves
    cpu->set_training(true);
    std::vector<at::Tensor> want;
    {
      at::NoGradGuard no_grad;
      want = cpu->run(cpu_in);
    }
    const auto& outs = cpu->output_names();
    ASSERT_EQ(want.size(), outs.size());
    for (size_t j = 0; j < want.size(); ++j) values[outs[j]] = want[j];

    dev->to(meta);
    dev->set_training(true);
    auto params = dev->parameters();
    for (const auto& [name, p] : params) {
      EXPECT_TRUE(p.is_meta()) << name;
      EXPECT_TRUE(p.requires_grad()) << name;
    }
    for (const auto& [name, b] : dev->buffers())  // floats moved; sizes and indices on the host
      EXPECT_EQ(b.is_meta(), at::isFloatingType(b.scalar_type())) << name;
    std::vector<at::Tensor> got;
    try {
      at::AutoGradMode grad(true);
      got = dev->run(meta_in);
    } catch (const std::exception& e) { FAIL() << "forward on meta: " << e.what(); }
    ASSERT_EQ(got.size(), want.size());
    std::vector<at::Tensor> roots, cots;
    for (size_t j = 0; j < got.size(); ++j) {
      // On meta, or computed on the host from sizes alone (Shape -> ...).
      EXPECT_TRUE(got[j].is_meta() || (got[j].is_cpu() && at::isIntegralType(got[j].scalar_type(), true)))
          << outs[j] << ": " << shape_of(got[j]);
      EXPECT_EQ(got[j].sizes(), want[j].sizes()) << outs[j];
      EXPECT_EQ(got[j].scalar_type(), want[j].scalar_type()) << outs[j];
      if (got[j].requires_grad()) {
        roots.push_back(got[j]);
        cots.push_back(at::ones_like(got[j]));
      }
    }
    if (params.empty()) continue;
    ASSERT_FALSE(roots.empty()) << "no output carries a gradient";
    try {
      torch::autograd::backward(roots, cots);
    } catch (const std::exception& e) { FAIL() << "backward on meta: " << e.what(); }
    for (const auto& [name, p] : params) {
      ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
      EXPECT_TRUE(p.grad().is_meta()) << name;
      EXPECT_EQ(p.grad().sizes(), p.sizes()) << name;
    }
  }
}

struct Case {
  const char* sample;
  const char* file;
};

class OnnxOnMeta : public ::testing::TestWithParam<Case> {};

TEST_P(OnnxOnMeta, StagesRunForwardAndBackwardWithoutMixingDevices) {
  const Case& c = GetParam();
  check_on_meta(split_onnx(c.sample, c.file, 3));
}

// Manifest folders named by PPC_ONNX_DEVICE_MANIFESTS (separated by ':'),
// e.g. the transformer families' splits that e2e_pprun_families leaves in
// the build folder: checked the same way; skipped when it is not set.
TEST(OnnxOnMetaMore, ManifestsNamedByTheEnvironment) {
  const char* env = std::getenv("PPC_ONNX_DEVICE_MANIFESTS");
  if (!env || !*env) GTEST_SKIP() << "PPC_ONNX_DEVICE_MANIFESTS is not set";
  std::stringstream dirs(env);
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty()) check_on_meta(dir);
}

// The one-node models of onnx_op_cases.py (every supported op and its
// variants), in the folder PPC_ONNX_OP_CASES names: each on meta, with the
// inputs the graph reads only as sizes on the host (as a stage gets them),
// output shapes as PyTorch's, and a backward where the case has gradients.
// Cases of load errors and of Dropout's random mask are left out.
TEST(OnnxOnMetaOps, EveryOpCase) {
  const char* env = std::getenv("PPC_ONNX_OP_CASES");
  if (!env || !*env) GTEST_SKIP() << "PPC_ONNX_OP_CASES is not set";
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(env))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  ASSERT_FALSE(dirs.empty());
  int ran = 0;
  for (const auto& dir : dirs) {
    SCOPED_TRACE(dir.filename().string());
    std::map<std::string, at::Tensor> io;
    for (auto& [k, v] : load_tensor_dict((dir / "io.pt").string())) io[k] = v;
    if (io.count("error") || io.count("dropout")) continue;
    auto graph = OnnxGraph::load((dir / "model.onnx").string());
    graph->set_training(io["training"].item<bool>());
    graph->to(at::Device(at::kMeta));
    const std::vector<char> on_host = graph->inputs_read_on_host();
    std::vector<at::Tensor> inputs, wrt;
    for (size_t i = 0; io.count("in" + std::to_string(i)); ++i) {
      const at::Tensor& v = io["in" + std::to_string(i)];
      at::Tensor m = on_host[i] ? v : at::empty(v.sizes(), v.options().device(at::kMeta));
      if (io.count("grad" + std::to_string(i))) {
        m.requires_grad_(true);
        wrt.push_back(m);
      }
      inputs.push_back(m);
    }
    std::vector<at::Tensor> outs;
    try {
      at::AutoGradMode grad(true);
      outs = graph->run(inputs);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "forward on meta: " << e.what();
      continue;
    }
    std::vector<at::Tensor> roots, cots;
    for (size_t j = 0; j < outs.size(); ++j) {
      const at::Tensor& want = io["out" + std::to_string(j)];
      EXPECT_TRUE(outs[j].is_meta() || (outs[j].is_cpu() && at::isIntegralType(outs[j].scalar_type(), true)))
          << "output " << j << ": " << shape_of(outs[j]);
      EXPECT_EQ(outs[j].sizes(), want.sizes()) << "output " << j;
      if (io.count("cot" + std::to_string(j)) && outs[j].requires_grad()) {
        roots.push_back(outs[j]);
        cots.push_back(at::ones_like(outs[j]));
      }
    }
    if (!roots.empty() && !wrt.empty()) {
      try {
        auto grads = torch::autograd::grad(roots, wrt, cots, false, false, /*allow_unused=*/true);
        for (size_t k = 0; k < grads.size(); ++k)
          if (grads[k].defined()) { EXPECT_TRUE(grads[k].is_meta()) << "gradient " << k; }
      } catch (const std::exception& e) { ADD_FAILURE() << "backward on meta: " << e.what(); }
    }
    ++ran;
  }
  EXPECT_GT(ran, 100);
}

INSTANTIATE_TEST_SUITE_P(Samples, OnnxOnMeta,
                         ::testing::Values(Case{"mlp", "mlp.onnx"}, Case{"skip", "skip.onnx"},
                                           Case{"tinygpt", "tinygpt.onnx"}, Case{"tinygpt", "tinygpt_op13.onnx"},
                                           Case{"convnet", "convnet.onnx"}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.file;
                           return n.substr(0, n.find('.'));
                         });

}  // namespace
