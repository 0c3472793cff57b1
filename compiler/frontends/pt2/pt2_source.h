// The .pt2 frontend's handle to the source program, shared with the .pt2
// emitter only: the archive, the serialized ExportedProgram (JSON) and the
// graph-signature facts the IR does not carry. No torch.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/frontends/source_model.h"
#include "schemas/zip_archive.h"

namespace ppc::pt2_frontend {

/// One placeholder of the program that holds stored state (an IR param).
struct Pt2Param {
  std::string placeholder;  ///< the graph's input name ("p_l1_weight")
  std::string fqn;          ///< the state name ("l1.weight") == ir::Param::name
  nlohmann::json spec;      ///< its input_spec entry, copied into stages as is
  nlohmann::json payload;   ///< its PayloadMeta (weights or constants config)
  bool constant = false;    ///< from the constants config (else the weights config)
};

class Pt2Source : public SourceModel {
 public:
  const ir::Graph& graph() const override { return graph_; }
  ir::Graph& mutable_graph() override { return graph_; }
  const char* format() const override { return "pt2"; }
  const char* artifact_extension() const override { return ".pt2"; }

  const std::string& path() const { return path_; }
  /// The serialized ExportedProgram (models/<name>.json).
  const nlohmann::json& program() const { return program_; }
  const nlohmann::json& graph_json() const { return program_["graph_module"]["graph"]; }
  /// The JSON node behind IR node `source_index`, and any node by index.
  const nlohmann::json& node_json(int source_index) const { return graph_json()["nodes"][source_index]; }
  /// Indexed like ir::Graph::params.
  const std::vector<Pt2Param>& params() const { return params_; }
  /// Placeholder name -> IR value (params and user inputs).
  const std::map<std::string, int>& placeholders() const { return placeholders_; }
  /// Symbolic-int name -> index of the JSON node that defines it
  /// (aten.sym_size.int, _operator.mul, ...). These nodes are not IR nodes: a
  /// stage recomputes the sizes it uses from the tensors it has.
  const std::map<std::string, int>& sym_defs() const { return sym_defs_; }
  /// The bytes of a weight or constant file (path_name of a PayloadMeta).
  std::string payload_bytes(const Pt2Param& p) const;
  /// Whether tensor `name`'s dimension `dim` is exactly the symbol `symbol`.
  bool dim_is_symbol(const std::string& name, size_t dim, const std::string& symbol) const;

 private:
  friend class Pt2Lowering;
  std::string path_;
  std::unique_ptr<zip::Reader> zip_;
  std::string prefix_;  ///< the archive's top folder, with '/'
  nlohmann::json program_;
  ir::Graph graph_;
  std::vector<Pt2Param> params_;
  std::map<std::string, int> placeholders_;
  std::map<std::string, int> sym_defs_;
};

/// The value of a serialized union (`{"as_tensor": {...}}`: an object of one
/// member). Throws nlohmann::json::type_error for anything else, so that a
/// malformed archive is an error, not undefined behaviour.
const nlohmann::json& union_value(const nlohmann::json& u);

/// The key of a serialized union ("as_tensor"); throws as union_value().
std::string union_kind(const nlohmann::json& u);

/// An integer of the archive's JSON. Throws nlohmann::json::type_error where
/// it is not one that fits int64 (a float is not converted).
int64_t as_int64(const nlohmann::json& j);

/// The symbol a serialized size is exactly ("s77" for Symbol('s77', ...)), or "".
std::string size_symbol(const nlohmann::json& sym_int);

}  // namespace ppc::pt2_frontend
