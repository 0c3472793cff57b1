// One step of a pipeline schedule, and schedules as per-rank lists of steps.
// The text form is torch.distributed.pipelining's, so schedules can be
// exchanged with it: `0F3`, `1B2`, `1I2`, `2W0`, `0SEND_F3`, `1RECV_B2`.
#pragma once

#include <string>
#include <vector>

namespace ppc::runtime::schedule {

/// One action of one rank: a computation or a communication of one stage for
/// one micro-batch.
struct Action {
  enum Kind {
    F,       ///< forward
    B,       ///< full backward (input and weight gradients at once)
    I,       ///< input-gradient backward (zero-bubble split; W follows later)
    W,       ///< weight-gradient backward (after the I of the same stage and micro-batch)
    SEND_F,  ///< stage sends its forward outputs to its consumers on other ranks
    RECV_F,  ///< stage posts the receive of its forward inputs from other ranks
    SEND_B,  ///< stage sends the gradients of its inputs to its producers on other ranks
    RECV_B,  ///< stage posts the receive of its output gradients from other ranks
  };
  Kind kind = F;
  int stage = 0;
  int microbatch = 0;

  /// F, B, I or W.
  bool is_compute() const { return kind <= W; }
  /// SEND_F, RECV_F, SEND_B or RECV_B.
  bool is_comm() const { return kind >= SEND_F; }
  /// B or I: the action that produces the gradients of the stage's inputs.
  bool is_input_grad() const { return kind == B || kind == I; }

  friend bool operator==(const Action& a, const Action& b) {
    return a.kind == b.kind && a.stage == b.stage && a.microbatch == b.microbatch;
  }
  friend bool operator!=(const Action& a, const Action& b) { return !(a == b); }
};

/// The actions of one rank, in execution order.
using RankSchedule = std::vector<Action>;
/// One RankSchedule per rank; index = rank.
using Schedule = std::vector<RankSchedule>;

/// The kind's name as in the text form: "F", "B", "I", "W", "SEND_F", ...
const char* kind_name(Action::Kind kind);

/// Text form: stage index, kind, micro-batch index: `0F3`, `1RECV_B2`.
std::string to_string(const Action& a);

/// Parses the text form, strictly: the whole string must be
/// <digits><kind><digits> with no spaces or trailing characters. Throws
/// ppc::Error naming the text ("invalid action '0X1': unknown kind 'X' ...").
/// Kinds torch.distributed.pipelining knows but pprun does not run (UNSHARD,
/// RESHARD, REDUCE_GRAD, OVERLAP_F_B) are rejected as unsupported.
Action parse_action(const std::string& text);

/// The actions of one rank as text, separated by single spaces.
std::string to_string(const RankSchedule& actions);

/// The rank running each stage, as the schedule places them: out[s] is the
/// rank whose list has actions of stage s, or -1 when no rank has any. Throws
/// ppc::Error when a stage is outside [0, num_stages) or appears on two ranks.
std::vector<int> stage_ranks(const Schedule& schedule, int num_stages);

}  // namespace ppc::runtime::schedule
