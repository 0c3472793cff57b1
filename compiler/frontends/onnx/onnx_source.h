// The ONNX frontend's handle to the source model, shared with the ONNX
// emitter only (it includes ONNX's protobuf types).
#pragma once

#include <google/protobuf/arena.h>

#include <future>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schemas/onnx_proto.h"

#include "compiler/frontends/source_model.h"

namespace ppc::onnx_frontend {

class OnnxSource : public SourceModel {
 public:
  const ir::Graph& graph() const override { return graph_; }
  ir::Graph& mutable_graph() override { return graph_; }
  const char* format() const override { return "onnx"; }
  const char* artifact_extension() const override { return ".onnx"; }
  int64_t opset() const override { return opset_; }

  /// The model after shape inference (value_info filled in).
  const onnx::ModelProto& model() const { return model_; }
  /// The source node of IR node `id` (ir::Node::source_index).
  const onnx::NodeProto& node_proto(int source_index) const { return model_.graph().node(source_index); }
  /// The stored tensor behind a param's `data_source` name.
  const onnx::TensorProto& initializer(const std::string& name) const;
  /// Type of a value as the source (after inference) declares it; nullptr if unknown.
  const onnx::TypeProto* value_type(const std::string& name) const;
  /// value_type() of IR value `v`'s name, looked up once by lowering for the
  /// graph's inputs and node outputs (a hash lookup by name otherwise).
  const onnx::TypeProto* value_type(ir::ValueId v) const {
    if (v >= 0 && static_cast<size_t>(v) < value_types_.size() && value_types_[v].first) return value_types_[v].second;
    return value_type(graph_.values[v].name);
  }
  /// Whether the model file kept initializers as external data (model() holds
  /// them in memory now; stages are written with data files of their own).
  bool had_external_data() const { return external_data_; }
  /// Whether the model's shape inference ran strictly and passed: every node's
  /// types checked against its schema and inferred without an error, on the
  /// final types, which the stages carry. Its stages are then consistent
  /// without their own strict inference (a stage holds less than the whole
  /// model, never a type the whole model did not pass).
  bool strictly_inferred() const { return strictly_inferred_; }

 private:
  friend std::unique_ptr<SourceModel> load_onnx(const std::string&, const std::string&, std::vector<std::string>*,
                                                const std::map<std::string, int64_t>&);
  friend class OnnxLowering;
  friend int prepare_model(OnnxSource&, const std::string&, const std::string&);
  friend void infer_model_shapes(OnnxSource&, const std::string&, const std::string&, const std::string&,
                                 std::vector<std::string>*, std::future<void>&);

  // The model's messages live in one arena: a large model is hundreds of
  // thousands of small messages, allocated and freed in bulk this way.
  google::protobuf::Arena arena_;
  onnx::ModelProto& model_ = *google::protobuf::Arena::CreateMessage<onnx::ModelProto>(&arena_);
  ir::Graph graph_;
  int64_t opset_ = 0;
  bool external_data_ = false;
  bool strictly_inferred_ = false;
  // Lowering's, computed beside inference: the "/"-joined scope prefixes of
  // every node name, and each node's module path (moved into the IR).
  std::set<std::string> scopes_;
  std::vector<std::string> node_modules_;
  /// The position of initializer `name` in model_, or ir::kNone.
  int initializer_at(std::string_view name) const {
    return initializer_index_.find(name,
                                   [this](int i) -> std::string_view { return model_.graph().initializer(i).name(); });
  }
  auto type_name() const {
    return [this](int k) { return types_[k].first; };
  }
  /// Records the type of value `name` (held in model_); a later one replaces an earlier.
  void set_type(std::string_view name, const onnx::TypeProto* type) {
    const int k = static_cast<int>(types_.size());
    types_.emplace_back(name, type);
    if (types_index_.insert(name, k, type_name())) return;
    types_.pop_back();
    types_[types_index_.find(name, type_name())].second = type;
  }

  // Both over names held in model_, which is not changed after lowering.
  ir::NameIndex initializer_index_;  // over model_.graph().initializer(i).name()
  /// Each value's type in model_ (input, value_info, output: the last wins).
  std::vector<std::pair<std::string_view, const onnx::TypeProto*>> types_;
  ir::NameIndex types_index_;  // over types_[k].first
  /// Per IR value: whether lowering looked its type up, and the type.
  std::vector<std::pair<bool, const onnx::TypeProto*>> value_types_;
};

}  // namespace ppc::onnx_frontend
