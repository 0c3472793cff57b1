// Times one model as an ONNX stage (OnnxGraph) and as a TorchScript module on
// the same batch: forward (no grad) and forward+backward, per call, median of
// several rounds. One thread. tools/bench_onnx_stage.py drives it and adds
// PyTorch eager.
//
// Usage: bench_onnx_stage MODEL.onnx MODEL.pt BATCH.pt ITERS
//   BATCH.pt: {"input": tensor}. Prints lines "onnx fwd_us X", "onnx fwdbwd_us X",
//   "torchscript fwd_us X", "torchscript fwdbwd_us X", "onnx steps N".
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>

#include "runtime/engine/pt_io.h"
#include "runtime/stages/onnx_graph.h"

namespace {

// Per-call times of several closures, measured in interleaved rounds (so a
// busy neighbour slows them alike); the best round of each. Warm-up first
// (TorchScript's profiling executor optimises after its first runs).
std::vector<double> best_us(int rounds, int iters, const std::vector<std::function<void()>>& fs) {
  for (const auto& f : fs)
    for (int i = 0; i < std::max(3, iters / 5); ++i) f();
  std::vector<double> best(fs.size(), 1e300);
  for (int r = 0; r < rounds; ++r)
    for (size_t k = 0; k < fs.size(); ++k) {
      auto a = std::chrono::steady_clock::now();
      for (int i = 0; i < iters; ++i) fs[k]();
      auto b = std::chrono::steady_clock::now();
      best[k] = std::min(best[k], std::chrono::duration<double, std::micro>(b - a).count() / iters);
    }
  return best;
}

at::Tensor sum_float(const std::vector<at::Tensor>& outs) {
  at::Tensor s;
  for (const auto& o : outs)
    if (at::isFloatingType(o.scalar_type())) s = s.defined() ? s + o.sum() : o.sum();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: bench_onnx_stage MODEL.onnx MODEL.pt BATCH.pt ITERS\n";
    return 2;
  }
  at::set_num_threads(1);
  int iters = std::stoi(argv[4]);
  const int rounds = 7;
  at::Tensor x = ppc::runtime::load_tensor_dict(argv[3]).at(0).second;

  auto graph = ppc::runtime::OnnxGraph::load(argv[1]);
  auto params = graph->parameters();
  torch::jit::Module m = torch::jit::load(argv[2]);
  m.eval();
  std::vector<at::Tensor> ts_params;
  for (const auto& p : m.parameters()) ts_params.push_back(p);
  auto ts_run = [&] {
    auto r = m.forward({x});
    std::vector<at::Tensor> outs;
    if (r.isTuple()) {
      for (const auto& v : r.toTupleRef().elements()) outs.push_back(v.toTensor());
    } else {
      outs.push_back(r.toTensor());
    }
    return outs;
  };
  auto t = best_us(rounds, iters,
                   {[&] {
                      at::NoGradGuard g;
                      graph->run({x});
                    },
                    [&] {
                      at::NoGradGuard g;
                      ts_run();
                    },
                    [&] {
                      for (auto& p : params) p.second.mutable_grad().reset();
                      sum_float(graph->run({x})).backward();
                    },
                    [&] {
                      for (auto& p : ts_params) p.mutable_grad().reset();
                      sum_float(ts_run()).backward();
                    }});
  std::cout << "onnx steps " << graph->num_steps() << "\n"
            << "onnx fwd_us " << t[0] << "\nonnx fwdbwd_us " << t[2] << "\n"
            << "torchscript fwd_us " << t[1] << "\ntorchscript fwdbwd_us " << t[3] << "\n";
  return 0;
}
