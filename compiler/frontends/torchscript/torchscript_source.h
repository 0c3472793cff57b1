// The TorchScript frontend's handle to the source model, shared with the
// TorchScript emitter only (it includes LibTorch).
#pragma once

#include <torch/script.h>

#include <cctype>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "compiler/frontends/source_model.h"

namespace ppc::torchscript_frontend {

/// `name` as a TorchScript identifier not yet in `taken` (then added to it):
/// non-alphanumerics become '_', a leading digit (or nothing) gets `prefix`,
/// clashes get "_1", "_2", ... ("layer0.lin.weight" -> "layer0_lin_weight",
/// "33" with prefix "v" -> "v33").
inline std::string unique_identifier(const std::string& name, const char* prefix, std::set<std::string>& taken) {
  std::string base;
  for (char c : name) base += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (base.empty() || std::isdigit(static_cast<unsigned char>(base[0]))) base = prefix + base;
  std::string id = base;
  for (int k = 1; taken.count(id); ++k) id = base + "_" + std::to_string(k);
  taken.insert(id);
  return id;
}

/// One stored tensor (IR param) of the source module.
struct SourceParam {
  std::string name;                  ///< canonical dotted name (== ir::Param::name)
  std::vector<std::string> aliases;  ///< other dotted names of the same tensor
  at::Tensor tensor;
  bool is_buffer = false;  ///< registered buffer or plain tensor attribute
};

class TorchScriptSource : public SourceModel {
 public:
  const ir::Graph& graph() const override { return graph_; }
  ir::Graph& mutable_graph() override { return graph_; }
  const char* format() const override { return "torchscript"; }
  const char* artifact_extension() const override { return ".pt"; }

  /// The inlined, attribute-resolved forward graph the IR was lowered from.
  /// Params are read by `ppc::param[index=k]()` nodes at its top (no inputs);
  /// `training` by one `prim::GetAttr[name="training"](self)` node.
  torch::jit::Graph& jit_graph() const { return *jit_graph_; }
  torch::jit::Value* self() const { return jit_graph_->inputs().at(0); }
  /// The source node of IR node `source_index`.
  torch::jit::Node* jit_node(int source_index) const { return nodes_.at(static_cast<size_t>(source_index)); }
  /// The JIT value behind IR value `v` (the ppc::param output for params).
  torch::jit::Value* jit_value(ir::ValueId v) const { return values_.at(static_cast<size_t>(v)); }
  /// Indexed like ir::Graph::params.
  const std::vector<SourceParam>& params() const { return params_; }
  /// The source module's `training` flag when it was saved.
  bool training() const { return training_; }
  std::string artifact_param_name(int index) const override { return flat_names_.at(static_cast<size_t>(index)); }

 private:
  friend class TorchScriptLowering;
  friend std::unique_ptr<SourceModel> load_torchscript(const std::string&, const std::string&,
                                                       std::vector<std::string>*);

  torch::jit::Module module_;
  std::shared_ptr<torch::jit::Graph> jit_graph_;
  ir::Graph graph_;
  std::vector<torch::jit::Node*> nodes_;
  std::vector<torch::jit::Value*> values_;
  std::vector<SourceParam> params_;
  bool training_ = false;
  std::vector<std::string> flat_names_;  ///< indexed like params_
};

}  // namespace ppc::torchscript_frontend
