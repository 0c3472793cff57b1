// Stage assignment and cross-stage edges: given cuts, which nodes each stage
// runs, which values it receives and sends, which params it stores.
#pragma once

#include <string>
#include <vector>

#include "compiler/analysis/split_points.h"
#include "compiler/analysis/ties.h"
#include "compiler/ir/graph.h"

namespace ppc::analysis {

/// A param of a transmitted tie group rebuilt in a stage from the group's
/// reference param (received or stored): `param = relation(reference)`.
struct DerivedParam {
  int param = 0;         ///< param index rebuilt here
  int reference = 0;     ///< param index it is computed from
  std::string relation;  ///< "identity" | "transpose"
};

/// Where a stage input comes from.
enum class InputSource { ModelInput, Edge, Tie };

struct StageInputRef {
  ir::ValueId value = ir::kNone;
  InputSource source = InputSource::Edge;
  int from_stage = -1;
};

/// Everything an emitter needs to write one stage.
struct StagePlan {
  std::vector<ir::NodeId> nodes;      ///< in graph order, placed and cloned
  int placed_nodes = 0;               ///< nodes owned by this stage
  std::vector<ir::NodeId> cloned;     ///< constant-like nodes cloned here (sorted)
  std::vector<StageInputRef> inputs;  ///< in argument order
  std::vector<ir::ValueId> outputs;   ///< in result order
  std::vector<int> params;            ///< param indices stored here (graph order)
  std::vector<DerivedParam> derived;  ///< transmitted tie members rebuilt here
  double flops = 0.0;
  int64_t param_bytes = 0;
};

/// A value sent from one stage to later ones.
struct CrossEdge {
  ir::ValueId value = ir::kNone;
  int producer = 0;
  std::vector<int> consumers;
  bool is_param = false;  ///< a transmitted tie reference
};

struct Partition {
  int num_stages = 0;
  std::vector<int> stage_of_node;  ///< -1 for constant-like nodes
  std::vector<StagePlan> stages;
  std::vector<CrossEdge> edges;                ///< ordered by producer node order, then name
  std::vector<std::vector<int>> input_stages;  ///< per model input: stages reading it
  std::vector<int> output_stage;               ///< per model output: the stage producing it
  std::vector<TieGroup> ties;                  ///< resolved tie groups (see ties.h)
  std::vector<std::string> notes;              ///< tie candidates and oddities, one line each
};

/// Places every non-constant node into the stage its cuts imply, clones the
/// constant-like producers each stage needs, and derives stage inputs,
/// outputs, stored params and cross-stage edges. Tie groups are detected with
/// `tie_options` and applied (transmit groups become edges). Throws ppc::Error
/// for problems the user must fix (e.g. a tie group naming an unknown param).
Partition partition(const ir::Graph& g, const std::vector<bool>& const_like, const std::vector<Cut>& cuts,
                    const TieOptions& tie_options);

/// Checks a partition against the graph: every placeable node in exactly one
/// stage, every stage input defined by an earlier stage or the model, every
/// edge consumer later than its producer. Returns "" or the first problem.
std::string verify_partition(const ir::Graph& g, const std::vector<bool>& const_like, const Partition& p);

/// For formats whose stage interfaces must declare each tensor's rank (an
/// ONNX graph's inputs and outputs): throws ppc::Error, located at the split
/// point in `doc` when it came from the spec, naming the first activation
/// that crosses a cut with an unknown rank, the node producing it, and the cut.
void require_ranked_edges(const ir::Graph& g, const Partition& p, const std::vector<Cut>& cuts,
                          const JsonDocument* doc);

}  // namespace ppc::analysis
