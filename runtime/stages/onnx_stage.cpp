#include "runtime/stages/onnx_stage.h"

#include <ATen/ATen.h>

#include "runtime/stages/onnx_graph.h"
#include "schemas/error.h"

namespace ppc::runtime {

namespace {

bool is_identity(const std::vector<size_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != i) return false;
  return true;
}

class OnnxStage final : public StageModule {
 public:
  OnnxStage(int index, std::unique_ptr<OnnxGraph> graph, std::vector<size_t> in_order, std::vector<size_t> out_order)
      : index_(index),
        graph_(std::move(graph)),
        in_order_(std::move(in_order)),
        out_order_(std::move(out_order)),
        in_identity_(is_identity(in_order_)),
        out_identity_(is_identity(out_order_)) {}

  int index() const override { return index_; }

  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs) override {
    if (in_identity_) return reorder_out(graph_->run(inputs));
    std::vector<at::Tensor> args(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) args[in_order_[i]] = inputs[i];
    return reorder_out(graph_->run(args));
  }

  void to(const c10::Device& device) override { graph_->to(device); }
  std::vector<bool> inputs_on_host() const override {
    const std::vector<char> graph = graph_->inputs_read_on_host();  // the graph's input order
    std::vector<bool> out(in_order_.size());
    for (size_t i = 0; i < in_order_.size(); ++i) out[i] = graph.at(in_order_[i]) != 0;
    return out;
  }
  void set_training(bool training) override { graph_->set_training(training); }
  void set_node_timing(bool on) override { graph_->set_timing(on); }
  void end_backward() override { graph_->end_backward(); }
  std::vector<NodeTime> node_times_us() const override { return graph_->node_times_us(); }
  std::vector<NamedTensor> parameters() override { return graph_->parameters(); }
  std::vector<NamedTensor> buffers() override { return graph_->buffers(); }
  void save(const std::string& path) override { graph_->save(path); }

 private:
  std::vector<at::Tensor> reorder_out(std::vector<at::Tensor> outs) const {
    if (out_identity_) return outs;
    std::vector<at::Tensor> r;
    for (size_t j : out_order_) r.push_back(outs[j]);
    return r;
  }

  int index_;
  std::unique_ptr<OnnxGraph> graph_;
  std::vector<size_t> in_order_, out_order_;
  bool in_identity_, out_identity_;
};

}  // namespace

std::unique_ptr<StageModule> load_onnx_stage(const LoadedManifest& lm, int stage) {
  const auto& info = lm.manifest.stages.at(stage);
  std::string path = lm.artifact_path(stage);
  OnnxGraph::Options options;
  for (const auto& p : info.params)
    if (!p.trainable) options.frozen.insert(p.name);
  auto graph = OnnxGraph::load(path, options);
  std::vector<std::string> ins, outs;
  for (const auto& i : info.inputs) ins.push_back(i.name);
  for (const auto& o : info.outputs) outs.push_back(o.name);
  auto in_order = manifest_order(ins, graph->input_names(), path, "input");
  auto out_order = manifest_order(outs, graph->output_names(), path, "output");
  std::vector<std::string> have;
  for (const auto& p : graph->parameters()) have.push_back(p.first);
  for (const auto& b : graph->buffers()) have.push_back(b.first);
  check_manifest_params(info, have, path, stage);
  return std::make_unique<OnnxStage>(stage, std::move(graph), std::move(in_order), std::move(out_order));
}

void check_onnx_stages(const LoadedManifest& lm) {
  OnnxGraph::Options o;
  o.check_only = true;
  for (size_t s = 0; s < lm.manifest.stages.size(); ++s) OnnxGraph::load(lm.artifact_path(static_cast<int>(s)), o);
}

}  // namespace ppc::runtime
