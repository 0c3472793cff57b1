// Runs the per-op cases written by onnx_op_cases.py through OnnxGraph and
// compares with the expected values computed there by PyTorch: outputs, and
// the gradients of sum_j out_j * cot_j with respect to the inputs.
//
// Usage: onnx_op_check CASES_DIR    (one line per case; exit 1 on a mismatch)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include <filesystem>
#include <iostream>
#include <map>

#include "runtime/engine/pt_io.h"
#include "runtime/stages/onnx_graph.h"
#include "schemas/error.h"
#include "tests/unit/runtime/tensor_diff.h"

namespace fs = std::filesystem;
using ppc::runtime::OnnxGraph;
using ppc::test::max_diff;

namespace {

bool run_case(const fs::path& dir) {
  std::map<std::string, at::Tensor> io;
  for (auto& [k, v] : ppc::runtime::load_tensor_dict((dir / "io.pt").string())) io[k] = v;
  std::string name = dir.filename().string();
  std::string model = (dir / "model.onnx").string();
  if (io.count("error")) {
    at::Tensor e = io["error"];
    std::string want(reinterpret_cast<const char*>(e.data_ptr<uint8_t>()), static_cast<size_t>(e.numel()));
    try {
      OnnxGraph::load(model);
    } catch (const ppc::Error& err) {
      std::string msg = err.what();
      if (msg.find(want) != std::string::npos) {
        std::cout << "ok    " << name << ": " << msg << "\n";
        return true;
      }
      std::cout << "FAIL  " << name << ": error '" << msg << "' lacks '" << want << "'\n";
      return false;
    }
    std::cout << "FAIL  " << name << ": loaded, expected an error containing '" << want << "'\n";
    return false;
  }
  OnnxGraph::Options options;
  if (io.count("frozen")) {  // initializers that are constants, names one per line
    at::Tensor f = io["frozen"];
    std::string names(reinterpret_cast<const char*>(f.data_ptr<uint8_t>()), static_cast<size_t>(f.numel()));
    for (size_t a = 0, b; a < names.size(); a = b + 1) {
      b = names.find('\n', a);
      if (b == std::string::npos) b = names.size();
      options.frozen.insert(names.substr(a, b - a));
    }
  }
  auto graph = OnnxGraph::load(model, options);
  graph->set_training(io["training"].item<bool>());
  if (io.count("steps") && static_cast<int64_t>(graph->num_steps()) != io["steps"].item<int64_t>()) {
    std::cout << "FAIL  " << name << ": " << graph->num_steps() << " kernels planned, expected "
              << io["steps"].item<int64_t>() << "\n";
    return false;
  }
  std::vector<at::Tensor> inputs;
  for (size_t i = 0; io.count("in" + std::to_string(i)); ++i) {
    at::Tensor t = io["in" + std::to_string(i)].clone();
    if (io.count("grad" + std::to_string(i))) t.requires_grad_(true);
    inputs.push_back(t);
  }
  std::vector<at::Tensor> outs;
  {
    at::AutoGradMode grad(true);
    outs = graph->run(inputs);
  }
  bool ok = true;
  double worst = 0;
  std::string why;
  if (io.count("dropout")) {
    double ratio = io["dropout"].item<double>();
    at::Tensor mask = outs.at(1), x = inputs[0];
    double kept = mask.to(at::kDouble).mean().item<double>();
    bool values = at::allclose(outs[0], at::where(mask, x / (1 - ratio), at::zeros_like(x)));
    if (!values || std::abs(kept - (1 - ratio)) > 0.05) {
      std::cout << "FAIL  " << name << ": kept " << kept << " (want ~" << 1 - ratio << "), values ok " << values
                << "\n";
      return false;
    }
    std::cout << "ok    " << name << ": kept " << kept << ", dropped values 0, kept scaled by 1/(1-ratio)\n";
    return true;
  }
  for (size_t j = 0; j < outs.size(); ++j) {
    std::string key = "out" + std::to_string(j);
    double d = max_diff(outs[j], io[key], why);
    worst = std::max(worst, d);
    if (d > 1e-5) {
      std::cout << "FAIL  " << name << ": " << key << " differs by " << d << (why.empty() ? "" : " (" + why + ")")
                << "\n";
      ok = false;
    }
  }
  std::vector<at::Tensor> roots, cots;
  for (size_t j = 0; j < outs.size(); ++j) {
    auto it = io.find("cot" + std::to_string(j));
    if (it == io.end()) continue;
    if (!outs[j].requires_grad()) {
      std::cout << "FAIL  " << name << ": output " << j << " carries no gradient\n";
      return false;
    }
    roots.push_back(outs[j]);
    cots.push_back(it->second);
  }
  std::vector<at::Tensor> wrt;
  std::vector<size_t> wrt_index;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) {
      wrt.push_back(inputs[i]);
      wrt_index.push_back(i);
    }
  size_t checked = 0;
  if (!roots.empty() && !wrt.empty()) {
    auto grads =
        torch::autograd::grad(roots, wrt, cots, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t k = 0; k < grads.size(); ++k) {
      std::string key = "grad" + std::to_string(wrt_index[k]);
      at::Tensor g = grads[k].defined() ? grads[k] : at::zeros_like(wrt[k]);
      double d = max_diff(g, io[key], why);
      worst = std::max(worst, d);
      ++checked;
      if (d > 1e-5) {
        std::cout << "FAIL  " << name << ": " << key << " differs by " << d << (why.empty() ? "" : " (" + why + ")")
                  << "\n";
        ok = false;
      }
    }
  }
  if (ok)
    std::cout << "ok    " << name << ": " << graph->num_steps() << " kernels, " << outs.size() << " outputs, "
              << checked << " gradients, max diff " << worst << "\n";
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: onnx_op_check CASES_DIR\n";
    return 2;
  }
  at::set_num_threads(1);
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(argv[1]))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  int failed = 0;
  for (const auto& d : dirs) {
    try {
      if (!run_case(d)) ++failed;
    } catch (const std::exception& e) {
      std::cout << "FAIL  " << d.filename().string() << ": " << e.what() << "\n";
      ++failed;
    }
  }
  std::cout << dirs.size() - failed << " of " << dirs.size() << " cases pass\n";
  return failed ? 1 : 0;
}
