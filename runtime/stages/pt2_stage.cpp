#include "runtime/stages/pt2_stage.h"

#include <algorithm>

#include "runtime/stages/pt2_program.h"
#include "schemas/error.h"

namespace ppc::runtime {

namespace {

class Pt2Stage final : public StageModule {
 public:
  Pt2Stage(int index, std::unique_ptr<Pt2Program> program, std::vector<size_t> in_order, std::vector<size_t> out_order)
      : index_(index), program_(std::move(program)), in_order_(std::move(in_order)), out_order_(std::move(out_order)) {}

  int index() const override { return index_; }

  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& inputs) override {
    if (inputs.size() != in_order_.size())
      throw Error("stage " + std::to_string(index_) + " takes " + std::to_string(in_order_.size()) + " inputs, given " +
                  std::to_string(inputs.size()));
    std::vector<at::Tensor> args(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) args[in_order_[i]] = inputs[i];
    std::vector<at::Tensor> outs = program_->run(args);
    std::vector<at::Tensor> r;
    r.reserve(out_order_.size());
    for (size_t j : out_order_) r.push_back(outs[j]);
    return r;
  }

  void to(const c10::Device& device) override { program_->to(device); }
  void set_training(bool training) override { program_->set_training(training); }
  void set_node_timing(bool on) override { program_->set_timing(on); }
  void end_backward() override { program_->end_backward(); }
  std::vector<NodeTime> node_times_us() const override { return program_->node_times_us(); }
  std::vector<NamedTensor> parameters() override { return program_->parameters(); }
  std::vector<NamedTensor> buffers() override { return program_->buffers(); }
  void save(const std::string& path) override { program_->save(path); }

 private:
  int index_;
  std::unique_ptr<Pt2Program> program_;
  std::vector<size_t> in_order_, out_order_;
};

}  // namespace

std::unique_ptr<StageModule> load_pt2_stage(const LoadedManifest& lm, int stage) {
  const auto& info = lm.manifest.stages.at(stage);
  std::string path = lm.artifact_path(stage);
  Pt2Program::Options options;
  for (const auto& p : info.params) {
    options.preferred.insert(p.name);
    if (!p.trainable) options.frozen.insert(p.name);
  }
  auto program = Pt2Program::load(path, options);
  std::vector<std::string> ins, outs;
  for (const auto& i : info.inputs) ins.push_back(i.name);
  for (const auto& o : info.outputs) outs.push_back(o.name);
  auto in_order = manifest_order(ins, program->input_names(), path, "input");
  auto out_order = manifest_order(outs, program->output_names(), path, "output");
  check_manifest_params(info, program->state_names(), path, stage);
  return std::make_unique<Pt2Stage>(stage, std::move(program), std::move(in_order), std::move(out_order));
}

void check_pt2_stages(const LoadedManifest& lm) {
  Pt2Program::Options o;
  o.check_only = true;
  for (size_t s = 0; s < lm.manifest.stages.size(); ++s) Pt2Program::load(lm.artifact_path(static_cast<int>(s)), o);
}

}  // namespace ppc::runtime
