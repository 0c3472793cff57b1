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

double median_us(int rounds, int iters, const std::function<void()>& f) {
  for (int i = 0; i < std::max(3, iters / 5); ++i) f();  // warm-up (TorchScript profiles its first runs)
  std::vector<double> t;
  for (int r = 0; r < rounds; ++r) {
    auto a = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) f();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::micro>(b - a).count() / iters);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
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
  const int rounds = 5;
  at::Tensor x = ppc::runtime::load_tensor_dict(argv[3]).at(0).second;

  auto graph = ppc::runtime::OnnxGraph::load(argv[1]);
  auto params = graph->parameters();
  double onnx_fwd = median_us(rounds, iters, [&] {
    at::NoGradGuard g;
    graph->run({x});
  });
  double onnx_fb = median_us(rounds, iters, [&] {
    for (auto& p : params) p.second.mutable_grad().reset();
    sum_float(graph->run({x})).backward();
  });

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
  double ts_fwd = median_us(rounds, iters, [&] {
    at::NoGradGuard g;
    ts_run();
  });
  double ts_fb = median_us(rounds, iters, [&] {
    for (auto& p : ts_params) p.mutable_grad().reset();
    sum_float(ts_run()).backward();
  });
  std::cout << "onnx steps " << graph->num_steps() << "\n"
            << "onnx fwd_us " << onnx_fwd << "\nonnx fwdbwd_us " << onnx_fb << "\n"
            << "torchscript fwd_us " << ts_fwd << "\ntorchscript fwdbwd_us " << ts_fb << "\n";
  return 0;
}
