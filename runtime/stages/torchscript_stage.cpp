#include "runtime/stages/torchscript_stage.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "schemas/error.h"

namespace ppc::runtime {

namespace {

// The TorchScript interpreter's errors span many lines (a Python-style
// traceback of the serialized code); the line that says what went wrong is
// the one naming the exception, usually the last.
std::string key_line(const std::string& what) {
  std::string best;
  size_t start = 0;
  while (start < what.size()) {
    size_t end = what.find('\n', start);
    if (end == std::string::npos) end = what.size();
    std::string line = what.substr(start, end - start);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    if (line.rfind("RuntimeError: ", 0) == 0) return line.substr(14);
    if (!line.empty()) best = line;
    start = end + 1;
  }
  return best;
}

// Which forward arguments the graph writes to, directly or through a view
// (a cut just before `relu_`, `add_`, ...): the stage must get its own copy.
// The engine hands a received input in as a leaf that requires grad, which
// autograd forbids modifying in place, and hands a local producer's output
// in as the very tensor that producer keeps for its backward.
std::vector<bool> written_inputs(torch::jit::Module& module) {
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
  torch::jit::AliasDb aliases(graph);
  std::vector<bool> out;
  for (size_t i = 1; i < graph->inputs().size(); ++i) out.push_back(aliases.hasWriters(graph->inputs()[i]));
  return out;
}

// Replaces a module's parameters and buffers by copies on `to` (one copy per
// tensor, so tied weights stay tied: Module::to's in-place set_data is
// refused between some device types).
void move_state(torch::jit::Module& module, const c10::Device& to) {
  std::map<const c10::TensorImpl*, at::Tensor> moved;
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) state.emplace_back(p.name, p.value);
  for (const auto& b : module.named_buffers(/*recurse=*/true)) state.emplace_back(b.name, b.value);
  for (const auto& [dotted, t] : state) {
    auto it = moved.find(t.unsafeGetTensorImpl());
    if (it == moved.end()) {
      at::Tensor n = t.detach().to(to);
      n.set_requires_grad(t.requires_grad());
      it = moved.emplace(t.unsafeGetTensorImpl(), n).first;
    }
    torch::jit::Module owner = module;
    std::string name = dotted;
    for (auto dot = name.find('.'); dot != std::string::npos; dot = name.find('.')) {
      owner = owner.attr(name.substr(0, dot)).toModule();
      name = name.substr(dot + 1);
    }
    owner.setattr(name, it->second);
  }
}

// Points the device constants of a module's code that name `from` at `to`: a
// traced graph has the device it was traced on baked into its factory calls
// (torch.arange(T, device="cpu") for GPT-2's positions), which would otherwise
// create those tensors there. The code is shared by the module's copies.
void retarget_device_constants(const torch::jit::Module& module, const c10::Device& from, const c10::Device& to) {
  std::vector<torch::jit::Block*> blocks;
  for (const auto& sub : module.modules())
    for (const auto& method : sub.get_methods()) blocks.push_back(method.graph()->block());
  while (!blocks.empty()) {
    torch::jit::Block* b = blocks.back();
    blocks.pop_back();
    for (torch::jit::Node* n : b->nodes()) {
      for (torch::jit::Block* inner : n->blocks()) blocks.push_back(inner);
      if (n->kind() != c10::prim::Constant || n->outputs().size() != 1 ||
          n->output()->type()->kind() != c10::TypeKind::DeviceObjType)
        continue;
      auto value = torch::jit::toIValue(n->output());
      if (!value || !value->isDevice() || value->toDevice() != from) continue;
      n->s_(c10::attr::value, to.str());
    }
  }
}

class TorchScriptStage final : public StageModule {
 public:
  TorchScriptStage(int index, std::string path, torch::jit::Module module, std::string metadata, size_t num_outputs)
      : index_(index),
        path_(std::move(path)),
        module_(std::move(module)),
        metadata_(std::move(metadata)),
        num_outputs_(num_outputs) {
    training_at_load_ = module_.is_training();
    written_ = written_inputs(module_);
  }

  int index() const override { return index_; }

  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs) override {
    std::vector<c10::IValue> args;
    args.reserve(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i)
      args.emplace_back(i < written_.size() && written_[i] && inputs[i].defined() ? inputs[i].clone() : inputs[i]);
    c10::IValue result;
    // The graph executor's optimizations stay off: with them, LibTorch's
    // profiling executor turns a training stage into one differentiable
    // graph whose backward runs the interpreter over autodiff's formulas
    // (ReLU's gradient as gt + type_as + mul, three passes where eager
    // autograd's threshold_backward makes one), a few percent slower than
    // eager per micro-batch, and whose backward always computes every
    // gradient (the zero-bubble schedules need the input gradients alone).
    // Off, each node runs as an eager ATen call recorded by autograd. The
    // switch is per thread and read on every call, so it is set here, on
    // whatever thread runs the stage.
    torch::jit::GraphOptimizerEnabledGuard eager_autograd(false);
    try {
      result = module_.forward(args);
    } catch (const c10::Error& e) {
      throw Error(path_ + ": the stage failed on its inputs: " + key_line(e.what_without_backtrace()));
    } catch (const std::runtime_error& e) {  // the interpreter rethrows with a TorchScript traceback
      throw Error(path_ + ": the stage failed on its inputs: " + key_line(e.what()));
    }
    std::vector<at::Tensor> out;
    if (result.isTuple()) {
      for (const auto& v : result.toTupleRef().elements()) out.push_back(v.toTensor());
    } else {
      out.push_back(result.toTensor());
    }
    if (out.size() != num_outputs_)
      throw Error("stage " + std::to_string(index_) + " returned " + std::to_string(out.size()) +
                  " outputs, the manifest lists " + std::to_string(num_outputs_));
    return out;
  }

  // Parameters, buffers and the graphs' device constants follow `device`
  // (move_state and retarget_device_constants, above).
  void to(const c10::Device& device) override {
    if (device == device_) return;
    move_state(module_, device);
    retarget_device_constants(module_, device_, device);
    device_ = device;
  }

  void set_training(bool training) override { module_.train(training); }

  std::vector<NamedTensor> parameters() override {
    std::vector<NamedTensor> out;
    for (const auto& p : module_.named_parameters(/*recurse=*/true)) out.emplace_back(p.name, p.value);
    return out;
  }

  std::vector<NamedTensor> buffers() override {
    std::vector<NamedTensor> out;
    for (const auto& b : module_.named_buffers(/*recurse=*/true)) out.emplace_back(b.name, b.value);
    return out;
  }

  void save(const std::string& path) override {
    // The artifact keeps the training flag it was written with; only the
    // values change.
    bool now = module_.is_training();
    module_.train(training_at_load_);
    torch::jit::ExtraFilesMap extra;
    if (!metadata_.empty()) extra["ppc_stage.json"] = metadata_;
    if (device_.is_cpu()) {
      module_.save(path, extra);
    } else {                                         // the artifact holds host tensors and code, as the one loaded did
      torch::jit::Module host = module_.deepcopy();  // shares the code with module_
      // The live module keeps its tensors: the engine and the optimizer hold them.
      move_state(host, c10::Device(c10::kCPU));
      retarget_device_constants(host, device_, c10::Device(c10::kCPU));
      host.save(path, extra);
      retarget_device_constants(module_, c10::Device(c10::kCPU), device_);  // the shared code back
    }
    module_.train(now);
  }

 private:
  int index_;
  std::string path_;
  torch::jit::Module module_;
  std::string metadata_;
  size_t num_outputs_;
  bool training_at_load_ = false;
  std::vector<bool> written_;  ///< per forward argument: the graph modifies it in place
  c10::Device device_{c10::kCPU};
};

}  // namespace

std::unique_ptr<StageModule> load_torchscript_stage(const LoadedManifest& lm, int stage) {
  const auto& info = lm.manifest.stages.at(stage);
  std::string path = lm.artifact_path(stage);
  torch::jit::ExtraFilesMap extra{{"ppc_stage.json", ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, c10::kCPU, extra);
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw Error(path + ": cannot load the TorchScript stage: " + what.substr(0, what.find('\n')));
  }
  std::vector<std::string> have;
  for (const auto& p : module.named_parameters(true)) have.push_back(p.name);
  for (const auto& b : module.named_buffers(true)) have.push_back(b.name);
  for (const auto& p : info.params) {
    if (std::find(have.begin(), have.end(), p.name) == have.end())
      throw Error(path + ": stage " + std::to_string(stage) + " has no parameter or buffer '" + p.name +
                  "' that the manifest lists");
  }
  return std::make_unique<TorchScriptStage>(stage, path, std::move(module), extra["ppc_stage.json"],
                                            info.outputs.size());
}

}  // namespace ppc::runtime
