// C++ mirror of schemas/split-spec.schema.json: what the user asks ppc to do.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "schemas/json_text.h"

namespace ppc::spec {

/// One cut in the topological order.
struct SplitPoint {
  enum class Kind { Module, Node, Value };
  Kind kind = Kind::Module;
  std::string name;
  bool at_end = true;   ///< "end" (default) or "begin"; always true for Value
  std::string pointer;  ///< JSON pointer of this entry, for error locations
};

/// Automatic partitioning into `stages` pieces balanced by a cost.
struct AutoSplit {
  int stages = 0;
  std::string balance = "flops";  ///< time | flops | params | uniform
  /// Where cuts may go: "node" (between any two nodes) or "module" (only
  /// between instances of modules at `module_depth` dotted components).
  std::string cut_at = "node";
  int module_depth = 1;
  /// Cost model (see compiler/analysis/cost_model.h); absent = its default.
  std::optional<double> flops_per_second;
  std::optional<double> link_bytes_per_second;  ///< 0: communication is free
  std::optional<double> memory_cap_mib;         ///< per stage
  std::optional<int> micro_batch_size;
  std::optional<int> optimizer_states;
  std::string pointer;
};

enum class TiePolicy { Replicate, Transmit };
const char* tie_policy_name(TiePolicy p);

/// A tie group the user confirms or declares.
struct TieGroupSpec {
  std::vector<std::string> members;
  std::optional<TiePolicy> policy;
  std::string pointer;
};

struct TieSpec {
  bool detect_folded = true;                ///< tie content-detected folded copies (false opts out)
  TiePolicy policy = TiePolicy::Replicate;  ///< default for every group
  std::vector<TieGroupSpec> groups;
};

/// How one model input is split into micro-batches.
/// One declared dimension: a known extent or a symbolic name ("batch").
struct DimSpec {
  std::optional<int64_t> value;
  std::string symbol;
};

struct InputSpec {
  std::string name;
  std::optional<int> batch_dim;  ///< overrides the inferred batch dim
  bool replicate = false;        ///< every micro-batch gets the whole tensor
  /// Declared element type and shape, for sources that do not record them
  /// (TorchScript archives); checked against the model where it does.
  std::optional<std::string> dtype;
  std::optional<std::vector<DimSpec>> shape;
  std::string pointer;
};

/// Runtime defaults copied into the manifest.
struct Defaults {
  std::optional<std::string> schedule;
  std::optional<int> chunks;
  std::optional<int> dp;  ///< data-parallel replicas of the pipeline
};

struct SplitSpec {
  int version = 1;
  std::vector<SplitPoint> split_points;
  std::optional<AutoSplit> auto_split;
  TieSpec ties;
  std::vector<InputSpec> inputs;
  Defaults defaults;
  std::string file;  ///< display name of the spec file ("" when built in code)
};

/// Parses and validates a split spec document. Every problem is a ppc::Error
/// whose message starts with "file:line:col:" of the offending key or value.
SplitSpec parse_split_spec(const JsonDocument& doc);

/// Reads and parses a spec file; `display_name` is used in messages.
SplitSpec load_split_spec(const std::string& path, const std::string& display_name);

}  // namespace ppc::spec
