// C++ mirror of schemas/manifest.schema.json: the stage graph ppc writes and
// pprun reads. Both sides go through these structs; the JSON key order written
// here is the canonical one, so identical manifests are byte-identical.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace ppc::manifest {

constexpr int kVersion = 1;

/// One dimension: a known extent, a symbolic name, or unknown (JSON null).
struct Dim {
  std::optional<int64_t> value;
  std::string symbol;
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
};

/// Name, element type and shape of a tensor crossing an artifact boundary.
struct TensorInfo {
  std::string name;
  std::string dtype;                      ///< "float32", "int64", ...
  std::optional<std::vector<Dim>> shape;  ///< nullopt: rank unknown
  std::optional<int> batch_dim;           ///< which dim is split into micro-batches
};

/// Where a stage input comes from.
struct StageInput : TensorInfo {
  std::string source;   ///< "model_input" | "edge" | "tie"
  int from_stage = -1;  ///< producer stage for "edge"/"tie"; -1 for model inputs
};

/// A stage output and who receives it.
struct StageOutput : TensorInfo {
  std::vector<int> to_stages;  ///< consumer stages (ascending)
  bool model_output = false;   ///< also a model output
};

/// A parameter stored in a stage artifact.
struct StageParam {
  std::string name;      ///< name inside the artifact
  std::string original;  ///< name in the source model (dotted for TorchScript)
  std::string dtype;
  std::vector<int64_t> shape;
  int64_t bytes = 0;
  bool trainable = true;
  /// In the source module's state_dict() (params.pt saves it); false for an
  /// exporter's constant or a non-persistent buffer.
  bool state = true;
  /// Other state_dict() names of the same tensor (a tie the exporter stored once).
  std::vector<std::string> aliases;
};

struct Stage {
  int index = 0;
  std::string artifact;  ///< file name relative to the manifest
  std::string sha256;
  /// ONNX external data beside the artifact (its initializers' bytes): file
  /// name relative to the manifest and its SHA-256; empty when there is none.
  std::string data_file, data_sha256;
  std::vector<StageInput> inputs;    ///< in the artifact's argument order
  std::vector<StageOutput> outputs;  ///< in the artifact's result order
  std::vector<StageParam> params;
  int node_count = 0;    ///< source nodes placed here (clones excluded)
  int cloned_nodes = 0;  ///< constant-like nodes cloned into this stage
  std::string first_node, last_node;
  std::vector<std::string> modules;  ///< top-level-most module paths touched, in order
  int64_t flops = 0;                 ///< estimated forward FLOPs (symbolic dims = 1)
  int64_t param_bytes = 0;
  /// Under the cost model (Manifest::cost_model): compute + received
  /// communication, compute alone (forward + backward), and memory in bytes.
  std::optional<double> model_cost, model_compute, model_memory;
};

/// A value produced by one stage and consumed by others: sent directly from
/// the producer to every consumer (never relayed).
struct Edge {
  std::string value;
  std::string dtype;
  std::optional<std::vector<Dim>> shape;
  std::optional<int> batch_dim;
  int producer = 0;
  std::vector<int> consumers;
  bool differentiable = true;
  std::string kind = "activation";  ///< "activation" | "param" (transmitted tie)
};

/// One member of a tie group: a stored parameter and the stages holding it.
struct TieMember {
  std::string param;
  std::string relation = "identity";  ///< relation to the group's first member: identity | transpose
  std::vector<int> stages;
};

/// Parameters that are one PyTorch Parameter: their gradients are summed over
/// all holders ("replicate") or the owner sends it and receives gradients ("transmit").
struct TieGroup {
  std::string name;
  std::string policy = "replicate";
  int owner = 0;
  std::string detected_by;  ///< "shared" (same tensor used in several stages) | "content" | "spec"
  std::vector<TieMember> members;
};

struct ModelInput : TensorInfo {
  std::string split = "batch";  ///< "batch" | "replicate"
  std::vector<int> stages;      ///< stages that read it directly
};

struct ModelOutput : TensorInfo {
  int stage = 0;
};

struct Source {
  std::string format;  ///< "onnx" | "torchscript" | "pt2"
  std::string file;    ///< base name only
  std::string sha256;
  int64_t opset = 0;  ///< ONNX default-domain opset; 0 for TorchScript
};

struct Manifest {
  int version = kVersion;
  std::string producer = "ppc";
  Source source;
  std::vector<Stage> stages;
  std::vector<Edge> edges;
  std::vector<TieGroup> ties;
  std::vector<ModelInput> model_inputs;
  std::vector<ModelOutput> model_outputs;
  std::optional<std::string> default_schedule;
  std::optional<int> default_chunks;
  std::optional<int> default_dp;  ///< data-parallel replicas (pprun --dp)
  int64_t total_flops = 0;
  /// The cost model the stage costs above use (see compiler/analysis/cost_model.h).
  struct CostModel {
    std::string balance;          ///< time | flops | params | uniform
    std::string unit;             ///< ms (per sample) | bytes | nodes
    double forward_fraction = 0;  ///< of compute, the forward's share (for simulation)
    /// Measured costs only: a message's latency in the profiled pipeline
    /// (the simulator's per-message delay; not part of the stage costs).
    std::optional<double> message_ms;
    /// Measured costs only: besides message_ms, a message takes its bytes at
    /// this rate (the profile's message_bytes_per_second; absent: message_ms
    /// is a message's whole time). The bytes: message_bytes.
    std::optional<double> message_bytes_per_second;
    /// Measured costs only: per message, the time it takes each end's rank
    /// (the profile's calibrated message_cpu_ms; absent: 0).
    std::optional<double> message_cpu_ms;
    /// And the rate at which each end's rank spends time on its bytes (the
    /// profile's message_cpu_bytes_per_second; absent: none).
    std::optional<double> message_cpu_bytes_per_second;
    /// What each stage sends another per sample, one entry per stage pair
    /// (activations forward, their gradients back): a message of a
    /// micro-batch of n samples carries n times these. Measured costs only.
    struct EdgeBytes {
      int from = 0, to = 0;
      double bytes = 0, grad_bytes = 0;
    };
    std::vector<EdgeBytes> message_bytes;
    /// Measured costs only: the profiled step's time outside the pipeline
    /// (loading the batch, the optimizer step), part of predicted_step_ms.
    std::optional<double> step_overhead_ms;
    /// Measured costs only: the step these stage costs and message_ms give
    /// through the schedule simulator, plus step_overhead_ms, and the
    /// schedule simulated.
    std::optional<double> predicted_step_ms;
    std::optional<std::string> predicted_schedule;
    /// The cores its ranks shared, in ranks, where fewer than the stages (the
    /// profiled host's; absent: a core per rank).
    std::optional<double> predicted_cores;
    double bottleneck = 0, imbalance = 0, lower_bound = 0;
    std::string partition;  ///< "auto" (optimal under the model) | "split_points"
  };
  std::optional<CostModel> cost_model;
};

/// Canonical JSON (2-space indent, fixed key order, trailing newline).
std::string to_json_text(const Manifest& m);
nlohmann::ordered_json to_json(const Manifest& m);

/// Parses and validates a manifest. Throws ppc::Error "file:line:col: ..." on
/// malformed or inconsistent content (unknown version, stage indices out of
/// order or range, edges naming missing stages, ...). Unknown keys are
/// ignored so that newer minor additions stay readable.
Manifest parse_manifest(const std::string& text, const std::string& display_name);
Manifest load_manifest(const std::string& path, const std::string& display_name);

std::string shape_str(const std::optional<std::vector<Dim>>& shape);

}  // namespace ppc::manifest
